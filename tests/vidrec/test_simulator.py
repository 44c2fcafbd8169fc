"""The simulator: deterministic, schema-true, and with the structure the models must learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vidrec.rawlog import RawManifest, read_raw_table
from vidrec.schema import RAW_TABLES, SURFACES
from vidrec.settings import VidrecSettings
from vidrec.simulator import (
    SimulationConfig,
    affinity_terms_of_pairs,
    click_probability,
    expected_watch_seconds,
    simulate,
    simulate_world,
    true_affinity,
    true_affinity_of_pairs,
    watch_outcomes,
)

SMALL = SimulationConfig(users=120, videos=200, days=6, seed=3)


@pytest.fixture(scope="module")
def small_world():
    return simulate_world(SMALL)


def test_same_seed_gives_identical_logs():
    first, _ = simulate_world(SMALL)
    second, _ = simulate_world(SMALL)
    for name in RAW_TABLES:
        pd.testing.assert_frame_equal(first[name], second[name])


def test_scoring_requests_in_blocks_gives_the_same_logs_as_all_at_once(small_world, monkeypatch):
    """The logging policy scores requests in blocks to bound memory at 100k videos; the blocks
    must not change a single logged value (same noise stream, row-wise arithmetic)."""
    import vidrec.simulator as simulator

    monkeypatch.setattr(simulator, "POLICY_BLOCK_ROWS", 7)
    blocked, _ = simulate_world(SMALL)
    tables, _ = small_world
    for name in RAW_TABLES:
        pd.testing.assert_frame_equal(blocked[name], tables[name], check_exact=True)


def test_different_seed_gives_different_logs(small_world):
    tables, _ = small_world
    other, _ = simulate_world(SimulationConfig(users=120, videos=200, days=6, seed=4))
    assert not tables["watches"]["video_id"].equals(other["watches"]["video_id"])


def test_tables_have_exactly_the_raw_schemas_required_columns(small_world):
    """What only a serving system knows (the optional columns) the simulator leaves to to_arrow's nulls."""
    tables, _ = small_world
    for name, table in RAW_TABLES.items():
        assert list(tables[name].columns) == table.required_columns, name


def test_no_event_precedes_its_video_upload(small_world):
    tables, _ = small_world
    uploads = tables["videos"].set_index("video_id")["upload_time"]
    for name, column in (("watches", "watch_time"), ("impressions", "impression_time")):
        events = tables[name]
        assert (events[column].to_numpy() >= uploads.loc[events["video_id"]].to_numpy()).all(), name


def test_impressions_show_position_bias(small_world):
    tables, _ = small_world
    impressions = tables["impressions"]
    home = impressions[impressions["surface"] == "home"]
    clicks = home.merge(tables["watches"], on=["user_id", "video_id"], how="left", indicator=True)
    click_rate = clicks.assign(clicked=clicks["_merge"] == "both").groupby("position")["clicked"].mean()
    assert click_rate.loc[0] > click_rate.loc[9]
    assert set(impressions["surface"]) <= set(SURFACES)


def test_impressions_log_the_source_that_explains_them_with_a_rank_score(small_world):
    tables, world = small_world
    impressions = tables["impressions"]
    by_surface = impressions.groupby("surface")["source"].agg(set).to_dict()
    assert by_surface["home"] <= {"ann", "trending", "fresh"}
    assert by_surface["search"] <= {"ann", "trending", "search"}
    assert by_surface["watch_next"] <= {"ann", "trending", "co_watch"}
    scores = impressions["source_score"]
    assert scores.notna().all() and (scores > 0).all() and (scores <= 1).all()
    # a video shown as "ann" stands out by affinity: it is truer to the user's taste than "trending"
    affinity = world.affinity(impressions["user_id"].to_numpy() - 1, impressions["video_id"].to_numpy() - 1)
    mean_affinity = pd.Series(affinity).groupby(impressions["source"].to_numpy()).mean()
    assert mean_affinity["ann"] > mean_affinity["trending"]


def test_watched_videos_have_higher_true_affinity_than_shown_ones(small_world):
    tables, world = small_world
    watches, impressions = tables["watches"], tables["impressions"]
    watched = world.affinity(watches["user_id"].to_numpy() - 1, watches["video_id"].to_numpy() - 1).mean()
    shown = world.affinity(impressions["user_id"].to_numpy() - 1, impressions["video_id"].to_numpy() - 1).mean()
    assert watched > shown + 0.3


def test_new_videos_are_uploaded_during_the_window(small_world):
    tables, _ = small_world
    start = pd.Timestamp(SMALL.start_date)
    assert (tables["videos"]["upload_time"] >= start).sum() > 0.3 * SMALL.videos


def test_simulate_writes_day_partitions_manifest_and_ground_truth(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    summary = simulate(settings, SMALL)

    watches = read_raw_table("watches", settings.raw_dir)
    assert len(watches) == summary.row_counts["watches"] > 0
    days = sorted(path.name for path in (settings.raw_dir / "watches").iterdir())
    assert days[0].startswith("day=2026-01-0")
    manifest = RawManifest.read(settings.raw_dir)
    assert manifest.source == "simulator" and manifest.row_counts == summary.row_counts

    affinity = true_affinity(settings.ground_truth_dir, np.array([1, 2]), np.array([1, 2, 3]))
    _, world = simulate_world(SMALL)
    np.testing.assert_allclose(affinity, world.affinity_matrix(np.array([0, 1]), np.array([0, 1, 2])), rtol=1e-5)


def test_the_expected_watch_seconds_is_what_the_behaviour_model_draws_on_average(small_world):
    """The ranking ceiling's worth of an impression: P(click at the top) × the mean seconds
    `watch_outcomes` draws for a click, for short and long videos, liked and disliked."""
    _, world = small_world
    rng = np.random.default_rng(0)
    draws = 40_000
    videos = np.argsort(world.video_duration)[[0, len(world.video_duration) // 2, -1]]
    for video in videos:
        for affinity in (-1.0, 0.5, 2.0):
            outcomes = watch_outcomes(world, rng, np.zeros(draws, dtype=np.int64), np.full(draws, video),
                                      np.zeros(draws, dtype="datetime64[us]"), np.full(draws, affinity))
            drawn = click_probability(np.array([affinity]), np.array([0]))[0] * outcomes["watch_seconds"].mean()
            expected = expected_watch_seconds(np.array([affinity]), world.video_duration[[video]])[0]
            assert expected == pytest.approx(drawn, rel=0.01), (world.video_duration[video], affinity)


def test_the_affinity_of_pairs_is_the_matrix_diagonal_split_in_its_three_terms(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    simulate(settings, SMALL)
    users, videos = np.array([1, 5, 5, 120]), np.array([3, 3, 200, 1])
    pairs = true_affinity_of_pairs(settings.ground_truth_dir, users, videos)
    matrix = true_affinity(settings.ground_truth_dir, users, videos)
    np.testing.assert_allclose(pairs, np.diag(matrix), rtol=1e-6)
    terms = affinity_terms_of_pairs(settings.ground_truth_dir, users, videos)
    assert sorted(terms) == ["quality", "style", "taste"]
    np.testing.assert_allclose(terms["taste"] + terms["style"] + terms["quality"], pairs)

    with pytest.raises(ValueError, match=r"lacks 1 user\(s\) \(e.g. \[121\]\) and 0 video"):
        true_affinity_of_pairs(settings.ground_truth_dir, np.array([121]), np.array([1]))
