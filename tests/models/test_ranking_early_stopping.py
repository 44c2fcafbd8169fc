"""The ranker stops on its calibration rows' loss: on labels that are pure noise an id embedding
without decay overfits within a few epochs, and training stops and returns its best epoch."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from models.evaluation.ranking_metrics import log_loss
from models.ranking.config import RankerConfig
from models.ranking.train import split_calibration_rows, train_ranker
from tests.models.conftest import make_ranking_frame

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

# The click head alone: its weights are the rows' example weights (1 here), so the objective on
# the calibration rows is their plain log loss, which the test recomputes from the bundle.
CONFIG = RankerConfig(
    categorical_features=["video_id"], numeric_features=["noise"], category_min_count=1, embedding_dim=16,
    embedding_dims={}, hidden_widths=(32,), heads=("click",), score_weights={"click": 1.0},
    position_column=None, epochs=30, batch_size=128, learning_rate=3e-2, weight_decay=0.0,
    early_stopping_patience=2, show_progress=False, seed=5,
)


@pytest.fixture(scope="module")
def noise_frame():
    """Clicks at 30 % whatever the row says: anything learnt beyond the base rate is overfitting."""
    rng = np.random.default_rng(2)
    rows = 2400
    return pd.DataFrame({
        "video_id": rng.integers(0, 400, rows),
        "noise": rng.normal(size=rows),
        "clicked": rng.random(rows) < 0.3,
        "watch_seconds": 0.0,
        "event_timestamp": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(rows), unit="min"),
        "split": np.where(np.arange(rows) < 2000, "train", "holdout"),
    })


@pytest.fixture(scope="module")
def stopped(noise_frame):
    return train_ranker(noise_frame, CONFIG)


def _calibration_log_loss(bundle, frame) -> float:
    """The click head's raw (uncalibrated) log loss on the calibration rows: the validation loss."""
    _, calibration_rows = split_calibration_rows(frame[frame["split"] == "train"], CONFIG.calibration_share)
    logits = bundle.logits(calibration_rows, "click")
    return log_loss(calibration_rows["clicked"].to_numpy(float), 1.0 / (1.0 + np.exp(-logits)))


def test_training_on_noise_stops_once_the_validation_loss_rises(stopped):
    metrics = stopped.metrics
    curve = [metrics[f"validation_loss_epoch_{epoch:02d}"] for epoch in range(1, int(metrics["epochs_run"]) + 1)]
    assert metrics["epochs_run"] < CONFIG.epochs
    assert metrics["epochs_run"] == metrics["best_epoch"] + CONFIG.early_stopping_patience
    assert metrics["validation_loss"] == min(curve) == curve[int(metrics["best_epoch"]) - 1]
    assert curve[-1] > min(curve)


def test_the_returned_model_is_the_best_epochs(stopped, noise_frame):
    assert _calibration_log_loss(stopped, noise_frame) == pytest.approx(stopped.metrics["validation_loss"], rel=1e-5)


def test_without_patience_every_epoch_runs_the_last_weights_are_kept_and_the_curve_recorded(noise_frame):
    fixed = train_ranker(noise_frame, replace(CONFIG, epochs=6, early_stopping_patience=None))
    assert fixed.metrics["epochs_run"] == fixed.metrics["best_epoch"] == 6
    assert fixed.metrics["validation_loss"] == fixed.metrics["validation_loss_epoch_6"]
    assert _calibration_log_loss(fixed, noise_frame) == pytest.approx(fixed.metrics["validation_loss"], rel=1e-5)
    # six epochs on noise overfit: the last weights are worse on the calibration rows than the best
    stopped = train_ranker(noise_frame, replace(CONFIG, epochs=6))
    assert fixed.metrics["validation_loss"] > stopped.metrics["validation_loss"]


def test_validating_does_not_change_what_training_does():
    """A fit that never stops and whose best epoch is its last returns the fixed schedule's model
    exactly: validation draws no random numbers and touches no weight."""
    frame = make_ranking_frame(6000, np.random.default_rng(11))
    config = RankerConfig(categorical_features=["surface", "country"], numeric_features=["quality", "noise"],
                          category_min_count=1, hidden_widths=(16,), epochs=3, batch_size=256, learning_rate=5e-3,
                          heads=("watch_time", "click"), score_weights={"watch_time": 1.0}, show_progress=False,
                          seed=1, early_stopping_patience=None)
    fixed = train_ranker(frame, config)
    validated = train_ranker(frame, replace(config, early_stopping_patience=3))
    assert validated.metrics["best_epoch"] == 3  # still learning: every epoch improved
    holdout = frame[frame["split"] == "holdout"]
    np.testing.assert_array_equal(validated.score(holdout), fixed.score(holdout))
    assert validated.metrics["train_loss"] == fixed.metrics["train_loss"]


def test_every_stopping_metric_is_a_scalar_mlflow_can_log(stopped):
    assert {"best_epoch", "epochs_run", "validation_loss", "validation_loss_epoch_01"} <= set(stopped.metrics)
    assert all(np.isscalar(value) for value in stopped.metrics.values())


def test_too_few_train_rows_to_validate_on_is_refused_by_name(noise_frame):
    tiny = noise_frame.iloc[:4].assign(split="train")
    with pytest.raises(ValueError, match=r"too few for a calibration share of 0\.1"):
        train_ranker(tiny, CONFIG)


@needs_cuda
def test_a_cuda_fit_stops_and_comes_back_on_the_cpu_with_its_best_weights(stopped, noise_frame):
    on_gpu = train_ranker(noise_frame, replace(CONFIG, device="cuda"))
    assert {tensor.device.type for tensor in on_gpu.model.state_dict().values()} == {"cpu"}
    assert on_gpu.metrics["epochs_run"] < CONFIG.epochs
    assert _calibration_log_loss(on_gpu, noise_frame) == pytest.approx(on_gpu.metrics["validation_loss"], rel=1e-4)
