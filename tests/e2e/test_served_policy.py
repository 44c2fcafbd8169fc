"""The policy stage in the real request path: what a served list carries and the rules it keeps."""

from __future__ import annotations

import dataclasses

import numpy as np

from serving.policy import PolicyConfig, PolicyStage
from tests.e2e.recommenders import known_users, with_policy


def test_every_served_item_carries_a_reason_and_a_propensity_and_creators_are_capped(serving):
    _, recommender = serving
    recommender = with_policy(recommender, PolicyStage(PolicyConfig(max_per_creator=1, exploration_share=0.5,
                                                                    exploration_seed=3)))
    explored = 0
    for user in known_users(serving)[:15]:
        response = recommender.recommend(user, 10, "home")
        assert response.request_id and not response.degraded
        assert len({item.video_id for item in response.items}) == len(response.items) == 10
        for item in response.items:
            assert 0 < item.propensity <= 1 and item.reason
            assert item.explored == (item.reason == "exploring")
        explored += sum(item.explored for item in response.items)
        creators = recommender.features.video_features([item.video_id for item in response.items])["creator_id"]
        assert creators.value_counts().max() == 1
    assert explored > 0  # half the slots explore where the pool allows it


def test_a_blocklisted_video_is_never_served_even_when_the_ranker_wants_it(serving, tmp_path):
    _, recommender = serving
    user = known_users(serving)[0]
    favourite = recommender.recommend(user, 5, "home").items[0].video_id
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text(f"# never show\n{favourite}\n")

    guarded = with_policy(recommender, PolicyStage(dataclasses.replace(PolicyConfig(), blocklist_path=blocklist)))

    assert favourite not in [item.video_id for item in guarded.recommend(user, 5, "home").items]
    unknown_user = 10**9  # the popularity path honours it too
    guarded_popular = [item.video_id for item in guarded.recommend(unknown_user, 50, "home").items]
    assert favourite not in guarded_popular


def test_a_failing_policy_serves_the_ranker_order_flagged(serving):
    _, recommender = serving

    class BrokenPolicy(PolicyStage):
        def rerank(self, *args, **kwargs):
            raise RuntimeError("policy bug")

    user = known_users(serving)[1]
    response = with_policy(recommender, BrokenPolicy(PolicyConfig())).recommend(user, 8, "home")

    assert "policy:ranker_order" in response.degraded
    scores = [item.score for item in response.items]
    assert len(scores) == 8 and scores == sorted(scores, reverse=True) and np.all(np.isfinite(scores))
