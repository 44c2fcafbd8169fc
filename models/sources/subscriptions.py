"""Subscriptions: the recent uploads (last `window_days` before `now`) of the creators a user
subscribes to, newest first; score = 1 − age_days / window_days (1 = just uploaded).

Only subscriptions made before `now` count. Uploads after `now` are unknown to a fitted source:
refit it (daily, with the other sources) to pick them up.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from models.sources._common import (
    as_timestamp,
    days_before,
    group_offsets,
    load_arrays,
    require_columns,
    save_arrays,
    split_by_offsets,
)

logger = logging.getLogger(__name__)

NAME = "subscriptions"
_ARRAY_KEYS = (
    "user_ids", "user_offsets", "creator_ids",  # user → subscribed creators
    "uploader_ids", "upload_offsets", "video_ids", "video_scores",  # creator → recent uploads, newest first
)


@dataclass
class SubscriptionsConfig:
    quota: int = 30
    window_days: float = 14.0


class SubscriptionsSource:
    name = NAME

    def __init__(self, config: SubscriptionsConfig | None = None):
        self.config = config or SubscriptionsConfig()
        self.now: pd.Timestamp | None = None
        self._creators_of_user: dict[int, tuple[list[int]]] = {}
        self._uploads_of_creator: dict[int, tuple[list[int], list[float]]] = {}

    def fit(self, subscriptions: pd.DataFrame, catalog: pd.DataFrame, now: pd.Timestamp) -> SubscriptionsSource:
        """`subscriptions`: user_id, creator_id, subscribed_time; `catalog`: video_id, creator_id, upload_time."""
        require_columns(subscriptions, ("user_id", "creator_id", "subscribed_time"), "subscriptions")
        require_columns(catalog, ("video_id", "creator_id", "upload_time"), "catalog")
        self.now = as_timestamp(now)
        subscribed = subscriptions[days_before(subscriptions["subscribed_time"], self.now) > 0]
        subscribed = subscribed.drop_duplicates(["user_id", "creator_id"]).sort_values(["user_id", "creator_id"])
        age_days = days_before(catalog["upload_time"], self.now)
        uploads = catalog.assign(score=1.0 - age_days / self.config.window_days)
        uploads = uploads[(age_days > 0) & (age_days <= self.config.window_days)]
        uploads = uploads.sort_values(["creator_id", "score", "video_id"], ascending=[True, False, True])
        user_ids, user_offsets = group_offsets(subscribed["user_id"].to_numpy(np.int64))
        uploader_ids, upload_offsets = group_offsets(uploads["creator_id"].to_numpy(np.int64))
        self._store(
            user_ids, user_offsets, subscribed["creator_id"].to_numpy(np.int64),
            uploader_ids, upload_offsets, uploads["video_id"].to_numpy(np.int64), uploads["score"].to_numpy(np.float64),
        )
        logger.info(
            "subscriptions fitted: %d subscribers, %d creators with uploads in the last %.1f days",
            len(self._creators_of_user), len(self._uploads_of_creator), self.config.window_days,
        )
        return self

    @property
    def num_subscribers(self) -> int:
        return len(self._creators_of_user)

    def creators_of(self, user_id: int) -> list[int]:
        """The creators the user subscribed to (as of fitting)."""
        (creators,) = self._creators_of_user.get(int(user_id), ([],))
        return [int(creator) for creator in creators]

    def recommend(self, user_id: int, exclude: set[int] | frozenset[int], k: int) -> list[tuple[int, float]]:
        """Top-k (video_id, score) among the user's subscribed creators' recent uploads, newest first."""
        (creators,) = self._creators_of_user.get(int(user_id), ([],))
        uploads = [
            (score, video)
            for creator in creators
            for video, score in zip(*self._uploads_of_creator.get(creator, ((), ())))
            if video not in exclude
        ]
        best = heapq.nlargest(k, uploads, key=lambda item: (item[0], -item[1])) if k > 0 else []
        return [(video, score) for score, video in best]

    def save(self, directory) -> None:
        if self.now is None:
            raise ValueError("SubscriptionsSource is not fitted; call fit() or load() first")
        save_arrays(directory, NAME, asdict(self.config), self.now, dict(zip(_ARRAY_KEYS, self._arrays)))

    @classmethod
    def load(cls, directory) -> SubscriptionsSource:
        config, now, arrays = load_arrays(directory, NAME)
        source = cls(SubscriptionsConfig(**config))
        source.now = now
        source._store(*(arrays[key] for key in _ARRAY_KEYS))
        return source

    def _store(self, user_ids, user_offsets, creator_ids, uploader_ids, upload_offsets, video_ids, video_scores):
        self._arrays = (user_ids, user_offsets, creator_ids, uploader_ids, upload_offsets, video_ids, video_scores)
        self._creators_of_user = split_by_offsets(user_ids, user_offsets, creator_ids)
        self._uploads_of_creator = split_by_offsets(uploader_ids, upload_offsets, video_ids, video_scores)
