"""The union of retrieval sources: one deduplicated candidate list, each tagged with its source.

Each source contributes its own top `quota` (already-watched videos excluded). A video nominated
by several sources is kept once, tagged with the first of them in `SOURCE_PRIORITY`, and
`Candidate.sources` records every source that nominated it. The priority puts personalised,
learned sources before heuristic ones and global ones last, so a candidate's tag names the most
specific reason it was retrieved:

    ann > co_watch > subscriptions > trending > fresh > exploration

Candidates come out grouped by source in that order, each source's best first; the ranker reorders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SOURCE_PRIORITY = ("ann", "co_watch", "subscriptions", "trending", "fresh", "exploration")


def rank_score(rank: int) -> float:
    """A source score on one scale for every source: 1 / (1 + the 0-based rank in the source).

    Raw scores are not comparable between sources (inner products, PMI, watch velocity), nor with
    what the logging policy logged; ranks are. The ranker reads this as `retrieval_source_score`,
    and the impression logs (`source_score`, vidrec/schema.py) record the same quantity.
    """
    return 1.0 / (1.0 + rank)


@dataclass(frozen=True)
class Candidate:
    video_id: int
    source: str  # the nominating source first in priority
    source_score: float  # that source's score; scales differ between sources (see each source)
    sources: tuple[str, ...] = ()  # every source that nominated the video, in priority order
    source_rank: int = 0  # 0-based position in that source's list (watched videos excluded)

    @property
    def rank_score(self) -> float:
        return rank_score(self.source_rank)


@dataclass(frozen=True)
class CandidateColumns:
    """One request's candidates column by column, in union order: what the request path carries
    (no object per candidate). Row i is the i-th `Candidate` of `union_candidates`."""

    video_ids: np.ndarray  # int64
    sources: np.ndarray  # object: the nominating source first in priority
    source_scores: np.ndarray  # float64: that source's own score
    source_ranks: np.ndarray  # int64: 0-based position in that source's list

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def rank_scores(self) -> np.ndarray:
        return 1.0 / (1.0 + self.source_ranks)

    @classmethod
    def from_ranked(cls, source: str, ranked: Sequence[tuple[int, float]]) -> CandidateColumns:
        """One source's ranked (video_id, score) list as candidates, ranks 0, 1, …"""
        ids, scores = _arrays(ranked)
        return cls(ids, np.full(len(ids), source, dtype=object), scores, np.arange(len(ids), dtype=np.int64))

    def concat(self, other: CandidateColumns) -> CandidateColumns:
        return CandidateColumns(*(np.concatenate([mine, theirs]) for mine, theirs in zip(
            (self.video_ids, self.sources, self.source_scores, self.source_ranks),
            (other.video_ids, other.sources, other.source_scores, other.source_ranks), strict=True)))


RankedList = Sequence[tuple[int, float]] | tuple[np.ndarray, np.ndarray]


def union_columns(
    ranked_by_source: Mapping[str, RankedList],
    quotas: Mapping[str, int],
    exclude: set[int] | frozenset[int] = frozenset(),
    priority: Sequence[str] = SOURCE_PRIORITY,
) -> CandidateColumns:
    """Union of each source's top `quotas[source]` videos, best first per source, as columns.

    A source's list is (video_id, score) pairs or a pair of arrays (ids, scores). Every source in
    `ranked_by_source` needs a place in `priority` and a quota; a quota of 0 switches it off.
    """
    return _union(ranked_by_source, quotas, exclude, priority)[0]


def union_candidates(
    ranked_by_source: Mapping[str, RankedList],
    quotas: Mapping[str, int],
    exclude: set[int] | frozenset[int] = frozenset(),
    priority: Sequence[str] = SOURCE_PRIORITY,
) -> list[Candidate]:
    """`union_columns` as `Candidate`s, each also listing every source that nominated it."""
    columns, nominations = _union(ranked_by_source, quotas, exclude, priority)
    nominated_by: dict[int, list[str]] = {}
    for video, source in zip(*nominations, strict=True):
        sources = nominated_by.setdefault(video, [])
        if source not in sources:
            sources.append(source)
    return [
        Candidate(video, source, score, tuple(nominated_by[video]), rank)
        for video, source, score, rank in zip(
            columns.video_ids.tolist(), columns.sources.tolist(), columns.source_scores.tolist(),
            columns.source_ranks.tolist(), strict=True)
    ]


def _union(
    ranked_by_source: Mapping[str, RankedList],
    quotas: Mapping[str, int],
    exclude: set[int] | frozenset[int],
    priority: Sequence[str],
) -> tuple[CandidateColumns, tuple[list[int], list[str]]]:
    """The union, and every (video, source) nomination within quota in priority order."""
    unknown = [source for source in ranked_by_source if source not in priority]
    if unknown:
        raise ValueError(f"sources {unknown} have no place in the priority {list(priority)}")
    unquoted = [source for source in ranked_by_source if source not in quotas]
    if unquoted:
        raise ValueError(f"sources {unquoted} have no quota; quotas given: {dict(quotas)}")
    excluded = np.fromiter(exclude, dtype=np.int64, count=len(exclude))
    names, ids, scores, ranks = [], [], [], []
    for source in priority:
        if source not in ranked_by_source:
            continue
        source_ids, source_scores = _arrays(ranked_by_source[source])
        if len(excluded):
            kept = ~np.isin(source_ids, excluded)
            source_ids, source_scores = source_ids[kept], source_scores[kept]
        quota = max(quotas[source], 0)
        names.append(np.full(min(quota, len(source_ids)), source, dtype=object))
        ids.append(source_ids[:quota])
        scores.append(source_scores[:quota])
        ranks.append(np.arange(len(ids[-1]), dtype=np.int64))
    if not ids:
        empty = CandidateColumns(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0), np.zeros(0, np.int64))
        return empty, ([], [])
    all_ids, all_names = np.concatenate(ids), np.concatenate(names)
    _, first = np.unique(all_ids, return_index=True)  # a video's first nomination, in priority order
    first.sort()
    columns = CandidateColumns(
        all_ids[first], all_names[first], np.concatenate(scores)[first], np.concatenate(ranks)[first]
    )
    return columns, (all_ids.tolist(), all_names.tolist())


def _arrays(ranked: RankedList) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(ranked, tuple) and len(ranked) == 2 and isinstance(ranked[0], np.ndarray):
        return ranked[0].astype(np.int64, copy=False), ranked[1].astype(np.float64, copy=False)
    if len(ranked) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    ids, scores = zip(*ranked, strict=True)
    return np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float64)
