"""The re-ranking rules, one behaviour per test, on hand-built requests (exploration off unless said)."""

from __future__ import annotations

import numpy as np
import pytest

from serving.policy import Blocklist, PolicyConfig, Reason, rerank
from tests.serving.policy.slates import HOUR, NOW, Video, candidates, creators_in_order, pool, user

RANKER_ORDER = PolicyConfig(
    diversity_lambda=1.0, max_per_creator=10, separate_adjacent_creators=False, exploration_share=0.0
)


def with_rules(**changes) -> PolicyConfig:
    return PolicyConfig(**{**RANKER_ORDER.__dict__, **changes})


def test_without_rules_the_list_is_the_rankers_order():
    request = candidates(Video(1, 0.5), Video(2, 0.9), Video(3, 0.7))

    result = rerank(request, user(), RANKER_ORDER, k=3)

    assert result.video_ids.tolist() == [2, 3, 1]
    assert result.positions.tolist() == [0, 1, 2]
    assert result.scores.tolist() == [0.9, 0.7, 0.5]
    assert result.propensities.tolist() == [1.0, 1.0, 1.0]


def test_at_most_n_videos_per_creator():
    request = candidates(*(Video(video, 1.0 - video / 10, creator=0) for video in range(5)), Video(9, 0.1, creator=1))

    result = rerank(request, user(), with_rules(max_per_creator=2), k=5)

    assert result.video_ids.tolist() == [0, 1, 9]  # creator 0's third video is never shown; the list is short


def test_no_two_neighbours_from_one_creator_even_when_greedy_would_corner_itself():
    # Creator 1's videos score highest, but placing them first leaves two of creator 0's together.
    videos = [Video(10, 0.9, creator=1), Video(11, 0.8, creator=1), Video(1, 0.5), Video(2, 0.4), Video(3, 0.3)]
    creator_of = {video.video_id: video.creator for video in videos}

    result = rerank(candidates(*videos), user(), with_rules(separate_adjacent_creators=True), k=5)

    assert creators_in_order(result, creator_of) == [0, 1, 0, 1, 0]
    assert result.video_ids.tolist() == [1, 10, 2, 11, 3]


def test_when_one_creator_dominates_others_break_it_up_as_early_as_possible_and_the_list_stays_full():
    # Four of creator 0 and one of creator 1 cannot avoid neighbours; the policy still fills the
    # five slots, puts creator 1 right after the first video, and only then repeats creator 0.
    videos = [Video(1, 0.9), Video(2, 0.8), Video(3, 0.7), Video(4, 0.6), Video(9, 0.1, creator=1)]
    creator_of = {video.video_id: video.creator for video in videos}

    result = rerank(candidates(*videos), user(), with_rules(separate_adjacent_creators=True), k=5)

    assert creators_in_order(result, creator_of) == [0, 1, 0, 0, 0]


def test_topic_diversity_interleaves_categories_when_lambda_is_low():
    videos = [
        Video(1, 0.90, category=0), Video(2, 0.89, category=0), Video(3, 0.88, category=0), Video(4, 0.50, category=1)
    ]

    by_score = rerank(candidates(*videos), user(), with_rules(diversity_lambda=1.0), k=4)
    diverse = rerank(candidates(*videos), user(), with_rules(diversity_lambda=0.5), k=4)

    assert by_score.video_ids.tolist() == [1, 2, 3, 4]
    assert diverse.video_ids.tolist() == [1, 4, 2, 3]


def test_a_small_relevance_gap_keeps_the_same_topic_when_lambda_is_high():
    videos = [Video(1, 1.0, category=0), Video(2, 0.95, category=0), Video(3, 0.0, category=1)]

    result = rerank(candidates(*videos), user(), with_rules(diversity_lambda=0.9), k=3)

    # video 2's relevance (0.95) beats video 3's (0) by more than the 0.1 / 0.9 penalty.
    assert result.video_ids.tolist() == [1, 2, 3]


def test_embedding_similarity_spreads_lookalikes():
    videos = [Video(1, 0.9), Video(2, 0.85), Video(3, 0.5)]
    embeddings = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])  # 1 and 2 look alike

    config = with_rules(diversity_lambda=0.5, diversity_similarity="embedding")

    result = rerank(candidates(*videos, embeddings=embeddings), user(), config, k=3)

    assert result.video_ids.tolist() == [1, 3, 2]


def test_embedding_similarity_without_embeddings_is_refused():
    config = with_rules(diversity_lambda=0.5, diversity_similarity="embedding")

    with pytest.raises(ValueError, match="needs embeddings"):
        rerank(candidates(Video(1, 0.5)), user(), config, k=1)


def test_videos_watched_past_the_threshold_are_dropped_and_counted():
    request = candidates(Video(1, 0.9), Video(2, 0.8), Video(3, 0.7))

    result = rerank(request, user(watched={1: 0.81, 2: 0.8}), with_rules(watched_fraction_threshold=0.8), k=3)

    assert result.video_ids.tolist() == [2, 3]  # 80% exactly is not "past" 80%
    assert result.dropped_watched == 1


def test_blocklisted_videos_are_never_shown_even_at_the_top():
    request = candidates(Video(1, 0.99), Video(2, 0.5))

    result = rerank(request, user(), RANKER_ORDER, k=2, blocklist=Blocklist([1, 77]))

    assert result.video_ids.tolist() == [2]
    assert result.dropped_blocked == 1


def test_a_new_upload_from_a_subscribed_creator_is_boosted_and_says_why():
    videos = [
        Video(1, 0.9, creator=1),
        Video(2, 0.8, creator=7, uploaded=NOW - 2 * HOUR),  # new, subscribed
        Video(3, 0.85, creator=8, uploaded=NOW - 2 * HOUR),  # new, not subscribed
        Video(4, 0.85, creator=7, uploaded=NOW - 72 * HOUR),  # subscribed, too old
    ]
    config = with_rules(fresh_upload_hours=48, fresh_subscription_boost=1.5)

    result = rerank(candidates(*videos), user(subscribed=(7,)), config, k=4)

    assert result.video_ids[0] == 2
    assert result.reasons[0] == Reason.NEW_FROM_SUBSCRIPTION
    assert Reason.NEW_FROM_SUBSCRIPTION not in result.reasons[1:].tolist()


def test_each_video_gets_the_most_specific_true_reason():
    videos = [
        Video(1, 0.9, source="co_watch", because=42),
        Video(2, 0.8, source="co_watch"),  # item-to-item, but the watched video is unknown
        Video(3, 0.7, source="trending"),
        Video(4, 0.6, source="ann"),
    ]

    result = rerank(candidates(*videos), user(), RANKER_ORDER, k=4)

    assert result.reasons.tolist() == ["because_you_watched", "recommended_for_you", "trending", "recommended_for_you"]
    assert result.because_video_ids.tolist() == [42, -1, -1, -1]
    assert result.sources.tolist() == ["co_watch", "co_watch", "trending", "ann"]


def test_a_video_sent_twice_is_shown_once_with_its_better_score():
    request = candidates(Video(1, 0.2, source="trending"), Video(2, 0.5), Video(1, 0.9, source="co_watch", because=5))

    result = rerank(request, user(), RANKER_ORDER, k=3)

    assert result.video_ids.tolist() == [1, 2]
    assert result.sources.tolist() == ["co_watch", "ann"]


def test_fewer_eligible_videos_than_k_gives_a_shorter_list_and_k_zero_an_empty_one():
    request = candidates(Video(1, 0.9), Video(2, 0.8))

    assert len(rerank(request, user(), RANKER_ORDER, k=5)) == 2
    assert len(rerank(request, user(), RANKER_ORDER, k=0)) == 0
    assert len(rerank(candidates(), user(), RANKER_ORDER, k=5)) == 0


def test_exploration_needs_an_injected_random_stream():
    with pytest.raises(ValueError, match="no rng"):
        rerank(candidates(Video(1, 0.9)), user(), with_rules(exploration_share=0.1), k=1, pool=pool(Video(5, 0.0)))


def test_every_slot_explores_at_share_one_and_says_so():
    request = candidates(Video(1, 0.9, creator=1), Video(2, 0.8, creator=2))
    explore_pool = pool(Video(5, 0.0, creator=5), Video(6, 0.0, creator=6))
    config = with_rules(exploration_share=1.0)

    result = rerank(request, user(), config, k=2, pool=explore_pool, rng=np.random.default_rng(0))

    assert sorted(result.video_ids.tolist()) == [5, 6]
    assert result.was_explored.all()
    assert result.reasons.tolist() == ["exploring", "exploring"]
    assert result.propensities.tolist() == [0.5, 1.0]  # 1 of 2 pool videos, then 1 of the 1 left
    assert result.sources.tolist() == ["exploration", "exploration"]
    assert np.isnan(result.scores).all()  # the ranker never scored them


def test_blocked_and_watched_pool_videos_are_never_explored():
    request = candidates(Video(1, 0.9, creator=1), Video(2, 0.8, creator=2), Video(3, 0.7, creator=3))
    explore_pool = pool(Video(5, 0.0, creator=5), Video(6, 0.0, creator=6), Video(7, 0.0, creator=7))
    config = with_rules(exploration_share=1.0)

    result = rerank(
        request, user(watched={6: 0.95}), config, k=3,
        pool=explore_pool, blocklist=Blocklist([5]), rng=np.random.default_rng(0),
    )

    assert result.video_ids.tolist() == [7, 1, 2]  # only 7 is explorable; then the pool is empty
    assert result.propensities.tolist() == [1.0, 1.0, 1.0]


def test_an_explored_video_never_sits_next_to_its_creators_video():
    request = candidates(Video(1, 0.9, creator=3), Video(2, 0.8, creator=4))
    explore_pool = pool(Video(5, 0.0, creator=1), Video(6, 0.0, creator=1), Video(7, 0.0, creator=2))
    config = with_rules(exploration_share=1.0, separate_adjacent_creators=True)

    for seed in range(20):
        result = rerank(request, user(), config, k=2, pool=explore_pool, rng=np.random.default_rng(seed))

        assert result.propensities[0] == pytest.approx(1 / 3)
        if result.video_ids[0] in (5, 6):  # creator 1 shown: its other pool video is not drawable next
            assert (result.video_ids[1], result.propensities[1]) == (7, 1.0)
        else:
            assert result.video_ids[1] in (5, 6) and result.propensities[1] == 0.5


def test_a_pool_video_with_another_creator_than_its_candidate_copy_is_refused():
    with pytest.raises(ValueError, match="pool video 1 has creator 9 but creator 0 as a candidate"):
        rerank(candidates(Video(1, 0.9)), user(), RANKER_ORDER, k=1, pool=pool(Video(1, 0.0, creator=9)))


def test_bad_inputs_name_the_column_and_the_expected_length():
    with pytest.raises(ValueError, match="creator_ids has 1 entries, expected 2"):
        candidates_with_short_creators()
    with pytest.raises(ValueError, match=r"scores\[1\] is nan \(video 8\)"):
        rerank(candidates(Video(7, 0.5), Video(8, float("nan"))), user(), RANKER_ORDER, k=1)


def candidates_with_short_creators():
    from serving.policy import RankedCandidates

    return RankedCandidates(
        video_ids=[7, 8], scores=[0.1, 0.2], creator_ids=[1], categories=[0, 0], upload_times=[0, 0],
        sources=["ann", "ann"], source_scores=[0.5, 0.5],
    )


def test_string_categories_diversify_like_integer_codes():
    from serving.policy import RankedCandidates

    request = RankedCandidates(
        video_ids=[1, 2, 3], scores=[0.9, 0.89, 0.5], creator_ids=[1, 2, 3], categories=["music", "music", "news"],
        upload_times=[0, 0, 0], sources=["ann"] * 3, source_scores=[0.5] * 3,
    )
    explore_pool = pool(Video(9, 0.0, creator=9, category=4))  # integer category beside string ones

    result = rerank(request, user(), with_rules(diversity_lambda=0.5), k=3, pool=explore_pool)

    assert result.video_ids.tolist() == [1, 3, 2]
