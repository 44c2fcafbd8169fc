import numpy as np
import pytest

from models.calibration import (
    IsotonicCalibrator,
    PlattCalibrator,
    calibrator_from_dict,
    fit_calibrator,
    reliability_diagram_png,
)
from models.evaluation.ranking_metrics import (
    expected_calibration_error,
    reliability_bins,
)


def _overconfident_head(num_rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    true_logit = rng.normal(-2.0, 1.0, num_rows)
    labels = (rng.random(num_rows) < 1 / (1 + np.exp(-true_logit))).astype(float)
    return 2.5 * true_logit + 1.0, labels  # the head's logits: too steep and shifted


def test_calibration_removes_most_of_the_ece_of_a_miscalibrated_head():
    rng = np.random.default_rng(0)
    logits, labels = _overconfident_head(20_000, rng)
    test_logits, test_labels = _overconfident_head(20_000, rng)
    calibrator, report = fit_calibrator(logits, labels)
    before = expected_calibration_error(test_labels, 1 / (1 + np.exp(-test_logits)))
    after = expected_calibration_error(test_labels, calibrator(test_logits))
    assert before > 0.05 and after < 0.01
    assert report["method"] in ("platt", "isotonic") and "validation_log_loss_platt" in report
    platt = PlattCalibrator.fit(logits, labels, np.ones_like(labels))  # the true map is a Platt map
    assert platt.slope == pytest.approx(0.4, abs=0.05) and platt.intercept == pytest.approx(-0.4, abs=0.1)


def test_calibration_with_example_weights_recovers_the_full_log_base_rate():
    rng = np.random.default_rng(1)
    logits, labels = _overconfident_head(60_000, rng)
    kept = (labels == 1) | (rng.random(labels.size) < 0.1)  # keep 10 % of negatives, weight 10
    weights = np.where(labels[kept] == 1, 1.0, 10.0)
    full_rate = labels.mean()
    weighted, _ = fit_calibrator(logits[kept], labels[kept], weights)
    unweighted, _ = fit_calibrator(logits[kept], labels[kept])
    assert weighted(logits).mean() == pytest.approx(full_rate, rel=0.05)
    assert unweighted(logits).mean() > 2 * full_rate  # the down-sampled rate, wrong for serving


def test_isotonic_is_picked_for_a_non_sigmoid_miscalibration_and_round_trips():
    rng = np.random.default_rng(2)
    logits = rng.uniform(-3, 3, 30_000)
    probability = np.where(logits > 0, 0.6, 0.05)  # a step no sigmoid fits
    labels = (rng.random(logits.size) < probability).astype(float)
    calibrator, report = fit_calibrator(logits, labels)
    assert report["method"] == "isotonic" and isinstance(calibrator, IsotonicCalibrator)
    restored = calibrator_from_dict(calibrator.to_dict())
    np.testing.assert_array_equal(restored(logits[:100]), calibrator(logits[:100]))


def test_reliability_diagram_is_a_png():
    rng = np.random.default_rng(3)
    logits, labels = _overconfident_head(2_000, rng)
    bins = reliability_bins(labels, 1 / (1 + np.exp(-logits)))
    assert reliability_diagram_png(bins, bins, "click").startswith(b"\x89PNG")
