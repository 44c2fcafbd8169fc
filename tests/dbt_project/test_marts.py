"""The dbt marts, built for real over hand-made raw rows (conftest.py), hold the values the
data contract in docs/architecture.md promises."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest


def t(text: str) -> datetime:
    """A naive UTC timestamp from 'YYYY-MM-DD HH:MM' (the marts' timestamps are naive UTC)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


MARTS = (
    "video_catalog",
    "user_features_daily",
    "video_features_daily",
    "user_watch_history",
    "user_engagement_history",
    "retrieval_training_examples",
    "ranking_training_examples",
    "watch_interactions",
)


def test_dbt_build_passes_every_model_and_test(built_marts) -> None:
    results = built_marts.result.result.results
    failures = [(r.node.unique_id, r.status, r.message) for r in results if r.status not in ("success", "pass")]
    assert built_marts.result.success, failures
    assert not failures
    tests_run = {r.node.name for r in results if r.node.resource_type == "test"}
    assert "assert_retrieval_history_precedes_label" in tests_run
    assert len(tests_run) > 50


@pytest.mark.parametrize("mart", MARTS)
def test_every_mart_is_written_as_parquet(built_marts, mart: str) -> None:
    assert (built_marts.marts_dir / f"{mart}.parquet").is_file()


def test_mart_columns_follow_the_contract(built_marts) -> None:
    columns = {
        mart: [row[0] for row in built_marts.query(f"describe select * from '{{marts}}/{mart}.parquet'")]
        for mart in MARTS
    }
    assert columns["retrieval_training_examples"] == [
        "user_id", "label_video_id", "label_time", "history_video_ids", "history_search_tokens",
        "history_last_watch_time", "example_age_days", "split",
    ]
    assert columns["user_watch_history"] == [
        "user_id", "event_timestamp", "recent_watch_video_ids", "recent_search_tokens",
        "watch_count_total", "last_watched_video_id",
    ]
    assert columns["ranking_training_examples"] == [
        "request_id", "user_id", "video_id", "surface", "position", "event_timestamp", "retrieval_source",
        "retrieval_source_score", "clicked", "watch_seconds", "liked", "shared", "disliked", "split",
    ]
    assert "day" not in columns["video_catalog"]


def test_user_watch_history_is_the_state_after_each_event(built_marts) -> None:
    history = built_marts.rows("user_watch_history", where="user_id = 2")
    assert [
        (row["event_timestamp"], row["recent_watch_video_ids"], row["watch_count_total"])
        for row in history
    ] == [
        (t("2026-01-02 09:00"), [], 0),  # the search, before any watch
        (t("2026-01-02 09:05"), [13], 1),
        (t("2026-01-02 11:00"), [13, 10, 12], 3),  # two watches at one instant: one state
        (t("2026-01-06 20:00"), [10, 12, 14], 4),  # the last history_length=3 watches
    ]
    assert {tuple(row["recent_search_tokens"]) for row in history} == {("cat", "cat video", "video")}


def test_rollback_examples_take_the_history_strictly_before_the_label(built_marts) -> None:
    examples = built_marts.rows("retrieval_training_examples", where="user_id = 1")
    assert [
        (
            row["label_video_id"],
            row["history_video_ids"],
            row["history_search_tokens"],
            row["history_last_watch_time"],
            row["split"],
        )
        for row in examples
    ] == [
        # the first watch has no history, so 3 watches give exactly 2 examples
        (11, [10], [], t("2026-01-01 10:00"), "train"),
        (12, [10, 11], ["hip", "hip hop", "hop", "lofi", "lofi hip"], t("2026-01-02 12:00"), "holdout"),
    ]


def test_example_age_counts_days_to_the_end_of_its_split_window(built_marts) -> None:
    ages = {
        (row["user_id"], row["label_video_id"]): row["example_age_days"]
        for row in built_marts.rows("retrieval_training_examples")
    }
    # train rows end at holdout_start (2026-01-04 00:00); holdout rows at the last watch
    assert ages[(1, 11)] == pytest.approx(1.5)
    assert ages[(1, 12)] == pytest.approx((datetime(2026, 1, 6, 20) - datetime(2026, 1, 5, 9)).total_seconds() / 86400)
    assert ages[(2, 14)] == 0.0


def test_simultaneous_watches_do_not_see_each_other(built_marts) -> None:
    examples = built_marts.rows("retrieval_training_examples", where="user_id = 2 and split = 'train'")
    # the 09:05 watch only has a search before it: no example; the 11:00 pair share one history
    assert [(row["label_video_id"], row["history_video_ids"]) for row in examples] == [
        (10, [13]),
        (12, [13]),
    ]


def test_examples_are_capped_to_the_most_recent_per_user_and_split(built_marts) -> None:
    examples = built_marts.rows("retrieval_training_examples", where="user_id = 4", order_by="label_time")
    # 5 watches -> 4 candidate examples, max_examples_per_user=2 keeps the last two
    assert [(row["label_time"], row["history_video_ids"]) for row in examples] == [
        (t("2026-01-03 04:00"), [10, 11, 12]),
        (t("2026-01-03 05:00"), [11, 12, 13]),
    ]


def test_a_watch_within_30_minutes_of_an_impression_is_a_click(built_marts) -> None:
    outcomes = {
        (row["request_id"], row["video_id"]): (row["clicked"], row["watch_seconds"], row["liked"], row["split"])
        for row in built_marts.rows("ranking_training_examples")
    }
    assert outcomes == {
        ("r1", 13): (True, 60.0, False, "train"),  # watched 5 minutes later
        ("r1", 10): (False, 0.0, False, "train"),  # watched 2 hours later
        ("r2", 12): (True, 150.0, True, "holdout"),
        ("r3", 14): (False, 0.0, False, "holdout"),  # never watched
        ("r4", 11): (True, 200.0, False, "train"),  # 20 minutes later
    }


def test_watch_interactions_split_on_the_first_watch(built_marts) -> None:
    pairs = {
        (row["user_id"], row["video_id"]): (row["watch_count"], row["watch_seconds_total"], row["split"])
        for row in built_marts.rows("watch_interactions")
    }
    assert pairs[(1, 10)] == (1, 50.0, "train")  # the logged duplicate is dropped
    assert pairs[(4, 10)] == (2, 60.0, "train")
    assert pairs[(2, 14)] == (1, 300.0, "holdout")
    assert len(pairs) == 11


def test_user_features_use_only_events_before_the_snapshot(built_marts) -> None:
    snapshots = {row["event_timestamp"]: row for row in built_marts.rows("user_features_daily", where="user_id = 1")}
    assert min(snapshots) == t("2026-01-01 00:00") and max(snapshots) == t("2026-01-07 00:00")
    assert snapshots[t("2026-01-01 00:00")]["watch_count_28d"] == 0
    end_of_jan_2 = snapshots[t("2026-01-03 00:00")]
    assert (end_of_jan_2["country"], end_of_jan_2["device"]) == ("US", "mobile")
    assert end_of_jan_2["watch_count_28d"] == 2
    assert end_of_jan_2["watch_seconds_28d"] == 250.0
    assert end_of_jan_2["mean_watch_fraction_28d"] == pytest.approx((0.5 + 1.0) / 2)
    assert end_of_jan_2["like_count_28d"] == 1
    assert end_of_jan_2["active_days_28d"] == 2
    assert (end_of_jan_2["impressions_7d"], end_of_jan_2["clicks_7d"]) == (1, 1)
    # user 2 signed up on 2026-01-02: the first snapshot is that day's opening midnight
    first_of_user_2 = built_marts.rows("user_features_daily", where="user_id = 2")[0]
    assert first_of_user_2["event_timestamp"] == t("2026-01-02 00:00")


def test_video_features_start_at_the_upload_day(built_marts) -> None:
    snapshots = {row["event_timestamp"]: row for row in built_marts.rows("video_features_daily", where="video_id = 14")}
    assert min(snapshots) == t("2026-01-03 00:00")
    assert snapshots[t("2026-01-03 00:00")]["video_age_days"] == 0.0
    assert snapshots[t("2026-01-04 00:00")]["video_age_days"] == pytest.approx(14 / 24)
    assert snapshots[t("2026-01-07 00:00")]["watch_count_total"] == 1
    comedy = {
        row["event_timestamp"]: row for row in built_marts.rows("video_features_daily", where="video_id = 13")
    }[t("2026-01-03 00:00")]
    assert (comedy["creator_id"], comedy["category"]) == (101, "comedy")
    assert (comedy["impressions_7d"], comedy["clicks_7d"], comedy["watches_7d"]) == (1, 1, 1)
    assert comedy["ctr_7d"] == pytest.approx(2 / 21)


def test_last_watched_video_is_the_newest_history_entry(built_marts) -> None:
    rows = built_marts.query(
        "select recent_watch_video_ids, last_watched_video_id from '{marts}/user_watch_history.parquet'"
    )
    assert rows, "user_watch_history is empty"
    for history, last_watched in rows:
        assert last_watched == (history[-1] if history else None)


def test_engagement_log_at_a_request_holds_earlier_impressions_but_not_its_own(built_marts) -> None:
    states = {
        row["request_id"]: row for row in built_marts.rows("user_engagement_history", where="user_id = 1")
    }
    # one state per request (r4, r2, r3), plus the one the user's next request will see
    assert sorted(states) == ["next:1", "r2", "r3", "r4"]
    assert states["r2"]["event_timestamp"] == t("2026-01-05 08:58")  # the request's start
    at_r4 = _logs(states["r4"])
    assert (at_r4[0]["video_ids"], at_r4[1]["video_ids"]) == ([10], [])
    watches, impressions = _logs(states["r2"])
    assert watches["video_ids"] == [10, 11]  # the logged duplicate watch is dropped
    assert watches["creator_ids"] == [100, 100]
    assert watches["categories"] == ["music", "music"]
    assert watches["fractions"] == [0.5, 1.0]
    assert watches["unix_seconds"][0] == t("2026-01-01 10:00").replace(tzinfo=UTC).timestamp()
    assert impressions["video_ids"] == [11]  # r4's, not r2's own
    # the next request: everything, as of 1 ms after the last event of the whole log (user 2's)
    assert states["next:1"]["event_timestamp"] == datetime(2026, 1, 6, 20, 0, 0, 1000)
    watches, impressions = _logs(states["next:1"])
    assert watches["video_ids"] == [10, 11, 12]
    assert impressions["video_ids"] == [12, 14]  # the last impression_history_length (2)


def _logs(state: dict) -> tuple[dict, dict]:
    return json.loads(state["watch_log"]), json.loads(state["impression_log"])


def test_ranking_examples_carry_what_retrieval_logged(built_marts) -> None:
    logged = {
        row["request_id"]: (row["retrieval_source"], row["retrieval_source_score"])
        for row in built_marts.rows("ranking_training_examples")
    }
    assert logged["r2"] == ("co_watch", 0.5)
    assert logged["r3"] == (None, None)
