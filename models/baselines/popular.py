"""Most-popular: `models.popularity.PopularityRecommender` behind the shared interface."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from models.baselines.base import check_query_time
from models.popularity import PopularityConfig, PopularityRecommender


class MostPopular:
    """Distinct users per video within `recency_window_days` before the query time, i.e. in
    (now − window, now] with now = `query_time` (the split's cut-off) or, without one, the last
    train interaction; ties and the rest by all-time count. Any positive float works (0.25 = the
    last six hours), so the window is tunable; `float('inf')` is plain all-time popularity."""

    def __init__(self, recency_window_days: float = float("inf")):
        if math.isnan(recency_window_days) or recency_window_days <= 0:
            raise ValueError(f"recency_window_days must be positive (inf = all time), got {recency_window_days}")
        self.recency_window_days = recency_window_days

    def fit(self, train: pd.DataFrame, query_time: Any = None) -> MostPopular:
        frame = train.rename(columns={"time": "first_watch_time"})
        if not pd.api.types.is_datetime64_any_dtype(frame["first_watch_time"]):
            raise ValueError("MostPopular needs a datetime `time` column")
        check_query_time(train, query_time)
        frame = frame.sort_values("first_watch_time", kind="stable").drop_duplicates(["user_id", "video_id"])
        now = frame["first_watch_time"].max() if query_time is None else pd.Timestamp(query_time)
        span_days = (now - frame["first_watch_time"].min()) / pd.Timedelta(days=1)
        window = min(self.recency_window_days, span_days + 1.0)  # inf → every interaction is "recent"
        self.popularity = PopularityRecommender(PopularityConfig(recency_window_days=window)).fit(frame, now)
        return self

    def recommend(self, user_ids: Sequence[int], k: int, exclude: Mapping[int, set[int]]) -> list[list[int]]:
        return [
            [video for video, _ in self.popularity.recommend(k, exclude.get(int(user), set()))] for user in user_ids
        ]
