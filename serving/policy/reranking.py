"""The re-ranking stage: from one request's ranked candidates to the k videos served, slot by slot.

Each slot, top to bottom:

1. Which candidates may go here: eligible (eligibility.py), not placed, creator under its cap.
   With `separate_adjacent_creators`, prefer (in this order) candidates whose creator differs
   from the slot above and keeps the rest separable (creator_spread.py); then any other creator;
   then, only when nothing else is left, the same creator again.
2. The exploit choice: the best of those by MMR, lambda * relevance - (1 - lambda) * max
   similarity to the videos above (relevance: scaled ranker score + freshness boost).
3. Exploration (exploration.py): with probability epsilon, a uniform draw from the admissible
   pool videos instead; the slot's propensity is logged either way.

The list ends at k or when no candidate can be placed (exploration replaces candidates in a
slot; it never extends a list past the candidates). Work is O(k * n) vectorised: MMR is greedy
over the k slots only, never a full re-sort of the n candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.policy.blocklist import Blocklist
from serving.policy.config import PolicyConfig
from serving.policy.creator_spread import NO_CREATOR, CreatorSpread
from serving.policy.diversity import DiversityMemory
from serving.policy.eligibility import eligible_candidates, fresh_from_subscriptions, relevance, watched_past_threshold
from serving.policy.exploration import ExplorationPool, slot_propensity
from serving.policy.inputs import UNKNOWN_VIDEO, RankedCandidates, UserContext, dense_codes
from serving.policy.reasons import Reason, candidate_reason

NOT_IN_OTHER = -1  # in the candidate ↔ pool row maps: the video is not in the other list


@dataclass(frozen=True)
class PolicyResult:
    """The served list, one entry per slot (position 0 first), as parallel arrays.

    `scores` are the ranker's final scores (an explored video the ranker never scored: NaN).
    `propensities` are the probability of this video at this slot given the slots above;
    `because_video_ids` names the watched video where the reason is "because you watched".
    `dropped_blocked` / `dropped_watched` count candidates the hard rules removed (for metrics).
    """

    video_ids: np.ndarray
    scores: np.ndarray
    positions: np.ndarray
    propensities: np.ndarray
    was_explored: np.ndarray
    reasons: np.ndarray
    because_video_ids: np.ndarray
    sources: np.ndarray
    source_scores: np.ndarray
    dropped_blocked: int = 0
    dropped_watched: int = 0

    def __len__(self) -> int:
        return len(self.video_ids)


class SlateBuilder:
    """The state of one request's list while its slots are filled (see the module docstring).

    `gain` is each candidate's MMR gain at the next slot, -inf where it can no longer be placed
    (ineligible, placed, or its creator at the cap), so the exploit choice is one argmax. The pool
    keeps `pool_open` (not placed, not blocked or watched, creator under the cap) and how many open
    pool videos each creator has, so the number an exploration draw chooses from is O(1) to read.
    """

    def __init__(
        self,
        candidates: RankedCandidates,
        pool: ExplorationPool,
        user: UserContext,
        config: PolicyConfig,
        blocklist: Blocklist,
        k: int,
    ):
        self.config = config
        self.candidate_video_ids = candidates.video_ids
        self.pool_video_ids = pool.video_ids
        eligible, self.dropped_blocked, self.dropped_watched = eligible_candidates(
            candidates.video_ids, candidates.scores, user, config, blocklist
        )
        self.creator, self.pool_creator, creator_count = dense_codes(candidates.creator_ids, pool.creator_ids)
        available = np.bincount(self.creator[eligible], minlength=creator_count)
        self.spread = CreatorSpread(available, config.max_per_creator, k)
        self.fresh_subscribed = fresh_from_subscriptions(candidates.creator_ids, candidates.upload_times, user, config)
        weighted_relevance = config.diversity_lambda * relevance(
            candidates.scores, eligible, self.fresh_subscribed, config.fresh_subscription_boost
        )
        self.gain = np.where(eligible, weighted_relevance, -np.inf)
        self.diversity = None
        if config.diversity_lambda < 1:
            self.diversity = DiversityMemory(candidates, pool, config, weighted_relevance)
        pool_finished = watched_past_threshold(pool.video_ids, user, config.watched_fraction_threshold)
        self.pool_open = ~(blocklist.contains(pool.video_ids) | pool_finished)
        self.pool_open_by_creator = np.bincount(self.pool_creator[self.pool_open], minlength=creator_count)
        self.pool_open_total = int(np.count_nonzero(self.pool_open))
        self.pool_to_candidate, self.candidate_to_pool = match_rows(candidates, eligible, pool)

    def exploit_choice(self) -> tuple[int | None, np.ndarray | None]:
        """(the candidate row the policy places here or None, the separability mask in force or None)."""
        best = int(np.argmax(self.gain)) if len(self.gain) else 0
        if not len(self.gain) or self.gain[best] == -np.inf:
            return None, None
        if not self.config.separate_adjacent_creators:
            return best, None
        previous = self.spread.previous
        keeps = self.spread.separable_after(consumes=True) if self.spread.is_separable() else None
        creator = self.creator[best]
        if creator != previous and (keeps is None or keeps[creator]):
            return best, keeps
        # Tiers: another creator that keeps the rest separable; another creator; the same one.
        apart = self.creator != previous
        preferred = apart if keeps is None else apart & keeps[self.creator]
        for tier in (preferred, apart):
            choice = int(np.argmax(np.where(tier, self.gain, -np.inf)))
            if tier[choice] and self.gain[choice] > -np.inf:
                return choice, keeps
        return best, keeps

    def admissible_pool_count(self, keeps: np.ndarray | None) -> int:
        """How many pool videos an exploration draw may show here (O(1) unless separability binds)."""
        if keeps is not None:
            return int(np.count_nonzero(self.admissible_pool(keeps)))
        previous = self.spread.previous
        if self.config.separate_adjacent_creators and previous != NO_CREATOR:
            return self.pool_open_total - int(self.pool_open_by_creator[previous])
        return self.pool_open_total

    def admissible_pool(self, keeps: np.ndarray | None) -> np.ndarray:
        """(pool,) the pool videos an exploration draw may show here: the creator rules apply strictly.

        `keeps` is the separability mask for placing a candidate; a pool video that is not a
        candidate leaves its creator's candidates in place, so it is judged by its own mask.
        """
        admissible = self.pool_open.copy()
        previous = self.spread.previous
        if self.config.separate_adjacent_creators and previous != NO_CREATOR:
            admissible &= self.pool_creator != previous
        if keeps is not None:
            free = self.spread.separable_after(consumes=False)
            is_candidate = self.pool_to_candidate != NOT_IN_OTHER
            admissible &= np.where(is_candidate, keeps[self.pool_creator], free[self.pool_creator])
        return admissible

    def pool_row_admissible(self, row: int, keeps: np.ndarray | None) -> bool:
        """`admissible_pool(keeps)[row]` for a pool video that is also a candidate, without the array."""
        creator = self.pool_creator[row]
        if not self.pool_open[row] or (keeps is not None and not keeps[creator]):
            return False
        return not (self.config.separate_adjacent_creators and creator == self.spread.previous)

    def place_candidate(self, row: int) -> None:
        self.gain[row] = -np.inf
        self.close_pool_row(self.candidate_to_pool[row])
        self.record_placement(int(self.creator[row]), consumes=True)
        if self.diversity is not None:
            self.diversity.lower(self.gain, self.diversity.candidate_keys[row])

    def place_pool(self, row: int) -> None:
        self.close_pool_row(row)
        candidate_row = self.pool_to_candidate[row]
        if candidate_row != NOT_IN_OTHER:
            self.gain[candidate_row] = -np.inf
        self.record_placement(int(self.pool_creator[row]), consumes=candidate_row != NOT_IN_OTHER)
        if self.diversity is not None:
            self.diversity.lower(self.gain, self.diversity.pool_keys[row])

    def close_pool_row(self, row: int) -> None:
        if row != NOT_IN_OTHER and self.pool_open[row]:
            self.pool_open[row] = False
            self.pool_open_by_creator[self.pool_creator[row]] -= 1
            self.pool_open_total -= 1

    def record_placement(self, creator: int, consumes: bool) -> None:
        """Count the placement; a creator reaching its cap closes its remaining candidates and pool videos."""
        self.spread.place(creator, consumes)
        if self.spread.at_cap(creator):
            self.gain[self.creator == creator] = -np.inf
            self.pool_open &= self.pool_creator != creator
            self.pool_open_total -= int(self.pool_open_by_creator[creator])
            self.pool_open_by_creator[creator] = 0


def match_rows(
    candidates: RankedCandidates, eligible: np.ndarray, pool: ExplorationPool
) -> tuple[np.ndarray, np.ndarray]:
    """(pool row → eligible candidate row of the same video, candidate row → pool row), -1 where none.

    One video must have one creator: a pool row that disagrees with its candidate would let the
    two copies count against different caps, so it is refused.
    """
    pool_to_candidate = np.full(len(pool), NOT_IN_OTHER, dtype=np.int64)
    candidate_to_pool = np.full(len(candidates), NOT_IN_OTHER, dtype=np.int64)
    eligible_rows = np.flatnonzero(eligible)
    if len(pool) == 0 or len(eligible_rows) == 0:
        return pool_to_candidate, candidate_to_pool
    eligible_ids = candidates.video_ids[eligible_rows]
    order = np.argsort(eligible_ids)
    slots = np.minimum(np.searchsorted(eligible_ids[order], pool.video_ids), len(order) - 1)
    found = eligible_ids[order][slots] == pool.video_ids
    pool_to_candidate[found] = eligible_rows[order[slots[found]]]
    candidate_to_pool[pool_to_candidate[found]] = np.flatnonzero(found)
    disagree = found & (candidates.creator_ids[np.maximum(pool_to_candidate, 0)] != pool.creator_ids)
    if disagree.any():
        row = int(np.flatnonzero(disagree)[0])
        raise ValueError(
            f"pool video {pool.video_ids[row]} has creator {pool.creator_ids[row]} but creator "
            f"{candidates.creator_ids[pool_to_candidate[row]]} as a candidate"
        )
    return pool_to_candidate, candidate_to_pool


def rerank(
    candidates: RankedCandidates,
    user: UserContext,
    config: PolicyConfig,
    k: int,
    *,
    pool: ExplorationPool | None = None,
    blocklist: Blocklist | None = None,
    rng: np.random.Generator | None = None,
) -> PolicyResult:
    """The k (or fewer) videos to serve, with a propensity and a reason per slot.

    `rng` is required whenever a slot can explore (a pool and exploration_share > 0): randomness
    is injected, never global, so a fixed generator gives the same list every time
    (`exploration.request_rng` derives one per request).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    pool = ExplorationPool.empty() if pool is None else pool
    explores = config.exploration_share > 0 and len(pool) > 0
    if explores and rng is None:
        raise ValueError(
            "exploration is on (a pool and exploration_share > 0) but no rng was given; pass request_rng(...)"
        )
    builder = SlateBuilder(candidates, pool, user, config, Blocklist() if blocklist is None else blocklist, k)
    draws = rng.random((k, 2)) if explores else None  # (slot, [explore?, which pool video])
    slots: list[tuple[bool, int, float]] = []  # (explored, candidate or pool row, propensity)
    for position in range(k):
        exploit, keeps = builder.exploit_choice()
        if exploit is None:
            break
        if not explores:
            builder.place_candidate(exploit)
            slots.append((False, exploit, 1.0))
            continue
        slots.append(explore_or_exploit(builder, exploit, keeps, draws[position], config.exploration_share))
    return assemble(slots, candidates, pool, builder, config)


def explore_or_exploit(
    builder: SlateBuilder, exploit: int, keeps: np.ndarray | None, draw: np.ndarray, exploration_share: float
) -> tuple[bool, int, float]:
    """Fill one slot epsilon-greedily and return (explored, row, propensity of the shown video)."""
    admissible_count = builder.admissible_pool_count(keeps)
    exploit_video = int(builder.candidate_video_ids[exploit])
    exploit_pool_row = builder.candidate_to_pool[exploit]
    exploit_in_pool = exploit_pool_row != NOT_IN_OTHER and builder.pool_row_admissible(exploit_pool_row, keeps)
    if admissible_count and draw[0] < exploration_share:
        admissible_rows = np.flatnonzero(builder.admissible_pool(keeps))
        row = int(admissible_rows[min(int(draw[1] * admissible_count), admissible_count - 1)])
        shown = int(builder.pool_video_ids[row])
        propensity = slot_propensity(shown, exploit_video, exploit_in_pool, admissible_count, exploration_share)
        builder.place_pool(row)
        return True, row, propensity
    propensity = slot_propensity(exploit_video, exploit_video, exploit_in_pool, admissible_count, exploration_share)
    builder.place_candidate(exploit)
    return False, exploit, propensity


def assemble(
    slots: list[tuple[bool, int, float]],
    candidates: RankedCandidates,
    pool: ExplorationPool,
    builder: SlateBuilder,
    config: PolicyConfig,
) -> PolicyResult:
    """The result arrays, reading each slot's columns from the candidate or the pool row it came from."""
    video_ids, scores, sources, source_scores, reasons, because = [], [], [], [], [], []
    for explored, row, _ in slots:
        if explored:
            candidate_row = builder.pool_to_candidate[row]
            video_ids.append(pool.video_ids[row])
            scores.append(candidates.scores[candidate_row] if candidate_row != NOT_IN_OTHER else pool.scores[row])
            sources.append(str(pool.sources[row]))
            source_scores.append(pool.source_scores[row])
            reasons.append(Reason.EXPLORING.value)
            because.append(UNKNOWN_VIDEO)
            continue
        reason = candidate_reason(
            candidates.sources[row],
            int(candidates.because_video_ids[row]),
            bool(builder.fresh_subscribed[row]),
            config.item_to_item_sources,
            config.trending_sources,
        )
        video_ids.append(candidates.video_ids[row])
        scores.append(candidates.scores[row])
        sources.append(str(candidates.sources[row]))
        source_scores.append(candidates.source_scores[row])
        reasons.append(reason.value)
        because.append(candidates.because_video_ids[row] if reason is Reason.BECAUSE_YOU_WATCHED else UNKNOWN_VIDEO)
    return PolicyResult(
        video_ids=np.array(video_ids, dtype=np.int64),
        scores=np.array(scores, dtype=np.float64),
        positions=np.arange(len(slots), dtype=np.int32),
        propensities=np.array([propensity for _, _, propensity in slots], dtype=np.float64),
        was_explored=np.array([explored for explored, _, _ in slots], dtype=bool),
        reasons=np.array(reasons, dtype=object),
        because_video_ids=np.array(because, dtype=np.int64),
        sources=np.array(sources, dtype=object),
        source_scores=np.array(source_scores, dtype=np.float64),
        dropped_blocked=builder.dropped_blocked,
        dropped_watched=builder.dropped_watched,
    )
