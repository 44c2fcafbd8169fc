"""Small hand-written requests for the policy tests: one candidate per keyword call, readable at a glance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.policy import ExplorationPool, RankedCandidates, UserContext
from serving.policy.inputs import UNKNOWN_VIDEO

NOW = 1_800_000_000.0  # request time (unix seconds)
HOUR = 3600.0
OLD = NOW - 30 * 24 * HOUR  # an upload far outside any freshness window


@dataclass
class Video:
    video_id: int
    score: float
    creator: int = 0
    category: int = 0
    uploaded: float = OLD
    source: str = "ann"
    because: int = UNKNOWN_VIDEO


def candidates(*videos: Video, embeddings: np.ndarray | None = None) -> RankedCandidates:
    return RankedCandidates(
        video_ids=np.array([video.video_id for video in videos], dtype=np.int64),
        scores=np.array([video.score for video in videos], dtype=np.float64),
        creator_ids=np.array([video.creator for video in videos], dtype=np.int64),
        categories=np.array([video.category for video in videos], dtype=np.int64),
        upload_times=np.array([video.uploaded for video in videos], dtype=np.float64),
        sources=[video.source for video in videos],
        source_scores=np.full(len(videos), 0.5),
        because_video_ids=np.array([video.because for video in videos], dtype=np.int64),
        embeddings=embeddings,
    )


def pool(*videos: Video) -> ExplorationPool:
    return ExplorationPool(
        video_ids=np.array([video.video_id for video in videos], dtype=np.int64),
        creator_ids=np.array([video.creator for video in videos], dtype=np.int64),
        categories=np.array([video.category for video in videos], dtype=np.int64),
    )


def user(watched: dict[int, float] | None = None, subscribed: tuple[int, ...] = ()) -> UserContext:
    watched = watched or {}
    return UserContext(
        request_time=NOW,
        subscribed_creator_ids=np.array(subscribed, dtype=np.int64),
        watched_video_ids=np.array(list(watched), dtype=np.int64),
        watched_fractions=np.array(list(watched.values()), dtype=np.float64),
    )


def creators_in_order(result, creator_of: dict[int, int]) -> list[int]:
    return [creator_of[int(video)] for video in result.video_ids]
