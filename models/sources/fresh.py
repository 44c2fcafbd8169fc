"""Fresh uploads: videos uploaded in the last `window_days` before `now`.

`order="newest"` ranks by upload time, score = 1 − age_days / window_days (1 = just uploaded).
`order="engagement"` ranks by early engagement, score = distinct watchers / (age_days + 1): the
pseudo-day keeps a video watched once a minute after upload from outranking a day-old hit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.sources._common import as_timestamp, days_before, require_columns
from models.sources.global_ranking import GlobalRankingSource

logger = logging.getLogger(__name__)

ORDERS = ("newest", "engagement")


@dataclass
class FreshConfig:
    quota: int = 30
    window_days: float = 7.0
    order: str = "engagement"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")


class FreshSource(GlobalRankingSource):
    name = "fresh"
    config_class = FreshConfig

    def fit(self, catalog: pd.DataFrame, watches: pd.DataFrame, now: pd.Timestamp) -> FreshSource:
        """`catalog`: video_id, upload_time; `watches`: user_id, video_id, watch_time (before `now`)."""
        require_columns(catalog, ("video_id", "upload_time"), "catalog")
        self.now = as_timestamp(now)
        age_days = days_before(catalog["upload_time"], self.now)
        recent = (age_days > 0) & (age_days <= self.config.window_days)
        video_ids, age_days = catalog["video_id"].to_numpy(np.int64)[recent], age_days[recent]
        if self.config.order == "newest":
            score = 1.0 - age_days / self.config.window_days
        else:
            require_columns(watches, ("user_id", "video_id", "watch_time"), "watches")
            before = watches[days_before(watches["watch_time"], self.now) > 0]
            watchers = before.drop_duplicates(["user_id", "video_id"])["video_id"].value_counts()
            score = watchers.reindex(video_ids, fill_value=0).to_numpy(np.float64) / (age_days + 1.0)
        self._set_ranking(video_ids, score)
        logger.info("fresh fitted: %d videos uploaded in the last %.1f days", len(self), self.config.window_days)
        return self
