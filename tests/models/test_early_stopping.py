"""Early stopping (models/early_stopping.py): training stops once the validation loss has not
improved for `patience` epochs, the best epoch's weights come back, and patience=None keeps the
fixed schedule. Also where training runs (models/devices.py)."""

import math

import pytest
import torch

from models.devices import training_device
from models.early_stopping import EpochSelection
from models.ranking.config import RankerConfig
from models.retrieval.config import RetrievalConfig


def _run(losses: list[float], patience: int | None, min_delta: float = 0.0, max_epochs: int = 10):
    """Feed `losses` epoch by epoch to a model whose weight is set to the epoch number; returns
    the selection and the weight the model ends with."""
    model = torch.nn.Linear(1, 1, bias=False)
    selection = EpochSelection(max_epochs, patience, min_delta)
    for epoch, loss in enumerate(losses, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        if selection.end_epoch(model, lambda loss=loss: loss):
            break
    selection.restore_best(model)
    return selection, model.weight.item()


def test_training_stops_after_patience_epochs_without_improvement_and_keeps_the_best_weights():
    selection, weight = _run([1.0, 0.8, 0.7, 0.75, 0.72, 0.9, 0.1], patience=3)
    assert selection.epochs_run == 6  # epochs 4, 5 and 6 did not beat epoch 3; epoch 7 never ran
    assert selection.best_epoch == 3 and weight == 3.0
    metrics = selection.metrics()
    assert metrics["best_epoch"] == 3 and metrics["epochs_run"] == 6
    assert metrics["validation_loss"] == 0.7
    assert [metrics[f"validation_loss_epoch_{epoch:02d}"] for epoch in range(1, 7)] == [1.0, 0.8, 0.7, 0.75, 0.72, 0.9]


def test_an_improvement_smaller_than_min_delta_does_not_count():
    selection, weight = _run([1.0, 0.95, 0.92, 0.5], patience=2, min_delta=0.1)
    assert selection.epochs_run == 3 and selection.best_epoch == 1 and weight == 1.0
    assert selection.metrics()["validation_loss"] == 1.0


def test_a_diverged_epoch_never_counts_as_the_best():
    selection, weight = _run([math.nan, 2.0, math.inf, 3.0], patience=2)
    assert selection.best_epoch == 2 and weight == 2.0 and selection.epochs_run == 4


def test_without_patience_every_epoch_runs_and_the_last_weights_stay():
    selection, weight = _run([1.0, 3.0, 2.0, 5.0], patience=None)
    assert weight == 4.0  # the last epoch's, though epoch 1 had the lowest loss
    # the curve is still recorded, and validation_loss is that of the weights kept
    assert selection.metrics() == {"epochs_run": 4.0, "best_epoch": 4.0, "validation_loss": 5.0,
                                   "validation_loss_epoch_01": 1.0, "validation_loss_epoch_02": 3.0,
                                   "validation_loss_epoch_03": 2.0, "validation_loss_epoch_04": 5.0}


def test_without_validation_rows_only_the_epochs_are_counted():
    model = torch.nn.Linear(1, 1, bias=False)
    selection = EpochSelection(3, None)
    assert not any(selection.end_epoch(model, None) for _ in range(3))
    assert selection.metrics() == {"epochs_run": 3.0, "best_epoch": 3.0}


@pytest.mark.parametrize("config_class", [RankerConfig, RetrievalConfig])
def test_a_schedule_that_cannot_train_is_refused_by_name(config_class):
    with pytest.raises(ValueError, match="early_stopping_patience must be at least 1"):
        config_class(early_stopping_patience=0)
    with pytest.raises(ValueError, match=r"early_stopping_min_delta must be at least 0, got -0\.1"):
        config_class(early_stopping_min_delta=-0.1)
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        config_class(epochs=0, early_stopping_patience=None)


def test_stopping_early_needs_rows_to_validate_on():
    with pytest.raises(ValueError, match="calibration_share is 0"):
        RankerConfig(calibration_share=0.0, early_stopping_patience=3)
    RankerConfig(calibration_share=0.0, early_stopping_patience=None)  # the fixed schedule needs none
    with pytest.raises(ValueError, match="validation_share is 0"):
        RetrievalConfig(validation_share=0.0, early_stopping_patience=3)
    with pytest.raises(ValueError, match="validation_share must be in"):
        RetrievalConfig(validation_share=1.0)


def test_both_trainers_default_to_the_gpu_when_there_is_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert RankerConfig().device == RetrievalConfig().device == "auto"
    assert training_device("auto", "RankerConfig").type == expected
    with pytest.raises(ValueError, match=r"RetrievalConfig.device must be 'auto' or name a torch device.*'gpu0'"):
        training_device("gpu0", "RetrievalConfig")
