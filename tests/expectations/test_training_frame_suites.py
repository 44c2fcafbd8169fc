import numpy as np
import pandas as pd

from expectations.training_frames import validate_ranking_frame, validate_retrieval_frame


def _ranking_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    clicked = np.arange(rows) % 5 == 0
    return pd.DataFrame(
        {
            "user_id": rng.integers(1, 50, rows),
            "video_id": rng.integers(1, 500, rows),
            "event_timestamp": pd.Timestamp("2024-05-01") + pd.to_timedelta(np.arange(rows), "min"),
            "clicked": clicked,
            "watch_seconds": np.where(clicked, 90.0, 0.0),
            "split": np.where(np.arange(rows) < rows * 0.8, "train", "holdout"),
            "watch_count_28d": rng.integers(0, 40, rows),
            "ctr_7d": rng.uniform(0, 0.3, rows),
        }
    )


def _validate_ranking(frame):
    return validate_ranking_frame(
        frame, count_features=["watch_count_28d"], rate_features=["ctr_7d"]
    )


def test_clean_ranking_frame_passes():
    outcome = _validate_ranking(_ranking_frame())
    assert outcome.success, outcome.as_markdown()


def test_watch_time_on_a_non_click_fails_as_leakage():
    frame = _ranking_frame()
    frame.loc[1, "watch_seconds"] = 42.0  # row 1 is not a click
    outcome = _validate_ranking(frame)
    assert not outcome.success
    [failure] = outcome.failures
    assert failure["column"] == "watch_seconds"
    assert failure["expected"]["row_condition"] == "clicked == False"
    assert failure["unexpected_examples"] == [42.0]


def test_missing_holdout_out_of_range_ctr_and_sparse_feature_fail():
    frame = _ranking_frame()
    frame["split"] = "train"
    frame.loc[0, "ctr_7d"] = 1.5
    frame.loc[:20, "watch_count_28d"] = np.nan  # 21 of 200 null > 5%
    outcome = _validate_ranking(frame)
    failed = {(f["expectation"], f["column"]) for f in outcome.failures}
    assert failed == {
        ("expect_column_distinct_values_to_contain_set", "split"),
        ("expect_column_values_to_be_between", "ctr_7d"),
        ("expect_column_values_to_not_be_null", "watch_count_28d"),
    }


def test_degenerate_click_rate_fails():
    frame = _ranking_frame()
    frame["clicked"] = False
    frame["watch_seconds"] = 0.0
    outcome = _validate_ranking(frame)
    [failure] = outcome.failures
    assert failure["expectation"] == "expect_column_mean_to_be_between"
    assert failure["observed"] == 0.0


def _retrieval_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "label_video_id": [10, 11, 12, 13],
            "label_time": pd.to_datetime(["2024-05-02", "2024-05-03", "2024-05-04", "2024-05-09"]),
            "history_video_ids": [[5], [5, 10], [7, 8, 9], [1]],
            "history_last_watch_time": pd.to_datetime(
                ["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-08"]
            ),
            "example_age_days": [5.0, 4.0, 3.0, 0.5],
            "split": ["train", "train", "train", "holdout"],
        }
    )


def test_clean_retrieval_frame_passes():
    outcome = validate_retrieval_frame(_retrieval_frame())
    assert outcome.success, outcome.as_markdown()


def test_retrieval_frame_with_empty_history_future_history_and_negative_age_fails():
    frame = _retrieval_frame()
    frame.at[0, "history_video_ids"] = []
    frame.loc[1, "history_last_watch_time"] = pd.Timestamp("2024-05-03")  # = label_time
    frame.loc[2, "example_age_days"] = -1.0
    outcome = validate_retrieval_frame(frame)
    failed = {f["column"]: f["unexpected_examples"] for f in outcome.failures}
    assert failed["history_video_count"] == [0]
    assert "label_time, history_last_watch_time" in failed
    assert failed["example_age_days"] == [-1.0]
