"""Exploration slots and their logged propensities (epsilon-greedy per slot).

A recommender that only exploits learns only about what it already shows. So each slot, with
probability epsilon (`PolicyConfig.exploration_share`), shows a video drawn uniformly from the
exploration pool (under-exposed or fresh videos the caller chose) instead of the policy's choice.

The propensity logged with every served slot is the probability that the policy would have shown
that video at that slot, given the videos above it (what slot-level IPS / doubly-robust
estimators divide by). With e the exploit choice and A the pool videos admissible at the slot
(not shown above, not blocked or watched, within the creator rules):

    epsilon' = epsilon if A is non-empty else 0
    P(v)     = (1 - epsilon') * [v == e] + epsilon' / |A| * [v in A]

which sums to 1 over all videos, is > 0 for every video that can be shown, and is 1 for every
slot when epsilon is 0. `slot_distribution` writes the whole distribution out (tests enumerate
it; offline evaluation can use it); `slot_propensity` is the same value for one video.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.policy.inputs import RankedCandidates, as_column, as_embeddings

EXPLORATION_SOURCE = "exploration"


@dataclass(frozen=True)
class ExplorationPool:
    """The videos an exploration slot may show, with what the creator and diversity rules need.

    `scores` are ranker scores where the pool was ranked (NaN: never scored) and `sources` /
    `source_scores` what the impression log records for an explored slot. Video ids must be
    unique; a pool video that is also a candidate must have the candidate's creator.
    """

    video_ids: np.ndarray
    creator_ids: np.ndarray
    categories: np.ndarray
    scores: np.ndarray | None = None
    sources: Sequence[str] | None = None
    source_scores: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        video_ids = as_column(self.video_ids, np.int64, "pool video_ids")
        length = len(video_ids)
        sorted_ids = np.sort(video_ids)
        repeated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if len(repeated):
            raise ValueError(f"exploration pool video ids must be unique; {sorted(set(repeated.tolist()))} repeat")
        nan = np.full(length, np.nan)
        sources = [EXPLORATION_SOURCE] * length if self.sources is None else list(self.sources)
        if len(sources) != length:
            raise ValueError(f"pool sources has {len(sources)} entries, expected {length} (one per video_id)")
        columns = {
            "video_ids": video_ids,
            "creator_ids": as_column(self.creator_ids, np.int64, "pool creator_ids", length),
            "categories": as_column(self.categories, None, "pool categories", length),
            "scores": nan if self.scores is None else as_column(self.scores, np.float64, "pool scores", length),
            "sources": sources,
            "source_scores": (
                nan if self.source_scores is None
                else as_column(self.source_scores, np.float64, "pool source_scores", length)
            ),
            "embeddings": as_embeddings(self.embeddings, "pool embeddings", length),
        }
        for name, column in columns.items():
            object.__setattr__(self, name, column)

    def __len__(self) -> int:
        return len(self.video_ids)

    @classmethod
    def empty(cls) -> ExplorationPool:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))


def pool_from_candidates(
    candidates: RankedCandidates, pool_sources: Sequence[str] = (EXPLORATION_SOURCE, "fresh")
) -> ExplorationPool:
    """The candidates nominated by `pool_sources` as an exploration pool, keeping their ranker scores.

    The retrieval stage already has an exploration source (under-exposed videos) and a fresh one;
    drawing exploration slots from them needs no second lookup. Such a video can then reach the
    list either as the policy's choice or as an exploration draw; the propensity counts both.
    """
    wanted = frozenset(pool_sources)  # a set lookup per row: np.isin over strings costs ~5x more
    rows = np.fromiter((row for row, source in enumerate(candidates.sources) if source in wanted), dtype=np.int64)
    return ExplorationPool(
        video_ids=candidates.video_ids[rows],
        creator_ids=candidates.creator_ids[rows],
        categories=candidates.categories[rows],
        scores=candidates.scores[rows],
        sources=[candidates.sources[row] for row in rows],
        source_scores=candidates.source_scores[rows],
        embeddings=None if candidates.embeddings is None else candidates.embeddings[rows],
    )


def explore_probability(exploration_share: float, admissible_count: int) -> float:
    """epsilon' of one slot: the configured share, or 0 when no pool video is admissible there."""
    return exploration_share if admissible_count > 0 else 0.0


def slot_distribution(
    exploit_video: int, admissible_pool: Sequence[int], exploration_share: float
) -> dict[int, float]:
    """Every video the slot can show → the probability it is shown (the values sum to 1)."""
    epsilon = explore_probability(exploration_share, len(admissible_pool))
    distribution = {exploit_video: 1.0 - epsilon}
    for video in admissible_pool:
        distribution[video] = distribution.get(video, 0.0) + epsilon / len(admissible_pool)
    return distribution


def slot_propensity(
    shown_video: int, exploit_video: int, exploit_in_pool: bool, admissible_count: int, exploration_share: float
) -> float:
    """`slot_distribution(...)[shown_video]` without building the distribution (the request path).

    `exploit_in_pool` says whether the exploit choice is itself an admissible pool video; a shown
    video other than the exploit choice is always an admissible pool video.
    """
    epsilon = explore_probability(exploration_share, admissible_count)
    if shown_video == exploit_video:
        return (1.0 - epsilon) + (epsilon / admissible_count if exploit_in_pool else 0.0)
    return epsilon / admissible_count if admissible_count else 0.0


def request_rng(seed: int | None, request_id: str) -> np.random.Generator:
    """The random stream of one request's exploration.

    With a seed, the stream is a function of (seed, request id): the decisions of a logged
    request can be replayed, and different requests still explore independently (one fixed
    stream would make every request explore the same slots). Without one, OS entropy.
    """
    if seed is None:
        return np.random.default_rng()
    request_key = int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, request_key])
