"""Logged propensities are the probabilities the policy really shows each video with, per slot."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from serving.policy import PolicyConfig, pool_from_candidates, request_rng, rerank, slot_distribution, slot_propensity
from tests.serving.policy.slates import Video, candidates, pool, user


@pytest.mark.parametrize("share", [0.0, 0.03, 0.5, 1.0])
@pytest.mark.parametrize(
    ("exploit", "admissible"),
    [(1, []), (1, [5]), (1, [5, 6, 7]), (5, [5, 6, 7]), (1, [1])],
)
def test_every_slot_distribution_sums_to_one_and_matches_the_logged_propensity(share, exploit, admissible):
    distribution = slot_distribution(exploit, admissible, share)

    assert sum(distribution.values()) == pytest.approx(1.0)
    assert all(0.0 <= probability <= 1.0 for probability in distribution.values())
    for video, probability in distribution.items():
        logged = slot_propensity(video, exploit, exploit in admissible, len(admissible), share)
        assert logged == pytest.approx(probability)


def test_the_distribution_spells_out_exploit_and_explore_mass():
    assert slot_distribution(1, [5, 6], 0.1) == pytest.approx({1: 0.9, 5: 0.05, 6: 0.05})
    assert slot_distribution(5, [5, 6], 0.1) == pytest.approx({5: 0.95, 6: 0.05})  # exploit is also in the pool
    assert slot_distribution(1, [], 0.1) == {1: 1.0}  # nothing to explore: the slot exploits


def test_logged_propensities_match_how_often_each_video_is_really_shown():
    """Run one request under many seeds; among runs that agree on the slots above, each video's
    share at the next slot is its logged propensity, and the distinct videos' propensities sum to 1."""
    request = candidates(
        Video(1, 0.9, creator=1), Video(2, 0.8, creator=2), Video(3, 0.7, creator=3), Video(4, 0.6, creator=4),
    )
    explore_pool = pool(Video(3, 0.0, creator=3), Video(8, 0.0, creator=8), Video(9, 0.0, creator=9))
    config = PolicyConfig(exploration_share=0.4, max_per_creator=1, diversity_lambda=1.0)
    runs = 4000

    shown_after = defaultdict(Counter)  # prefix of shown videos → Counter of the next video
    logged = defaultdict(dict)  # prefix → {video: propensity logged for it}
    for seed in range(runs):
        result = rerank(request, user(), config, k=3, pool=explore_pool, rng=np.random.default_rng(seed))
        videos = result.video_ids.tolist()
        for position, video in enumerate(videos):
            prefix = tuple(videos[:position])
            shown_after[prefix][video] += 1
            assert logged[prefix].setdefault(video, result.propensities[position]) == result.propensities[position]

    checked = 0
    for prefix, counts in shown_after.items():
        total = sum(counts.values())
        if total < 400:
            continue
        assert sum(logged[prefix].values()) == pytest.approx(1.0), prefix
        for video, count in counts.items():
            propensity = logged[prefix][video]
            tolerance = 5 * np.sqrt(propensity * (1 - propensity) / total) + 1e-9
            assert abs(count / total - propensity) <= tolerance, (prefix, video, count / total, propensity)
        checked += 1
    assert checked >= 4


def test_a_pool_video_that_is_also_the_policys_choice_counts_both_ways():
    request = candidates(Video(3, 0.9, creator=3), Video(2, 0.8, creator=2))
    explore_pool = pool(Video(3, 0.0, creator=3), Video(8, 0.0, creator=8))
    config = PolicyConfig(exploration_share=0.2, max_per_creator=1, diversity_lambda=1.0)

    for seed in range(30):
        result = rerank(request, user(), config, k=1, pool=explore_pool, rng=np.random.default_rng(seed))

        expected = {3: 0.8 + 0.1, 8: 0.1}[int(result.video_ids[0])]
        assert result.propensities[0] == pytest.approx(expected)


def test_an_explored_video_that_is_also_a_candidate_is_not_shown_again_lower_down():
    request = candidates(Video(1, 0.9, creator=1), Video(2, 0.8, creator=2), Video(3, 0.7, creator=3))
    config = PolicyConfig(exploration_share=1.0)

    result = rerank(request, user(), config, k=5, pool=pool(Video(3, 0.0, creator=3)), rng=np.random.default_rng(0))

    assert result.video_ids.tolist() == [3, 1, 2]
    assert result.was_explored.tolist() == [True, False, False]


def test_the_same_request_and_seed_explore_the_same_way_and_other_requests_differently():
    request = candidates(*(Video(video, 1 - video / 100, creator=video) for video in range(30)))
    explore_pool = pool(*(Video(100 + video, 0.0, creator=100 + video) for video in range(30)))
    config = PolicyConfig(exploration_share=0.3)

    def served(request_id: str) -> list[int]:
        result = rerank(request, user(), config, k=20, pool=explore_pool, rng=request_rng(7, request_id))
        return result.video_ids.tolist()

    assert served("request-a") == served("request-a")
    assert served("request-a") != served("request-b")


def test_pool_from_candidates_keeps_scores_so_an_explored_candidate_is_logged_with_them():
    request = candidates(Video(1, 0.9, creator=1), Video(2, 0.3, creator=2, source="exploration"))
    config = PolicyConfig(exploration_share=1.0)

    result = rerank(request, user(), config, k=2, pool=pool_from_candidates(request), rng=np.random.default_rng(0))

    assert result.video_ids.tolist() == [2, 1]
    assert result.was_explored.tolist() == [True, False]
    assert result.scores.tolist() == [0.3, 0.9]
    assert result.sources.tolist() == ["exploration", "ann"]
