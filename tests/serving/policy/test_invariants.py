"""Invariants of the served list for random requests, checked against expectations computed from
the inputs alone (not from the policy's own bookkeeping).

Requests are small (ids from a range of 40, one to six creators, four categories) so that collisions,
caps, duplicates, blocked and watched videos, and pool/candidate overlaps all happen often.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.policy import Blocklist, ExplorationPool, PolicyConfig, RankedCandidates, UserContext, rerank
from serving.policy.creator_spread import NO_CREATOR, separable

NOW = 1_800_000_000.0
VIDEO_RANGE = 40
SOURCES = ("ann", "co_watch", "subscriptions", "trending", "fresh", "exploration")


@dataclass
class Request:
    candidates: RankedCandidates
    user: UserContext
    pool: ExplorationPool
    blocklist: Blocklist
    config: PolicyConfig
    k: int
    seed: int
    creator_of: dict[int, int]
    finished: set[int]  # watched past the threshold

    def serve(self):
        return rerank(
            self.candidates, self.user, self.config, self.k,
            pool=self.pool, blocklist=self.blocklist, rng=np.random.default_rng(self.seed),
        )

    def shown_ok(self) -> set[int]:
        """Eligible candidate videos: neither blocked nor watched past the threshold."""
        blocked = set(self.blocklist.video_ids.tolist())
        return {int(video) for video in self.candidates.video_ids} - blocked - self.finished

    def capacity_by_creator(self) -> dict[int, int]:
        counts = Counter(self.creator_of[video] for video in self.shown_ok())
        return {creator: min(count, self.config.max_per_creator) for creator, count in counts.items()}


@st.composite
def requests(draw, exploration: bool = True) -> Request:
    # One creator and category per video id, so a pool video and its candidate copy agree. Few
    # creators make the cap and the neighbour rule bind; many make them slack.
    creators = draw(st.integers(1, 6))
    video_creators = st.lists(st.integers(0, creators - 1), min_size=VIDEO_RANGE, max_size=VIDEO_RANGE)
    creator_of = dict(enumerate(draw(video_creators)))
    category_of = draw(st.lists(st.integers(0, 3), min_size=VIDEO_RANGE, max_size=VIDEO_RANGE))
    n = draw(st.integers(0, 30))  # drawn first: hypothesis's own list sizes lean to a handful
    video_ids = draw(st.lists(st.integers(0, VIDEO_RANGE - 1), min_size=n, max_size=n))  # duplicates allowed
    scores = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n))
    ages_hours = draw(st.lists(st.floats(-1, 200), min_size=n, max_size=n))
    candidates = RankedCandidates(
        video_ids=np.array(video_ids, dtype=np.int64),
        scores=np.array(scores),
        creator_ids=np.array([creator_of[video] for video in video_ids], dtype=np.int64),
        categories=np.array([category_of[video] for video in video_ids], dtype=np.int64),
        upload_times=NOW - np.array(ages_hours) * 3600,
        sources=draw(st.lists(st.sampled_from(SOURCES), min_size=n, max_size=n)),
        source_scores=np.full(n, 0.5),
        because_video_ids=np.array(draw(st.lists(st.integers(-1, VIDEO_RANGE), min_size=n, max_size=n))),
    )
    # Pool videos are often candidates too (retrieval's exploration source feeds both).
    any_video = st.integers(0, VIDEO_RANGE - 1)
    pool_video = st.one_of(st.sampled_from(video_ids), any_video) if video_ids else any_video
    pool_ids = draw(st.lists(pool_video, unique=True, max_size=10)) if exploration else []
    pool = ExplorationPool(
        video_ids=np.array(pool_ids, dtype=np.int64),
        creator_ids=np.array([creator_of[video] for video in pool_ids], dtype=np.int64),
        categories=np.array([category_of[video] for video in pool_ids], dtype=np.int64),
    )
    watched = draw(st.dictionaries(st.integers(0, VIDEO_RANGE - 1), st.floats(0, 1), max_size=12))
    threshold = draw(st.sampled_from([0.0, 0.5, 0.8, 1.0]))
    config = PolicyConfig(
        max_per_creator=draw(st.sampled_from([1, 2, 3, 4, 30])),
        separate_adjacent_creators=draw(st.booleans()),
        diversity_lambda=draw(st.floats(0, 1)),
        watched_fraction_threshold=threshold,
        fresh_upload_hours=draw(st.sampled_from([0.0, 24.0, 100.0])),
        fresh_subscription_boost=draw(st.floats(0, 2)),
        exploration_share=draw(st.sampled_from([0.0, 0.03, 0.5, 1.0])) if exploration else 0.0,
    )
    return Request(
        candidates=candidates,
        user=UserContext(
            request_time=NOW,
            subscribed_creator_ids=np.array(draw(st.lists(st.integers(0, 5), max_size=3)), dtype=np.int64),
            watched_video_ids=np.array(list(watched), dtype=np.int64),
            watched_fractions=np.array(list(watched.values())),
        ),
        pool=pool,
        blocklist=Blocklist(draw(st.lists(st.integers(0, VIDEO_RANGE - 1), max_size=8))),
        config=config,
        k=draw(st.integers(0, 25)),
        seed=draw(st.integers(0, 2**32 - 1)),
        creator_of=creator_of,
        finished={video for video, fraction in watched.items() if fraction > threshold},
    )


@st.composite
def crowded_requests(draw) -> Request:
    """Two or three creators whose videos can only just be spread apart (the largest count is at
    most one more than all the others together), with random scores and exploration: the case
    where placing the best video first leaves two of one creator side by side at the end."""
    counts = draw(st.lists(st.integers(1, 6), min_size=2, max_size=3))
    largest = max(counts)
    counts = [min(count, sum(counts) - largest + 1) if count == largest else count for count in counts]
    creator_of, video = {}, 0
    for creator, count in enumerate(counts):
        for _ in range(count):
            creator_of[video] = creator
            video += 1
    n = len(creator_of)
    candidates = RankedCandidates(
        video_ids=np.arange(n),
        scores=np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))),
        creator_ids=np.array([creator_of[video] for video in range(n)]),
        categories=np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))),
        upload_times=np.full(n, NOW),
        sources=["ann"] * n,
        source_scores=np.full(n, 0.5),
    )
    pool_ids = draw(st.lists(st.sampled_from(range(n)), unique=True, max_size=n))
    pool = ExplorationPool(
        video_ids=np.array(pool_ids, dtype=np.int64),
        creator_ids=np.array([creator_of[video] for video in pool_ids], dtype=np.int64),
        categories=candidates.categories[pool_ids],
    )
    config = PolicyConfig(
        max_per_creator=n,
        diversity_lambda=draw(st.floats(0, 1)),
        exploration_share=draw(st.sampled_from([0.0, 0.3, 1.0])),
    )
    return Request(
        candidates=candidates, user=UserContext(request_time=NOW), pool=pool, blocklist=Blocklist(), config=config,
        k=draw(st.integers(1, n)), seed=draw(st.integers(0, 2**32 - 1)), creator_of=creator_of, finished=set(),
    )


HYPOTHESIS = settings(max_examples=300, deadline=None)


@HYPOTHESIS
@given(requests())
def test_blocked_watched_and_repeated_videos_never_appear(request):
    result = request.serve()
    shown = result.video_ids.tolist()

    assert len(shown) == len(set(shown))
    assert not set(shown) & set(request.blocklist.video_ids.tolist())
    assert not set(shown) & request.finished


@HYPOTHESIS
@given(requests())
def test_no_creator_exceeds_the_cap(request):
    result = request.serve()
    per_creator = Counter(request.creator_of[int(video)] for video in result.video_ids)

    assert all(count <= request.config.max_per_creator for count in per_creator.values())


@HYPOTHESIS
@given(requests())
def test_no_two_neighbours_share_a_creator_whenever_the_candidates_allow_it(request):
    capacity = request.capacity_by_creator()
    slots = min(request.k, sum(capacity.values()))
    spreadable = separable(np.array(list(capacity.values()) or [0]), NO_CREATOR, slots)
    if not request.config.separate_adjacent_creators or not spreadable:
        return
    creators = [request.creator_of[int(video)] for video in request.serve().video_ids]

    assert all(left != right for left, right in itertools.pairwise(creators)), creators


@HYPOTHESIS
@given(crowded_requests())
def test_crowded_creators_are_still_spread_apart(request):
    creators = [request.creator_of[int(video)] for video in request.serve().video_ids]

    assert len(creators) == request.k
    assert all(left != right for left, right in itertools.pairwise(creators)), creators


@HYPOTHESIS
@given(requests(exploration=False))
def test_without_exploration_the_list_is_as_long_as_the_rules_allow(request):
    capacity = request.capacity_by_creator()

    result = request.serve()

    assert len(result) == min(request.k, sum(capacity.values()))
    assert (result.propensities == 1.0).all()
    assert not result.was_explored.any()


@HYPOTHESIS
@given(requests())
def test_a_list_stops_before_k_only_when_every_unshown_eligible_video_is_capped(request):
    result = request.serve()
    per_creator = Counter(request.creator_of[int(video)] for video in result.video_ids)
    unshown = request.shown_ok() - set(result.video_ids.tolist())

    assert len(result) <= request.k
    if len(result) < request.k:
        assert all(per_creator[request.creator_of[video]] == request.config.max_per_creator for video in unshown)


@HYPOTHESIS
@given(requests())
def test_propensities_are_probabilities_and_explored_slots_come_from_the_pool(request):
    result = request.serve()
    pool_ids = set(request.pool.video_ids.tolist())
    candidate_ids = set(request.candidates.video_ids.tolist())

    assert ((result.propensities > 0) & (result.propensities <= 1)).all()
    for video, explored, reason in zip(result.video_ids.tolist(), result.was_explored, result.reasons):
        assert video in (pool_ids if explored else candidate_ids)
        assert (reason == "exploring") == explored
    assert result.positions.tolist() == list(range(len(result)))


@HYPOTHESIS
@given(requests())
def test_the_same_request_and_seed_give_the_same_list(request):
    first, second = request.serve(), request.serve()

    for column in ("video_ids", "propensities", "was_explored", "reasons", "because_video_ids"):
        assert getattr(first, column).tolist() == getattr(second, column).tolist()
