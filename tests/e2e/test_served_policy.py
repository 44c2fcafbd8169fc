"""The policy stage in the real request path: what a served list carries and the rules it keeps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from serving.policy import PolicyConfig, PolicyStage
from serving.runtime import ServingRuntime


@pytest.fixture(scope="module")
def serving(pipeline_run):
    runtime = ServingRuntime.open(pipeline_run[0])
    watcher = runtime.champion_watcher()
    assert watcher.poll(), watcher.not_ready_reason
    yield runtime, watcher.current
    runtime.close()


def _known_users(serving) -> list[int]:
    runtime, recommender = serving
    users = pd.read_parquet(runtime.settings.raw_dir / "users", columns=["user_id"])["user_id"].tolist()
    return [user for user in users if recommender.features.user_features(user)]


def _copy(recommender, policy):
    from serving.recommender import Recommender

    return Recommender(recommender.models, recommender.features, recommender.candidates_per_request,
                       recommender.request_clock, recommender.budgets, None, recommender.last_known_users, policy)


def test_every_served_item_carries_a_reason_and_a_propensity_and_creators_are_capped(serving):
    _, recommender = serving
    recommender = _copy(recommender, PolicyStage(PolicyConfig(max_per_creator=1, exploration_share=0.5,
                                                              exploration_seed=3)))
    explored = 0
    for user in _known_users(serving)[:15]:
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
    user = _known_users(serving)[0]
    favourite = recommender.recommend(user, 5, "home").items[0].video_id
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text(f"# never show\n{favourite}\n")

    guarded = _copy(recommender, PolicyStage(dataclasses.replace(PolicyConfig(), blocklist_path=blocklist)))

    assert favourite not in [item.video_id for item in guarded.recommend(user, 5, "home").items]
    unknown_user = 10**9  # the popularity path honours it too
    guarded_popular = [item.video_id for item in guarded.recommend(unknown_user, 50, "home").items]
    assert favourite not in guarded_popular


def test_a_failing_policy_serves_the_ranker_order_flagged(serving):
    _, recommender = serving

    class BrokenPolicy(PolicyStage):
        def rerank(self, *args, **kwargs):
            raise RuntimeError("policy bug")

    user = _known_users(serving)[1]
    response = _copy(recommender, BrokenPolicy(PolicyConfig())).recommend(user, 8, "home")

    assert "policy:ranker_order" in response.degraded
    scores = [item.score for item in response.items]
    assert len(scores) == 8 and scores == sorted(scores, reverse=True) and np.all(np.isfinite(scores))
