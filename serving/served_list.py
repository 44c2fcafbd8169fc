"""From ranked candidates to the list a user is shown: the policy stage's inputs and its answer.

The ranker orders candidates by expected value; what is served also obeys the product's rules
(serving.policy: creator caps and spacing, topic diversity, finished and blocklisted videos,
fresh uploads of subscriptions, exploration with a propensity per slot). This module only
translates: the request's feature columns into the policy's inputs, and its result into API items
(with what the served-impression log records of each item beyond them: `ServedItems`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from feature_repo.engagement import SECONDS_PER_DAY, WATCH_LOG, watched_fractions
from models.sources.candidate import CandidateColumns
from serving.policy import PolicyResult, PolicyStage, RankedCandidates, UserContext, pool_from_candidates
from serving.request_trace import RequestTrace
from serving.schemas import RecommendationResponse, RecommendedVideo


@dataclass(frozen=True)
class FedFeatures:
    """What the ranker was fed for the served items of one sampled request (the served-feature
    log, serving.served_log.feature_log): its input columns at those items' rows, values exactly
    as the ranker read them (after every serving-side transformation), and each column's kind."""

    positions: np.ndarray  # (rows,) int64: the response slot each row is
    columns: dict[str, np.ndarray]  # name → (rows,) values
    # name → "numeric", "categorical", "list" (bags); request data: "request_numeric", "request_categorical"
    kinds: Mapping[str, str]

    def __len__(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class ServedItems:
    """One request's served items and, per item, what the served-impression log records that the
    API does not show: the rank score the ranker read (1 / (1 + rank in the nominating source),
    the raw log's `source_score`) and the ranker's head values (its `head_predictions`).

    `rank_scores` is None for items built without candidates (every served path has them now,
    the unknown user's included); `head_values` also where the ranker did not score (a fallback,
    or an unknown user's list, which popularity orders).
    A value is NaN for an item the request's candidates lack.
    """

    items: list[RecommendedVideo]
    rank_scores: np.ndarray | None = None  # (len(items),) float64
    head_values: dict[str, np.ndarray] | None = None  # head → (len(items),) float64
    # the ranker's inputs of the served items, for a request the served-feature log samples
    fed_features: FedFeatures | None = None


@dataclass(frozen=True)
class ServedAnswer:
    """A /recommend answer, its trace, and what the served-impression log needs beside it
    (serving.served_log): the request's time and the per-item values of `served`."""

    response: RecommendationResponse
    trace: RequestTrace
    request_time: float  # Unix seconds: the request clock's "now", the served impressions' time
    served: ServedItems


def served_items(items: list[RecommendedVideo], candidates: CandidateColumns,
                 head_values: dict[str, np.ndarray] | None,
                 fed: Mapping[str, np.ndarray] | None = None, fed_kinds: Mapping[str, str] | None = None,
                 ) -> ServedItems:
    """`items` with the rank score and (given the ranker's values for every candidate) the head
    values of the candidate each item is. k lookups among the candidates: microseconds.
    `fed`: the columns the ranker scored the candidates on, of which `fed_kinds` names the ones
    to keep (a sampled request's): kept at the served items' rows."""
    rows = _candidate_rows(candidates.video_ids, np.fromiter((item.video_id for item in items), np.int64, len(items)))
    missing = rows < 0
    missing = missing if missing.any() else None

    def at_rows(values: np.ndarray) -> np.ndarray:
        picked = np.asarray(values, dtype=np.float64)[rows]
        if missing is not None:
            picked[missing] = np.nan
        return picked

    return ServedItems(
        items, at_rows(candidates.rank_scores),
        None if head_values is None else {head: at_rows(values) for head, values in head_values.items()},
        None if fed is None or fed_kinds is None else _fed_features(fed, fed_kinds, rows),
    )


def _fed_features(fed: Mapping[str, np.ndarray], kinds: Mapping[str, str], rows: np.ndarray) -> FedFeatures:
    """The kept columns at the served items' candidate rows (items the candidates lack left out)."""
    positions = np.flatnonzero(rows >= 0)
    at = rows[positions]
    return FedFeatures(positions, {name: np.asarray(fed[name])[at] for name in kinds if name in fed}, kinds)


def _candidate_rows(candidate_ids: np.ndarray, served_ids: np.ndarray) -> np.ndarray:
    """The row of each served id among the candidates (unique ids); -1 where it is not one."""
    if not len(candidate_ids):
        return np.full(len(served_ids), -1, dtype=np.int64)
    order = np.argsort(candidate_ids, kind="stable")
    at = np.searchsorted(candidate_ids[order], served_ids).clip(max=len(order) - 1)
    return np.where(candidate_ids[order[at]] == served_ids, order[at], -1)


CREATOR_COLUMN = "creator_id"
CATEGORY_COLUMN = "category"
VIDEO_AGE_COLUMN = "video_age_days"


def policy_candidates(candidates: CandidateColumns, scores: np.ndarray, data: dict[str, np.ndarray],
                      request_time: float, because_video_ids: np.ndarray | None = None) -> RankedCandidates:
    """The ranked candidates as the policy reads them. A video without a known creator counts as
    its own creator (a negative id per row), so unknowns are not capped together.
    `because_video_ids` names the watched video that nominated each row (watch_next's seed), -1
    where none did (serving.policy.UNKNOWN_VIDEO); None: no row."""
    creators = np.asarray(data[CREATOR_COLUMN], dtype=np.float64)
    unknown = ~np.isfinite(creators)
    creator_ids = np.where(unknown, -1 - np.arange(len(creators)), np.nan_to_num(creators)).astype(np.int64)
    ages = (np.asarray(data[VIDEO_AGE_COLUMN], dtype=np.float64) if VIDEO_AGE_COLUMN in data
            else np.full(len(scores), np.nan))
    categories = np.asarray(data[CATEGORY_COLUMN], dtype=object)
    return RankedCandidates(
        video_ids=candidates.video_ids, scores=scores, creator_ids=creator_ids,
        categories=np.where(categories == None, "", categories),  # noqa: E711 - elementwise
        upload_times=request_time - ages * SECONDS_PER_DAY, sources=candidates.sources,
        source_scores=candidates.source_scores, because_video_ids=because_video_ids,
    )


def user_context(user: dict[str, object], subscribed_creators: list[int], request_time: float) -> UserContext:
    """What the policy knows of the user: subscriptions and how much of each logged watch they saw."""
    watched, fractions = watched_fractions(user.get(WATCH_LOG))
    return UserContext(request_time=request_time, subscribed_creator_ids=subscribed_creators,
                       watched_video_ids=watched, watched_fractions=fractions)


def apply_policy(policy: PolicyStage, ranked: RankedCandidates, user: UserContext, k: int,
                 request_id: str) -> PolicyResult:
    """The served list; exploration draws come from the candidates the exploration and fresh
    sources nominated (under-exposed and new videos), so they need no second lookup."""
    return policy.rerank(ranked, user, k, request_id, pool=pool_from_candidates(ranked))


def items_from_policy(result: PolicyResult) -> list[RecommendedVideo]:
    return [
        RecommendedVideo(video_id=video, score=score, source=source, retrieval_score=retrieval_score, reason=reason,
                         propensity=propensity, explored=explored, because_video_id=because if because >= 0 else None)
        for video, score, source, retrieval_score, reason, propensity, explored, because in zip(
            result.video_ids.tolist(), np.nan_to_num(result.scores).tolist(), [str(s) for s in result.sources],
            result.source_scores.tolist(), [str(r) for r in result.reasons], result.propensities.tolist(),
            result.was_explored.tolist(), result.because_video_ids.tolist(), strict=True)
    ]


def items_in_order(candidates: CandidateColumns, order: np.ndarray, scores: np.ndarray,
                   policy: PolicyStage, k: int) -> list[RecommendedVideo]:
    """The first k of `candidates` in `order` with `scores`, blocklisted videos left out: the list
    when the policy stage cannot run (it lacks candidate features, or failed)."""
    keep = ~policy.blocklist.contains(candidates.video_ids[order])
    order, scores = order[keep][:k], scores[keep][:k]
    return [
        RecommendedVideo(video_id=video, score=score, source=source, retrieval_score=retrieval_score)
        for video, score, source, retrieval_score in zip(
            candidates.video_ids[order].tolist(), scores.tolist(), candidates.sources[order].tolist(),
            candidates.source_scores[order].tolist(), strict=True)
    ]
