"""The simulator's logging policy ranks with observable data only, never with the ground truth.

The logged `source` and `source_score` of an impression must be functions of what a production
system could know at request time (the catalog, the watches logged before the request's day, the
request); otherwise they leak the true affinity into every model that reads them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from vidrec.schema import CATEGORIES
from vidrec.simulator import (
    SESSIONS_START,
    LoggingPolicy,
    SimulationConfig,
    _EventLog,
    _logged_sources,
    _show_slate,
    home_candidates,
    simulate_world,
)

SMALL = SimulationConfig(users=120, videos=200, days=6, seed=3)


@pytest.fixture(scope="module")
def small_world():
    return simulate_world(SMALL)


def _same_catalog_other_latents(world, seed: int):
    """The world with every hidden latent redrawn and every observable column kept."""
    rng = np.random.default_rng(seed)
    return dataclasses.replace(
        world,
        user_taste=world.user_taste[rng.permutation(len(world.user_taste))],
        user_style=rng.normal(0, 0.8, world.user_style.shape),
        video_style=rng.normal(0, 0.8, world.video_style.shape),
        video_quality=rng.normal(0, 0.5, world.video_quality.shape),
        video_popularity=world.video_popularity[rng.permutation(len(world.video_popularity))],
    )


def _policy_from_logs(videos: pd.DataFrame, watches: pd.DataFrame, n_users: int) -> LoggingPolicy:
    """The policy rebuilt from raw-log tables alone (1-based ids, category names)."""
    category_index = videos["category"].map({name: index for index, name in enumerate(CATEGORIES)}).to_numpy()
    policy = LoggingPolicy.without_history(n_users, category_index, videos["creator_id"].to_numpy() - 1)
    policy.record(watches)
    return policy


def test_slates_and_logged_sources_do_not_change_with_the_true_affinity(small_world):
    tables, world = small_world
    other_world = _same_catalog_other_latents(world, seed=11)
    users = np.arange(len(world.user_taste))
    candidates = np.arange(len(world.video_category))
    true_affinity = world.affinity_matrix(users, candidates).ravel()
    other_affinity = other_world.affinity_matrix(users, candidates).ravel()
    assert np.corrcoef(true_affinity, other_affinity)[0, 1] < 0.5
    policy = _policy_from_logs(tables["videos"], tables["watches"], len(users))
    times = np.full(len(users), np.datetime64("2026-01-10T15:00", "us"))
    query_match = (world.video_category[None, :] == (users % len(CATEGORIES))[:, None]) * 3.0
    same_category = (world.video_category[None, :] == world.video_category[users % 7][:, None]) * 2.0

    for surface, extra_logit in (("home", None), ("search", query_match), ("watch_next", same_category)):
        logs = []
        for some_world in (world, other_world):
            log = _EventLog()
            rng = np.random.default_rng(5)  # the same noise for both worlds
            _show_slate(some_world, policy, rng, log, users, times, candidates, 10, surface, "r", extra_logit)
            logs.append(log)
        shown = [log.impressions[0] for log in logs]
        pd.testing.assert_frame_equal(shown[0], shown[1])
        # the two worlds' users do respond differently: the slates are the same despite that
        clicked = [log.close_day(world.video_upload_time) for log in logs]
        assert not clicked[0][["user_id", "video_id"]].equals(clicked[1][["user_id", "video_id"]])


@pytest.mark.parametrize("day_index", [0, 3, 5])
def test_home_sources_and_scores_are_reproduced_from_the_raw_logs_alone(small_world, day_index):
    tables, _ = small_world
    videos = tables["videos"].sort_values("video_id")
    day_start = np.datetime64(SMALL.start_date, "us") + np.timedelta64(day_index, "D")
    logged_before = tables["watches"][tables["watches"]["watch_time"] < day_start + SESSIONS_START]
    policy = _policy_from_logs(videos, logged_before, SMALL.users)
    candidates, freshness = home_candidates(videos["upload_time"].to_numpy().astype("datetime64[us]"), day_start)

    impressions = tables["impressions"]
    shown = impressions[
        (impressions["surface"] == "home")
        & (impressions["impression_time"] >= day_start)
        & (impressions["impression_time"] < day_start + np.timedelta64(1, "D"))
    ].sort_values(["request_id", "position"])
    slate_size = 10
    assert len(shown) and len(shown) % slate_size == 0
    users = shown["user_id"].to_numpy()[::slate_size] - 1
    column_of_video = np.full(len(videos) + 1, -1)
    column_of_video[candidates + 1] = np.arange(len(candidates))
    slate_columns = column_of_video[shown["video_id"].to_numpy()].reshape(-1, slate_size)
    assert (slate_columns >= 0).all()

    terms = [policy.popularity_logit(candidates), policy.model_score(users, candidates), freshness[None, :]]
    sources, scores = _logged_sources(slate_columns, terms[0] + terms[1] + terms[2], terms, "home")
    np.testing.assert_array_equal(shown["source"].to_numpy(), sources.ravel())
    np.testing.assert_allclose(shown["source_score"].to_numpy(), scores.ravel())
    if day_index > 0:  # a policy with history names all three reasons
        assert set(sources.ravel()) == {"trending", "ann", "fresh"}


def test_model_score_is_the_shrunk_share_of_the_users_own_logged_watches():
    policy = LoggingPolicy.without_history(2, video_category=np.array([0, 0, 1]), video_creator=np.array([0, 1, 1]))
    # user 1 watched video 1 twice and video 3 once; user 2 watched nothing
    policy.record(pd.DataFrame({"user_id": [1, 1, 1], "video_id": [1, 1, 3]}))

    score = policy.model_score(np.array([0, 1]), np.array([0, 1, 2]))
    category_share = np.array([2, 2, 1]) / 4  # 3 watches plus one pseudo-watch
    creator_share = np.array([2, 1, 1]) / 4
    np.testing.assert_allclose(score[0], 4.0 * category_share + 3.0 * creator_share)
    np.testing.assert_allclose(score[1], 0.0)
    np.testing.assert_allclose(policy.popularity_logit(np.array([0, 1, 2]))[0], 0.6 * np.log1p([2, 0, 1]))
