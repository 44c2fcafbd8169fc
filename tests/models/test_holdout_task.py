import numpy as np
import pandas as pd
import pytest

from models.evaluation.holdout_task import build_holdout_task

CUT = pd.Timestamp("2024-01-10")
BEFORE, AFTER = pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-12")


def marts():
    """watch_interactions, user_watch_history and user_features_daily for three users:
    1 watches 10 before the cut and 11 after; 2 watches 20 before and nothing new after;
    3 watches only after the cut (no history, so not a test user)."""
    interactions = pd.DataFrame({
        "user_id": [1, 1, 2, 3],
        "video_id": [10, 11, 20, 30],
        "first_watch_time": [BEFORE, AFTER, BEFORE, AFTER],
    })
    history = pd.DataFrame({
        "user_id": [1, 1, 2, 3],
        "event_timestamp": [BEFORE, AFTER, BEFORE, AFTER],
        "recent_watch_video_ids": [np.array([10]), np.array([10, 11]), np.array([20]), np.array([30])],
        "recent_search_tokens": [np.array(["cats"]), np.array(["cats", "dogs"]), np.array([]), np.array([])],
    })
    profiles = pd.DataFrame({
        "user_id": [1, 1, 2],
        "event_timestamp": [BEFORE, AFTER, BEFORE],
        "country": ["FR", "DE", "US"],
        "device": ["tv", "phone", "web"],
        "age_bucket": ["18-24", "18-24", "35-44"],
        "gender": ["f", "f", "m"],
    })
    return interactions, history, profiles


def test_holdout_task_is_the_protocols_global_split_at_the_cut():
    task = build_holdout_task(*marts(), holdout_start=CUT)
    assert task.split.kind == "global" and task.split.cutoff == CUT
    assert task.split.relevant() == {1: {11}}
    assert task.split.seen() == {1: {10}, 2: {20}}
    assert task.split.cold_items == {11}


def test_queries_hold_only_what_was_known_before_the_cut():
    task = build_holdout_task(*marts(), holdout_start=CUT)
    assert task.queries["user_id"].tolist() == [1]
    query = task.queries.iloc[0]
    assert list(query["history_video_ids"]) == [10]
    assert list(query["history_search_tokens"]) == ["cats"]
    assert (query["country"], query["device"]) == ("FR", "tv")
    assert query["example_age_days"] == 0.0


def test_a_test_user_without_a_history_state_is_an_error():
    interactions, history, profiles = marts()
    with pytest.raises(ValueError, match=r"no state before .* for test users \[1\]"):
        build_holdout_task(interactions, history[history["user_id"] != 1], profiles, holdout_start=CUT)
