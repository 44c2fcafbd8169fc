import pandas as pd
import pytest

from models.evaluation.holdout_task import build_holdout_task, task_with_stored_queries
from tests.models.retrieval.user_feature_marts import history_row, profile_row, store_over_marts

CUT = pd.Timestamp("2024-01-10")
BEFORE, AFTER = pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-12")


def interactions() -> pd.DataFrame:
    """watch_interactions for three users: 1 watches 10 before the cut and 11 after; 2 watches 20
    before and nothing new after; 3 watches only after the cut (no history, so not a test user)."""
    return pd.DataFrame({
        "user_id": [1, 1, 2, 3],
        "video_id": [10, 11, 20, 30],
        "first_watch_time": [BEFORE, AFTER, BEFORE, AFTER],
    })


def store(home, histories=None):
    """The feature marts behind those watches: history states at each watch, profile snapshots."""
    profiles = [
        profile_row(1, BEFORE.to_pydatetime(), country="FR", device="tv"),
        profile_row(1, AFTER.to_pydatetime(), country="DE", device="phone"),
        profile_row(2, BEFORE.to_pydatetime(), country="US", device="web", gender="m"),
    ]
    if histories is None:
        histories = [
            history_row(1, BEFORE.to_pydatetime(), [10], ["cats"]),
            history_row(1, AFTER.to_pydatetime(), [10, 11], ["cats", "dogs"]),
            history_row(2, BEFORE.to_pydatetime(), [20], []),
            history_row(3, AFTER.to_pydatetime(), [30], []),
        ]
    return store_over_marts(home, profiles, histories)


def test_holdout_task_is_the_protocols_global_split_at_the_cut(tmp_path):
    task = build_holdout_task(interactions(), store(tmp_path), holdout_start=CUT)
    assert task.split.kind == "global" and task.split.cutoff == CUT
    assert task.split.relevant() == {1: {11}}
    assert task.split.seen() == {1: {10}, 2: {20}}
    assert task.split.cold_items == {11}


def test_queries_hold_only_what_was_known_before_the_cut(tmp_path):
    task = build_holdout_task(interactions(), store(tmp_path), holdout_start=CUT)
    assert task.queries["user_id"].tolist() == [1]
    query = task.queries.iloc[0]
    assert list(query["history_video_ids"]) == [10]
    assert list(query["history_search_tokens"]) == ["cats"]
    assert (query["country"], query["device"]) == ("FR", "tv")
    assert query["example_age_days"] == 0.0


def test_a_test_user_without_a_history_state_is_an_error(tmp_path):
    only_others = [history_row(2, BEFORE.to_pydatetime(), [20], []), history_row(3, AFTER.to_pydatetime(), [30], [])]
    with pytest.raises(ValueError, match=r"no state before .* for test users \[1\]"):
        build_holdout_task(interactions(), store(tmp_path, only_others), holdout_start=CUT)


def test_stored_queries_give_back_the_task_they_were_built_with(tmp_path):
    built = build_holdout_task(interactions(), store(tmp_path), holdout_start=CUT)
    built.queries.to_parquet(tmp_path / "holdout_queries.parquet")

    loaded = task_with_stored_queries(interactions(), pd.read_parquet(tmp_path / "holdout_queries.parquet"), CUT)

    assert loaded.split.relevant() == built.split.relevant()
    assert loaded.queries["history_video_ids"].tolist() == [[10]]  # a list again, not a parquet array
    pd.testing.assert_frame_equal(loaded.queries, built.queries)


def test_stored_queries_of_another_holdout_are_refused(tmp_path):
    built = build_holdout_task(interactions(), store(tmp_path), holdout_start=CUT)
    later_data = pd.concat([interactions(),
                            pd.DataFrame({"user_id": [2], "video_id": [21], "first_watch_time": [AFTER]})])

    with pytest.raises(ValueError, match="materialize holdout_queries again"):
        task_with_stored_queries(later_data, built.queries, CUT)
