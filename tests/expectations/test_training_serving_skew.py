import numpy as np
import pandas as pd

from expectations.skew import compare_feature_distributions, population_stability_index

DEVICES = np.array(["mobile", "desktop", "tv", "tablet"])


def _sample(seed: int, rows: int = 4000, watch_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "watch_count_28d": rng.poisson(8, rows),
            "ctr_7d": rng.beta(2, 20, rows),
            "watch_seconds_28d": rng.lognormal(6 + watch_shift, 1.0, rows),
            "device": rng.choice(DEVICES, rows, p=[0.6, 0.25, 0.1, 0.05]),
        }
    )


def _compare(training, serving):
    return compare_feature_distributions(
        training,
        serving,
        numeric_features=["watch_count_28d", "ctr_7d", "watch_seconds_28d"],
        categorical_features=["device"],
    )


def test_two_samples_of_one_distribution_pass():
    outcome = _compare(_sample(seed=1), _sample(seed=2))
    assert outcome.success, outcome.as_markdown()
    assert all(psi < 0.05 for psi in outcome.statistics["psi"].values())


def test_shifted_feature_fails_and_is_named():
    outcome = _compare(_sample(seed=1), _sample(seed=2, watch_shift=1.0))
    assert not outcome.success
    assert outcome.failing_columns() == ["watch_seconds_28d"]
    [failure] = outcome.failures
    assert failure["observed"] > 0.2
    assert failure["unexpected_examples"]  # the bins that moved, e.g. "[1097, inf): 10.0% → 47.0%"
    assert "watch_seconds_28d" in outcome.as_markdown()


def test_unseen_category_and_null_rate_gap_fail():
    training, serving = _sample(seed=1), _sample(seed=2)
    serving.loc[: len(serving) // 2, "device"] = "smart_fridge"
    serving.loc[:400, "ctr_7d"] = np.nan  # 10% nulls in serving, none in training
    outcome = _compare(training, serving)
    failed = {(f["expectation"], f["column"]) for f in outcome.failures}
    assert failed == {
        ("population_stability_index", "device"),
        ("null_rate_gap", "ctr_7d"),
    }


def test_missing_feature_fails():
    serving = _sample(seed=2).drop(columns=["device"])
    outcome = _compare(_sample(seed=1), serving)
    [failure] = outcome.failures
    assert failure["column"] == "device" and "serving" in failure["observed"]


def test_psi_is_zero_for_identical_histograms_and_grows_with_shift():
    assert population_stability_index(np.array([10, 20, 30]), np.array([10, 20, 30])) == 0.0
    small = population_stability_index(np.array([50, 50]), np.array([55, 45]))
    large = population_stability_index(np.array([50, 50]), np.array([90, 10]))
    assert 0 < small < 0.1 < large
