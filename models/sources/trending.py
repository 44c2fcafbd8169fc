"""Trending: videos whose watches in the last `recent_hours` before `now` exceed what their own
recent past predicts.

For each video, `expected` is its watch rate over the preceding `baseline_days` (counted only
from its first watch, so a video first watched yesterday is not judged against days it did not
exist), scaled to the recent window. The score is a Poisson z-score,

    (recent − expected) / sqrt(expected + smoothing),

so a surge outranks a video that is merely always popular, and `smoothing` keeps a video with a
handful of first watches from topping the list. Only videos watched in the recent window rank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.sources._common import as_timestamp, days_before, require_columns
from models.sources.global_ranking import GlobalRankingSource

logger = logging.getLogger(__name__)


@dataclass
class TrendingConfig:
    quota: int = 30
    recent_hours: float = 72.0
    baseline_days: float = 7.0
    smoothing: float = 10.0


class TrendingSource(GlobalRankingSource):
    name = "trending"
    config_class = TrendingConfig

    def fit(self, watches: pd.DataFrame, now: pd.Timestamp) -> TrendingSource:
        """`watches`: video_id, watch_time; rows at or after `now` are ignored."""
        require_columns(watches, ("video_id", "watch_time"), "watches")
        self.now = as_timestamp(now)
        age_days = days_before(watches["watch_time"], self.now)
        known = age_days > 0
        video_ids, age_days = watches["video_id"].to_numpy(np.int64)[known], age_days[known]
        recent_days = self.config.recent_hours / 24.0
        horizon_days = recent_days + self.config.baseline_days
        frame = pd.DataFrame({
            "video_id": video_ids,
            "recent": age_days <= recent_days,
            "baseline": (age_days > recent_days) & (age_days <= horizon_days),
            "age_days": age_days,
        })
        per_video = frame.groupby("video_id").agg(
            recent=("recent", "sum"), baseline=("baseline", "sum"), first_watch_age=("age_days", "max")
        )
        per_video = per_video[per_video["recent"] > 0]
        exposure_days = (per_video["first_watch_age"].clip(upper=horizon_days) - recent_days).clip(lower=recent_days)
        expected = per_video["baseline"] / exposure_days * recent_days
        score = (per_video["recent"] - expected) / np.sqrt(expected + self.config.smoothing)
        self._set_ranking(per_video.index.to_numpy(np.int64), score.to_numpy(np.float64))
        logger.info("trending fitted: %d videos watched in the last %.0f h", len(self), self.config.recent_hours)
        return self
