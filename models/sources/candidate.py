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

from models.sources._common import take_top

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


def union_candidates(
    ranked_by_source: Mapping[str, Sequence[tuple[int, float]]],
    quotas: Mapping[str, int],
    exclude: set[int] | frozenset[int] = frozenset(),
    priority: Sequence[str] = SOURCE_PRIORITY,
) -> list[Candidate]:
    """Union of each source's top `quotas[source]` (video_id, score) pairs, best first per source.

    Every source in `ranked_by_source` needs a place in `priority` and a quota; a quota of 0
    switches a source off.
    """
    unknown = [source for source in ranked_by_source if source not in priority]
    if unknown:
        raise ValueError(f"sources {unknown} have no place in the priority {list(priority)}")
    unquoted = [source for source in ranked_by_source if source not in quotas]
    if unquoted:
        raise ValueError(f"sources {unquoted} have no quota; quotas given: {dict(quotas)}")
    chosen: dict[int, tuple[str, float, int]] = {}
    nominated_by: dict[int, list[str]] = {}
    for source in priority:
        if source not in ranked_by_source:
            continue
        for rank, (video, score) in enumerate(take_top(ranked_by_source[source], exclude, quotas[source])):
            if video not in chosen:
                chosen[video] = (source, score, rank)
                nominated_by[video] = [source]
            elif source not in nominated_by[video]:
                nominated_by[video].append(source)
    return [
        Candidate(video, source, float(score), tuple(nominated_by[video]), rank)
        for video, (source, score, rank) in chosen.items()
    ]
