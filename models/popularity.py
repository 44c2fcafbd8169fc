"""Most-watched-recently recommender: the baseline every model must beat, and the fallback for
users the candidate generator knows nothing about.

"Recently" is a window of `recency_window_days` ending at the latest `first_watch_time` in the
data (not wall-clock now), so a model fitted on an old log still recommends what was popular at
the end of that log. Videos watched only before the window still rank, after every video watched
inside it, by their all-time count, so `recommend(k)` can fill k slots when the window is thin.

A fitted model may also carry per-segment rankings (models.segment_popularity, attached by
`with_segments`): `recommend_for(demographics, ...)` then answers a new user with what their
demographic segment watches, topped up from the global ranking.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # segments rank with this module's model: import it only where needed
    from models.segment_popularity import SegmentPopularity

logger = logging.getLogger(__name__)

_REQUIRED_COLUMNS = ("user_id", "video_id", "first_watch_time")


@dataclass
class PopularityConfig:
    recency_window_days: float = 7.0


class PopularityRecommender:
    """Counts distinct users per video (one row of `watch_interactions` is one user × video)."""

    def __init__(self, config: PopularityConfig | None = None):
        self.config = config or PopularityConfig()
        # (video_id, recent_count, total_count), best first; filled by fit/load.
        self._ranking: list[tuple[int, float, float]] = []
        self.segments: SegmentPopularity | None = None

    def with_segments(self, segments: SegmentPopularity) -> PopularityRecommender:
        """This model answering `recommend_for` by segment (fit `segments` on the same window)."""
        self.segments = segments
        return self

    def fit(self, interactions: pd.DataFrame, now: pd.Timestamp | None = None) -> PopularityRecommender:
        """Fit on every row given; filter to the training split before calling to avoid leakage.
        The window ends at `now` (default: the latest watch), e.g. an evaluation's cut-off."""
        missing = [column for column in _REQUIRED_COLUMNS if column not in interactions.columns]
        if missing:
            raise ValueError(f"interactions lacks columns {missing}; expected {list(_REQUIRED_COLUMNS)}")
        if interactions.empty:
            raise ValueError("interactions is empty; cannot compute popularity")
        watch_time = pd.to_datetime(interactions["first_watch_time"])
        window_end = watch_time.max() if now is None else pd.Timestamp(now)
        window_start = window_end - pd.Timedelta(days=self.config.recency_window_days)
        recent = interactions["video_id"][watch_time > window_start].value_counts()
        total = interactions["video_id"].value_counts()
        table = pd.DataFrame({"total": total}).join(pd.DataFrame({"recent": recent})).fillna(0.0)
        table = table.rename_axis("video_id").reset_index()
        table = table.sort_values(["recent", "total", "video_id"], ascending=[False, False, True])
        self._ranking = [
            (int(video), float(recent_count), float(total_count))
            for video, recent_count, total_count in table[["video_id", "recent", "total"]].itertuples(index=False)
        ]
        logger.info(
            "popularity fitted: %d videos, %d watched in the last %.1f days",
            len(self._ranking), int((table["recent"] > 0).sum()), self.config.recency_window_days,
        )
        return self

    def recommend(self, k: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, float]]:
        """Top-k (video_id, score) skipping `exclude`; score = distinct users in the window."""
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not self._ranking:
            raise ValueError("PopularityRecommender is not fitted; call fit() or load() first")
        picked = []
        for video, recent_count, _ in self._ranking:
            if video in exclude:
                continue
            picked.append((video, recent_count))
            if len(picked) == k:
                break
        return picked

    def recommend_for(
        self, demographics: dict[str, object], k: int, exclude: set[int] | frozenset[int] = frozenset()
    ) -> tuple[list[tuple[int, float]], str | None]:
        """Top-k for a user known only by `demographics`: their finest fitted segment's videos first,
        then global ones filling the rest; and the segment used (None: global popularity only)."""
        segment = None if self.segments is None else self.segments.segment_for(demographics)
        if segment is None:
            return self.recommend(k, exclude), None
        picked = self.segments.recommend(segment, k, exclude)
        if len(picked) < k:
            taken = set(exclude) | {video for video, _ in picked}
            picked += self.recommend(k - len(picked), taken)
        return picked, segment

    def save(self, path: str | Path) -> None:
        payload = {
            "config": asdict(self.config),
            "ranking": [list(row) for row in self._ranking],
        }
        if self.segments is not None:
            payload["segments"] = self.segments.to_payload()
        Path(path).write_text(json.dumps(payload))

    @classmethod
    def load(cls, path: str | Path) -> PopularityRecommender:
        payload = json.loads(Path(path).read_text())
        recommender = cls(PopularityConfig(**payload["config"]))
        recommender._ranking = [(int(v), float(r), float(t)) for v, r, t in payload["ranking"]]
        if "segments" in payload:  # bundles saved before segments existed answer globally
            from models.segment_popularity import SegmentPopularity

            recommender.segments = SegmentPopularity.from_payload(payload["segments"])
        return recommender
