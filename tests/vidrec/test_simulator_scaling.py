"""The simulator's candidate pools: what keeps a day's cost linear in its requests.

A request scores at most `candidate_pool_size` candidates (its pool); below that size nothing
changes, so the default world's logs, which every benchmark in docs/ was measured on, stay as they
were. Above it, each shown or organically watched video must come from its request's pool.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import pytest

import vidrec.simulator as simulator
from vidrec.schema import RAW_TABLES
from vidrec.simulator import SimulationConfig, candidate_pools, home_candidates, simulate_world

SMALL = SimulationConfig(users=120, videos=200, days=6, seed=3)
CAPPED = SimulationConfig(users=150, videos=400, days=5, seed=5, candidate_pool_size=40)


def _fingerprint(tables: dict[str, pd.DataFrame]) -> str:
    digest = hashlib.sha256()
    for name, columns in (("impressions", ["user_id", "video_id", "position"]), ("watches", ["user_id", "video_id"]),
                          ("searches", ["user_id"])):
        for column in columns:
            digest.update(tables[name][column].to_numpy(np.int64).tobytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def capped_world():
    return simulate_world(CAPPED)


def test_the_default_pool_covers_the_default_catalogue():
    assert SimulationConfig().candidate_pool_size >= SimulationConfig().videos


def test_uncapped_logs_are_those_from_before_the_pools():
    """Pinned from the simulator before candidate pools existed: an uncapped run draws nothing
    more and scores the same candidates, so not one logged id or position moves."""
    tables, _ = simulate_world(SMALL)
    assert _fingerprint(tables) == "c9254e264e1bfc15"
    assert {name: len(tables[name]) for name in ("impressions", "watches", "searches")} == {
        "impressions": 5903, "watches": 539, "searches": 136}


def test_a_cap_at_the_catalogue_size_is_no_cap():
    tables, _ = simulate_world(SMALL)
    at_cap, _ = simulate_world(dataclasses.replace(SMALL, candidate_pool_size=SMALL.videos))
    for name in RAW_TABLES:
        pd.testing.assert_frame_equal(at_cap[name], tables[name], check_exact=True)


def test_no_pool_is_drawn_when_the_candidates_fit():
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    assert candidate_pools(rng, 50, 10, 50) is None
    assert rng.bit_generator.state == state


def test_each_pool_is_a_distinct_subset_of_the_pool_size():
    pools = candidate_pools(np.random.default_rng(1), 97, 30, 12)
    columns = pools.columns(slice(None))
    assert columns.shape == (30, 12)
    assert all(len(set(row)) == 12 for row in columns)
    assert columns.min() >= 0 and columns.max() < 97
    np.testing.assert_array_equal(pools.columns(slice(3, 5)), columns[3:5])


def test_capped_runs_are_deterministic_and_capped_logs_differ(capped_world):
    tables, _ = capped_world
    again, _ = simulate_world(CAPPED)
    for name in RAW_TABLES:
        pd.testing.assert_frame_equal(again[name], tables[name], check_exact=True)
    uncapped, _ = simulate_world(dataclasses.replace(CAPPED, candidate_pool_size=CAPPED.videos))
    assert not uncapped["impressions"]["video_id"].equals(tables["impressions"]["video_id"])


def test_capped_logs_do_not_depend_on_the_scoring_blocks(capped_world, monkeypatch):
    monkeypatch.setattr(simulator, "POLICY_BLOCK_ROWS", 7)
    blocked, _ = simulate_world(CAPPED)
    tables, _ = capped_world
    for name in RAW_TABLES:
        pd.testing.assert_frame_equal(blocked[name], tables[name], check_exact=True)


def test_every_shown_video_is_in_its_requests_pool_and_nothing_scores_more(monkeypatch):
    slates, widths = [], []
    show_slate, model_score = simulator._show_slate, simulator.LoggingPolicy.model_score

    def recording_show_slate(world, policy, rng, log, users, times, candidate_videos, slate_size, surface,
                             request_prefix, extra_logit=None, pools=None):
        slates.append((request_prefix, candidate_videos, pools))
        return show_slate(world, policy, rng, log, users, times, candidate_videos, slate_size, surface,
                          request_prefix, extra_logit, pools)

    def recording_model_score(self, users, candidate_videos):
        widths.append(np.atleast_2d(candidate_videos).shape[1])
        return model_score(self, users, candidate_videos)

    def no_full_affinity(*args, **kwargs):
        raise AssertionError("organic watches scored every candidate despite the cap")

    monkeypatch.setattr(simulator, "_show_slate", recording_show_slate)
    monkeypatch.setattr(simulator.LoggingPolicy, "model_score", recording_model_score)
    monkeypatch.setattr(simulator.World, "affinity_matrix", no_full_affinity)
    tables, _ = simulate_world(CAPPED)

    assert widths and max(widths) == CAPPED.candidate_pool_size
    impressions = tables["impressions"]
    capped_slates = [(prefix, videos, pools) for prefix, videos, pools in slates if pools is not None]
    assert {prefix[-1] for prefix, _, _ in capped_slates} == {"h", "s", "w"}
    checked = 0
    for prefix, candidate_videos, pools in capped_slates:
        shown = impressions[impressions["request_id"].str.fullmatch(rf"{prefix}\d+")]
        request = shown["request_id"].str.slice(len(prefix)).astype(int).to_numpy()
        pool_videos = candidate_videos[pools.columns(slice(None))] + 1  # (requests, pool), 1-based ids
        assert (pool_videos[request] == shown["video_id"].to_numpy()[:, None]).any(axis=1).all(), prefix
        checked += len(shown)
    assert checked > 0.5 * len(impressions)


def test_organic_choices_come_from_each_users_pool(capped_world):
    _, world = capped_world
    available, _ = home_candidates(world.video_upload_time, np.datetime64(CAPPED.start_date, "us"))
    users = np.arange(60)
    pools = candidate_pools(np.random.default_rng(2), len(available), len(users), 9)
    videos, affinity = simulator._organic_choices_in_pools(world, np.random.default_rng(3), users, available, pools)
    pool_videos = available[pools.columns(slice(None))]
    assert (pool_videos == videos[:, None]).any(axis=1).all()
    np.testing.assert_allclose(affinity, world.affinity(users, videos))


def test_capped_slates_log_valid_sources_and_rank_scores_within_the_pool(capped_world):
    tables, _ = capped_world
    impressions = tables["impressions"]
    assert set(impressions["source"]) <= {"ann", "trending", "fresh", "search", "co_watch"}
    scores = impressions["source_score"]
    assert (scores >= 1.0 / CAPPED.candidate_pool_size).all() and (scores <= 1).all()
