"""A user the pipeline has not seen yet: popular in their demographic segment, plus exploration."""

from __future__ import annotations

import httpx
from dagster import AssetKey

from serving.policy import PolicyConfig, PolicyStage
from serving.request_trace import RequestTrace
from tests.e2e.recommenders import known_users, with_policy

NEW_USER = 10**9  # no pipeline run has seen this id


def _no_exploration(recommender):
    return with_policy(recommender, PolicyStage(PolicyConfig(exploration_share=0.0, max_per_creator=50)))


def _a_fitted_segment(recommender) -> tuple[str, dict[str, str]]:
    """The finest segment the tiny pipeline run fitted, and a profile that falls in it."""
    segments = recommender.models.popularity.segments
    assert segments is not None and segments.rankings, "the popularity model fitted no segment"
    key = max(segments.rankings, key=lambda name: name.count(","))
    return key, dict(part.split("=", 1) for part in key.split(","))


def test_a_new_user_with_a_profile_is_answered_by_their_segment(serving):
    _, recommender = serving
    recommender = _no_exploration(recommender)
    segment, profile = _a_fitted_segment(recommender)

    answer = recommender.recommend(NEW_USER, 10, "home", profile=profile)

    assert answer.known_user is False and answer.segment == segment
    top_of_segment = recommender.models.popularity.segments.recommend(segment, 1)[0][0]
    assert answer.items[0].video_id == top_of_segment  # the first slot is the policy's best: no diversity yet
    assert all(item.source == "popular" and item.reason == "trending" for item in answer.items)


def test_without_a_usable_profile_a_new_user_gets_global_popularity(serving):
    _, recommender = serving
    recommender = _no_exploration(recommender)
    global_top = recommender.models.popularity.recommend(1)[0][0]
    for profile in (None, {}, {"country": "Atlantis"}):
        answer = recommender.recommend(NEW_USER, 5, "home", profile=profile)
        assert answer.segment == "" and answer.items[0].video_id == global_top


def test_a_known_user_is_answered_by_the_full_funnel_whatever_profile_is_sent(serving):
    _, recommender = serving
    _, profile = _a_fitted_segment(recommender)
    answer = recommender.recommend(known_users(serving)[0], 5, "home", profile=profile)
    assert answer.known_user is True and answer.segment == ""


def test_under_the_popularity_funnel_a_known_user_gets_their_segments_popular_videos(serving):
    _, recommender = serving
    popularity = _no_exploration(recommender)
    popularity.popularity_only = True
    user_id = known_users(serving)[0]
    user, _ = recommender._user_features(user_id, RequestTrace())
    demographics = {name: user[name] for name in ("country", "device", "age_bucket", "gender")}

    answer = popularity.recommend(user_id, 10, "home")

    assert answer.known_user is True
    ranked, segment = recommender.models.popularity.recommend_for(demographics, 1, frozenset())
    assert answer.segment == (segment or "") and answer.items[0].video_id == ranked[0][0]
    assert all(item.source == "popular" for item in answer.items)
    two_stage = _no_exploration(recommender).recommend(user_id, 10, "home")
    assert [item.video_id for item in two_stage.items] != [item.video_id for item in answer.items]


def test_a_new_users_list_explores_with_fresh_and_under_exposed_videos(serving):
    _, recommender = serving
    exploring = with_policy(recommender, PolicyStage(PolicyConfig(exploration_share=0.5, exploration_seed=11)))
    _, profile = _a_fitted_segment(recommender)
    explored = []
    for request in range(5):
        answer = exploring.recommend(NEW_USER + request, 10, "home", profile=profile)
        for item in answer.items:
            assert 0 < item.propensity <= 1
            assert item.explored == (item.reason == "exploring")
        explored += [item for item in answer.items if item.explored]
    assert explored, "half the slots explore, yet none did"
    assert {item.source for item in explored} <= {"fresh", "exploration"}


def test_the_popularity_asset_scores_segments_beside_global_popularity(pipeline_run):
    _, result, _, _ = pipeline_run
    [materialization] = [event.materialization for event in result.get_asset_materialization_events()
                         if event.asset_key == AssetKey("popularity_model")]
    metadata = materialization.metadata
    assert metadata["segments"].value >= 1
    assert "holdout_segment_recall_at_10" in metadata and "holdout_recall_at_10" in metadata


def test_the_api_takes_a_profile_and_names_a_bad_one(service_url, serving):
    _, recommender = serving
    segment, profile = _a_fitted_segment(recommender)

    answer = httpx.post(f"{service_url}/recommend", json={"user_id": NEW_USER, "k": 5, "profile": profile}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["segment"] == segment

    for bad in ({"country": 7}, {"favourite_colour": "blue"}, {"country": "x" * 100}):
        refused = httpx.post(f"{service_url}/recommend", json={"user_id": NEW_USER, "profile": bad}, timeout=30)
        assert refused.status_code == 400, refused.text
        assert "profile" in refused.text
