"""Choosing how many epochs to train: early stopping on a validation loss.

Shared by the ranker (models/ranking/train.py) and the candidate generator
(models/retrieval/train.py), so both stop, keep weights and report the same way.

After every epoch the trainer hands `EpochSelection.end_epoch` the model and a function computing
the loss on validation rows the model does not fit on (None when it has none). An epoch
*improves* when its loss is below the best so far by more than `min_delta`; that epoch's weights
are copied (on the training device: a copy per improvement, no transfer). Training stops once
`patience` epochs in a row have not improved, and `restore_best` puts the best epoch's weights
back, so `epochs` is a maximum.
With `patience=None` every epoch runs and the last weights stay: the fixed schedule, untouched
(a validation loss, when given, only draws the curve: it uses no random numbers and no weight).

`metrics()` is what the bundle records (and the pipeline logs to MLflow as scalars):
`epochs_run`, `best_epoch` (the epoch whose weights are returned: the last one on a fixed
schedule), and where there are validation rows `validation_loss` (the returned weights' loss)
and the curve, one scalar per epoch, `validation_loss_epoch_<n>`, zero-padded so the names sort
by epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


class EpochSelection:
    """Tracks one training run's epochs; see the module docstring for the rule."""

    def __init__(self, max_epochs: int, patience: int | None, min_delta: float = 0.0):
        self.max_epochs = max_epochs
        self.patience = patience
        self.min_delta = min_delta
        self.losses: list[float] = []
        self.epochs_run = 0
        self.best_epoch = 0  # 1-based; 0 until an epoch improves
        self._best_state: dict[str, torch.Tensor] | None = None

    @property
    def stops_early(self) -> bool:
        return self.patience is not None

    @property
    def best_loss(self) -> float:
        return self.losses[self.best_epoch - 1] if self.best_epoch else math.inf

    def end_epoch(self, model: nn.Module, validation_loss: Callable[[], float] | None) -> bool:
        """Record the epoch just trained; True when training should stop. `validation_loss` (None:
        the trainer has no validation rows) is also recorded on a fixed schedule, for the curve,
        but decides nothing there. A non-finite loss (a diverged fit) never improves."""
        self.epochs_run += 1
        if validation_loss is None:
            return False
        loss = float(validation_loss())
        self.losses.append(loss)
        if not self.stops_early:
            return False
        if math.isfinite(loss) and loss < self.best_loss - self.min_delta:
            self.best_epoch = self.epochs_run
            self._best_state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        return self.epochs_run - self.best_epoch >= self.patience

    def restore_best(self, model: nn.Module) -> None:
        """Load the best epoch's weights into `model` (no-op on a fixed schedule, or when no
        epoch had a finite loss: the last weights stay)."""
        if self._best_state is not None:
            model.load_state_dict(self._best_state)

    def metrics(self) -> dict[str, float]:
        chosen = self.best_epoch if self._best_state is not None else self.epochs_run
        metrics = {"epochs_run": float(self.epochs_run), "best_epoch": float(chosen)}
        if self.losses:
            metrics["validation_loss"] = self.losses[chosen - 1]  # the returned weights'
            width = len(str(self.max_epochs))
            metrics.update({f"validation_loss_epoch_{epoch:0{width}d}": loss
                            for epoch, loss in enumerate(self.losses, start=1)})
        return metrics


def check_schedule(owner: str, epochs: int, patience: int | None, min_delta: float) -> None:
    """Refuse, by name, a schedule that cannot train: `owner` is the config class's name."""
    if epochs < 1:
        raise ValueError(f"{owner}.epochs must be at least 1, got {epochs}")
    if patience is not None and patience < 1:
        raise ValueError(f"{owner}.early_stopping_patience must be at least 1 (None trains every epoch), "
                         f"got {patience}")
    if not min_delta >= 0:
        raise ValueError(f"{owner}.early_stopping_min_delta must be at least 0, got {min_delta}")
