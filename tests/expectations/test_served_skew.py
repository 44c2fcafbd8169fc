"""Skew on served features: row-by-row mismatch rates with known answers, and the KS statistic
beside PSI in the drift comparison."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from expectations.served_skew import compare_served_features
from expectations.skew import compare_feature_distributions, ks_statistic

KEYS = ("request_id", "user_id", "video_id")


def _keys(rows: int) -> dict[str, list]:
    return {"request_id": [f"r{row}" for row in range(rows)], "user_id": list(range(1, rows + 1)),
            "video_id": list(range(100, 100 + rows))}


def test_numbers_match_within_the_tolerance_and_missing_matches_only_missing():
    served = pd.DataFrame({"watch_seconds_28d": [600.0, 300.0, math.nan, 42.0]})
    offline = pd.DataFrame({"watch_seconds_28d": [600.0 + 1e-9, 360.0, math.nan, math.nan]})

    outcome = compare_served_features(served, offline, {"watch_seconds_28d": "numeric"},
                                      abs_tolerance=1e-6, rel_tolerance=1e-4, max_mismatch_rate=0.6)

    assert outcome.statistics["mismatch_rate"] == {"watch_seconds_28d": 0.5}  # rows 1 and 3
    assert outcome.success  # 0.5 <= 0.6


def test_the_relative_tolerance_scales_with_the_offline_value():
    served = pd.DataFrame({"impressions_7d": [1_000_050.0, 10.5]})
    offline = pd.DataFrame({"impressions_7d": [1_000_000.0, 10.0]})

    outcome = compare_served_features(served, offline, {"impressions_7d": "numeric"},
                                      abs_tolerance=0.0, rel_tolerance=1e-4, max_mismatch_rate=0.0)

    # 50 within 1e-4 × 1e6 = 100; 0.5 beyond 1e-4 × 10
    assert outcome.statistics["mismatch_rate"] == {"impressions_7d": 0.5}
    assert not outcome.success


def test_categories_must_be_equal_and_bags_equal_as_lists():
    served = pd.DataFrame({
        "category": ["music", None, "12", "news"],
        "recent_watch_video_ids": [["1", "2"], None, np.array(["3"]), ["4", "5"]],
    })
    offline = pd.DataFrame({
        "category": ["music", None, "13", "news"],
        # an empty bag is a missing one; order matters; a numpy array reads as its list
        "recent_watch_video_ids": [np.array(["1", "2"]), [], ["3"], ["5", "4"]],
    })

    outcome = compare_served_features(served, offline, {"category": "categorical", "recent_watch_video_ids": "list"},
                                      max_mismatch_rate=0.2)

    assert outcome.statistics["mismatch_rate"] == {"category": 0.25, "recent_watch_video_ids": 0.25}
    assert sorted(outcome.failing_columns()) == ["category", "recent_watch_video_ids"]


def test_a_feature_served_in_other_units_fails_first_with_its_rows_as_examples():
    rows = 20
    watch_seconds = np.linspace(60.0, 1200.0, rows)
    served = pd.DataFrame({**_keys(rows), "watch_seconds_28d": watch_seconds / 60.0, "ctr_7d": np.full(rows, 0.1)})
    offline = pd.DataFrame({"watch_seconds_28d": watch_seconds, "ctr_7d": np.full(rows, 0.1)})

    outcome = compare_served_features(served, offline, {"watch_seconds_28d": "numeric", "ctr_7d": "numeric"},
                                      key_columns=KEYS)

    assert not outcome.success
    assert outcome.statistics["mismatch_rate"] == {"watch_seconds_28d": 1.0, "ctr_7d": 0.0}
    assert outcome.statistics["worst_features"] == ["watch_seconds_28d"]
    [failure] = outcome.failures
    assert failure["column"] == "watch_seconds_28d" and failure["observed"] == 1.0
    assert failure["unexpected_examples"][0] == "request_id r0, user_id 1, video_id 100: served 1, offline 60"


def test_a_feature_the_offline_side_lacks_fails_by_name():
    outcome = compare_served_features(pd.DataFrame({"ctr_7d": [0.1]}), pd.DataFrame({"other": [0.1]}),
                                      {"ctr_7d": "numeric"})

    assert not outcome.success
    assert outcome.failures[0]["expectation"] == "feature_present"
    assert outcome.failures[0]["observed"] == "missing from ['offline']"


def test_frames_of_different_rows_or_an_unknown_kind_are_refused():
    with pytest.raises(ValueError, match="same rows; got 2 and 1"):
        compare_served_features(pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [1.0]}), {"a": "numeric"})
    with pytest.raises(ValueError, match=re.escape("unknown feature kinds {'a': 'vector'}")):
        compare_served_features(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0]}), {"a": "vector"})


def test_ks_is_the_largest_gap_between_the_two_empirical_cdfs():
    assert ks_statistic([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]) == pytest.approx(0.5)
    assert ks_statistic([1.0, 2.0], [5.0, 6.0]) == pytest.approx(1.0)
    assert ks_statistic([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(0.0)


def test_drift_fails_on_ks_for_a_rescaled_feature_and_reports_ks_per_numeric_feature():
    rng = np.random.default_rng(3)
    seconds = rng.lognormal(6, 1.0, 4000)
    training = pd.DataFrame({"watch_seconds_28d": seconds, "ctr_7d": rng.beta(2, 20, 4000)})
    serving = pd.DataFrame({"watch_seconds_28d": rng.lognormal(6, 1.0, 4000) / 60.0, "ctr_7d": rng.beta(2, 20, 4000)})

    outcome = compare_feature_distributions(training, serving, numeric_features=["watch_seconds_28d", "ctr_7d"],
                                            max_ks=0.3)

    assert outcome.statistics["ks"]["watch_seconds_28d"] > 0.9
    assert outcome.statistics["ks"]["ctr_7d"] < 0.05
    ks_failures = [failure for failure in outcome.failures if failure["expectation"] == "kolmogorov_smirnov"]
    assert [failure["column"] for failure in ks_failures] == ["watch_seconds_28d"]
    assert ks_failures[0]["unexpected_examples"][1].startswith("p50: ")


def test_without_max_ks_the_drift_comparison_is_unchanged():
    frame = pd.DataFrame({"x": np.arange(100.0)})
    assert "ks" not in compare_feature_distributions(frame, frame, numeric_features=["x"]).statistics
