"""Training the multi-task ranker, calibrating its probabilistic heads and reporting holdout metrics.

Rows: `split == 'train'` sorted by `event_timestamp`; the last `calibration_share` of them (by
time) are held out of training and fit one calibrator per probabilistic head (Platt or isotonic,
whichever has the lower log loss on the later 30 % of those rows); with early stopping
(`RankerConfig.early_stopping_patience`) the training objective on them also decides after which
epoch to stop and which epoch's weights to keep (models/early_stopping.py). `split == 'holdout'`
is only evaluated. Heads and their labels: models/ranking/labels.py. The loss is Σ_head task_weight ×
weighted BCE, each head's weights divided by their training mean (leaves each optimum unchanged,
keeps losses near 1); the watch_time head's positive weights are further divided by their mean
(see `_watch_seconds_scale`). The bias tower sees the impression's position in training only.
Training runs on `config.device` ("auto": the GPU when torch sees one); the bundle is on the CPU.
On a GPU each full batch's step is replayed as one CUDA graph (`config.cuda_graph`,
models/graphed_step.py), and `cuda_graph_replays` says how many steps were.

Training metrics: `train_loss` (the last epoch's), `epochs_run`, `best_epoch` (whose weights the
bundle holds), and with calibration rows `validation_loss` (the objective on them, of the weights
kept) and `validation_loss_epoch_<n>` (its curve, on a fixed schedule too). Where the time went:
`train_seconds` in all, of it `encode_seconds` (features and labels to tensors), `epochs_seconds`,
`calibrate_seconds` and `holdout_seconds` (the holdout report).

Holdout metrics (`holdout_` + the keys of models/ranking/evaluate.py::ranking_report on the final
score and the calibrated heads; `holdout_ece_constant_<head>` is the ECE of a constant predictor
at the `split == 'train'` rows' base rate), plus, for continuity with format 1:
- `holdout_auc_watch_weighted`: AUC of the watch_time logit with positives weighted by watch
  seconds (the chance a random watched second outranks a random unclicked impression); the
  orchestrator's selection metric.
- `holdout_auc_clicked`: AUC of the watch_time logit against clicked.
- `holdout_weighted_log_loss`: the watch_time training objective on the holdout.
- `holdout_log_loss_clicked`: log loss of the calibrated click head (format 1 reported the
  uncalibrated sigmoid of the watch_time logit here).
- `holdout_predicted_over_actual_watch_seconds`: Σ e^f / Σ watch seconds (≈ 1 / (1 − CTR)).
- `holdout_ece_before_<head>`: ECE of the uncalibrated sigmoid, for the calibration report.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from models import devices
from models.calibration import fit_calibrator
from models.early_stopping import EpochSelection
from models.evaluation.ranking_metrics import (
    expected_calibration_error,
    log_loss,
    reliability_bins,
    roc_auc,
)
from models.graphed_step import GraphedStep, Step
from models.ranking.bundle import RankerBundle
from models.ranking.config import PROBABILITY_HEADS, RankerConfig
from models.ranking.evaluate import base_rates, ranking_report
from models.ranking.labels import (
    example_weights,
    head_labels,
    watch_time_labels,
)
from models.ranking.listwise import listwise_loss, listwise_targets, request_batches, request_codes
from models.ranking.model import WATCH_TIME_HEAD, Ranker
from models.ranking.preprocessing import FeaturePreprocessor, RankerInputs
from models.warm_start import WarmStartMismatch, transfer_parameters, vocabulary_rows

logger = logging.getLogger(__name__)

LABEL_COLUMNS = ("clicked", "watch_seconds", "split")
_VALIDATION_CHUNK_ROWS = 65_536


def position_index(frame: pd.DataFrame, config: RankerConfig) -> torch.Tensor:
    """(n,) int64 positions for the bias tower; missing column or values → serving_position."""
    if config.position_column is None or config.position_column not in frame.columns:
        return torch.full((len(frame),), config.serving_position, dtype=torch.int64)
    positions = pd.to_numeric(frame[config.position_column], errors="coerce").fillna(config.serving_position)
    return torch.from_numpy(positions.to_numpy(np.int64).clip(0, config.num_positions - 1))


def split_calibration_rows(train: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit rows, calibration rows): the last `share` of `train` by event_timestamp (row order
    when there is no timestamp)."""
    if "event_timestamp" in train.columns:
        train = train.sort_values("event_timestamp", kind="stable")
    cut = len(train) - round(len(train) * share)
    return train.iloc[:cut], train.iloc[cut:]


def train_ranker(frame: pd.DataFrame, config: RankerConfig | None = None,
                 warm_start: RankerBundle | None = None) -> RankerBundle:
    """Fit on `split == 'train'` (less its calibration tail, which also decides when to stop),
    calibrate, report on 'holdout'. With `warm_start` (the champion) the fit begins from its
    weights and runs `config.warm_start_epochs` epochs; WarmStartMismatch when its architecture
    differs."""
    config = config or RankerConfig()
    missing = [column for column in LABEL_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"ranking frame lacks label columns {missing}")
    device = training_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # on the CPU: the same batches on any device
    started = time.perf_counter()
    train = frame[frame["split"] == "train"]
    if train.empty:
        raise ValueError("ranking frame has no 'train' rows")
    fit_rows, calibration_rows = split_calibration_rows(train, config.calibration_share)
    if config.early_stopping_patience is not None and calibration_rows.empty:
        raise ValueError(f"ranking frame has {len(train)} 'train' rows: too few for a calibration share of "
                         f"{config.calibration_share} to leave rows to stop early on")

    preprocessor = FeaturePreprocessor.fit(fit_rows, config)
    labels = head_labels(fit_rows, config)
    if WATCH_TIME_HEAD in labels and labels[WATCH_TIME_HEAD][1][labels[WATCH_TIME_HEAD][0] == 1].sum() <= 0:
        raise ValueError("no clicked training row has positive watch_seconds; nothing to learn")
    watch_scale = _watch_seconds_scale(labels, config)
    fitting = _objective_rows(fit_rows, labels, preprocessor, config, watch_scale, None, device)
    validation = (_objective_rows(calibration_rows, head_labels(calibration_rows, config), preprocessor, config,
                                  watch_scale, fitting.weight_means, device)
                  if not calibration_rows.empty else None)

    encoded = time.perf_counter()
    # built on the CPU, so a seed gives the same initial weights on every device
    model = Ranker(config, preprocessor.vocabulary_sizes, preprocessor.numeric_width,
                   bag_vocabulary_sizes=preprocessor.bag_vocabulary_sizes)
    metrics: dict[str, float] = {}
    epochs = config.epochs
    if warm_start is not None:
        metrics.update(_start_from(model, preprocessor, warm_start, config, watch_scale))
        epochs = config.warm_start_epochs
    model = model.to(device)
    listwise = _listwise_inputs(fit_rows, device) if config.listwise_weight > 0 else None
    graphed = config.cuda_graph and device.type == "cuda" and listwise is None  # listwise batches vary in size
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                 capturable=graphed)
    step = _training_step(model, optimizer, fitting, listwise, config)
    if graphed:
        step = GraphedStep(step, config.batch_size, device)
    selection = EpochSelection(epochs, config.early_stopping_patience, config.early_stopping_min_delta)
    for epoch in range(epochs):
        metrics["train_loss"] = _train_one_epoch(model, step, listwise, generator, config, epoch, len(fit_rows),
                                                 device)
        logger.info("ranker epoch %d/%d: train loss %.4f", epoch + 1, epochs, metrics["train_loss"])
        validation_loss = None if validation is None else (lambda: validation.evaluate(model, config))
        if selection.end_epoch(model, validation_loss):
            logger.info("ranker: no validation improvement for %d epochs; keeping epoch %d",
                        config.early_stopping_patience, selection.best_epoch)
            break
    selection.restore_best(model)
    metrics.update(selection.metrics())
    metrics["encode_seconds"], metrics["epochs_seconds"] = encoded - started, time.perf_counter() - encoded
    if isinstance(step, GraphedStep):
        metrics["cuda_graph_replays"] = float(step.replays)
    return _finish(model, preprocessor, config, watch_scale, frame, train, calibration_rows, metrics, started)


def _start_from(model: Ranker, preprocessor: FeaturePreprocessor, champion: RankerBundle, config: RankerConfig,
                watch_scale: float) -> dict[str, float]:
    """Copy the champion's weights into `model` (embedding rows through both vocabularies) and
    put its watch_time bias back in this fit's conditioned units; the warm start's metrics."""
    report = transfer_parameters(model, champion.model, ranker_table_rows(model, config, preprocessor,
                                                                         champion.preprocessor))
    with torch.no_grad():  # the champion's bias is in watch seconds (see _finish); this fit divides by watch_scale
        model.heads[WATCH_TIME_HEAD].bias -= math.log(watch_scale)
    logger.info("ranker: warm start from the champion: %d parameters, %d embedding rows carried, %d new",
                report.parameters, report.carried_rows, report.new_rows)
    return {"warm_started": 1.0, **report.as_metrics()}


def ranker_table_rows(model: Ranker, config: RankerConfig, new: FeaturePreprocessor,
                      old: FeaturePreprocessor) -> dict[str, np.ndarray]:
    """Every embedding table of `model` that a vocabulary indexes, with its new-row → old-row map."""
    def rows(vocabularies_new: dict, vocabularies_old: dict, name: str) -> np.ndarray:
        if name not in vocabularies_old:
            raise WarmStartMismatch(f"the champion has no vocabulary for feature {name!r}")
        return vocabulary_rows(vocabularies_new[name], vocabularies_old[name])

    tables: dict[str, np.ndarray] = {}
    for column, name in enumerate(config.categorical_features):
        tables[f"embeddings.{column}.weight"] = rows(new.categorical, old.categorical, name)
        if model.wide is not None:
            tables[f"wide.categorical.{column}.weight"] = tables[f"embeddings.{column}.weight"]
    for column, name in enumerate(name for name in config.bag_features if name in new.bags):
        tables[f"bag_embeddings.{column}.weight"] = rows(new.bags, old.bags, name)
        if model.wide is not None:
            tables[f"wide.bags.{column}.weight"] = tables[f"bag_embeddings.{column}.weight"]
    if model.bias_tower.surface is not None:
        tables["bias_tower.surface.weight"] = rows(new.categorical, old.categorical, config.bias_surface_feature)
    return tables


def _training_step(model: Ranker, optimizer: torch.optim.Optimizer, fitting: ObjectiveRows,
                   listwise: tuple | None, config: RankerConfig) -> Step:
    """One optimizer update on the fit rows a batch's indices name; returns the batch's loss.
    No host synchronisation inside, so that models/graphed_step.py can record it."""
    def step(rows: torch.Tensor) -> torch.Tensor:
        logits = model(fitting.inputs.select(rows), fitting.positions[rows])  # head → (batch,)
        loss = fitting.loss(logits, rows, config)
        if listwise is not None:
            codes, relevance, log_weight = (tensor[rows] for tensor in listwise)
            listwise_term = listwise_loss(logits[WATCH_TIME_HEAD], codes, relevance, log_weight)
            loss = loss + config.listwise_weight * listwise_term
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()
    return step


def _train_one_epoch(model: Ranker, step: Step, listwise: tuple | None, generator: torch.Generator,
                     config: RankerConfig, epoch: int, num_rows: int, device: torch.device) -> float:
    """One pass over the fit rows in shuffled batches (whole requests with a listwise term); the
    mean training loss."""
    model.train()
    batches = _epoch_batches(num_rows, config.batch_size, generator, listwise, device)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per step
    progress = tqdm(batches, desc=f"ranker epoch {epoch + 1}/{config.epochs}",
                    disable=not config.show_progress, leave=False)
    for rows in progress:
        total_loss += step(rows)
    return total_loss.item() / len(batches)


def _finish(model: Ranker, preprocessor: FeaturePreprocessor, config: RankerConfig, watch_scale: float,
            frame: pd.DataFrame, train: pd.DataFrame, calibration_rows: pd.DataFrame,
            metrics: dict[str, float], started: float) -> RankerBundle:
    """The trained model on the CPU, its watch_time head in watch seconds again, calibrated and
    reported on the holdout."""
    model.to("cpu")  # serving scores on the CPU, and so do calibration and the holdout report below
    if watch_scale != 1.0:
        with torch.no_grad():  # undo the conditioning: e^f is in watch seconds again
            model.heads[WATCH_TIME_HEAD].bias += math.log(watch_scale)
    flushed = model.flush_denormal_weights()
    if flushed:
        logger.info("ranker: %d denormal weights set to zero (they slow CPU scoring)", flushed)
    bundle = RankerBundle(model=model.eval(), preprocessor=preprocessor, config=config)
    calibrating = time.perf_counter()
    calibrate(bundle, calibration_rows)
    reporting = time.perf_counter()
    metrics.update(holdout_metrics(bundle, frame[frame["split"] == "holdout"], base_rates(train, config)))
    finished = time.perf_counter()
    metrics.update(calibrate_seconds=reporting - calibrating, holdout_seconds=finished - reporting,
                   train_seconds=finished - started)
    bundle.metrics = metrics
    logger.info("ranker training done: %s", metrics)
    return bundle


@dataclass
class ObjectiveRows:
    """Rows encoded for the training objective, on the training device: inputs, bias-tower
    positions, and per head the label and the weight (conditioned as `_objective_rows` says)."""

    inputs: RankerInputs
    positions: torch.Tensor  # (rows,) int64
    targets: dict[str, torch.Tensor]  # head → (rows,) float32 0/1
    weights: dict[str, torch.Tensor]  # head → (rows,) float32
    weight_means: dict[str, float]  # head → the mean the weights were divided by

    def loss(self, logits: dict[str, torch.Tensor], rows: torch.Tensor | slice, config: RankerConfig,
             reduction: str = "mean") -> torch.Tensor:
        """Σ_head task_weight × weighted BCE over `rows`: the pointwise objective."""
        return sum(
            config.task_weights.get(head, 1.0)
            * F.binary_cross_entropy_with_logits(logits[head], self.targets[head][rows],
                                                 weight=self.weights[head][rows], reduction=reduction)
            for head in logits
        )

    @torch.no_grad()
    def evaluate(self, model: Ranker, config: RankerConfig) -> float:
        """The objective's mean over every row, in evaluation mode (no dropout), in chunks."""
        model.eval()
        total = torch.zeros((), dtype=torch.float64, device=self.positions.device)
        for start in range(0, len(self.positions), _VALIDATION_CHUNK_ROWS):
            rows = slice(start, start + _VALIDATION_CHUNK_ROWS)
            total += self.loss(model(self.inputs.select(rows), self.positions[rows]), rows, config, "sum")
        return total.item() / len(self.positions)


def _objective_rows(rows: pd.DataFrame, labels: dict[str, tuple[np.ndarray, np.ndarray]],
                    preprocessor: FeaturePreprocessor, config: RankerConfig, watch_scale: float,
                    weight_means: dict[str, float] | None, device: torch.device) -> ObjectiveRows:
    """`rows` and their `labels` encoded, watch_time's positive weights divided by `watch_scale`
    and each head's weights by `weight_means`: the fit rows' means, so that validation scores the
    very objective training minimises (None: these rows' own means, for the fit rows)."""
    if watch_scale != 1.0:
        y, w = labels[WATCH_TIME_HEAD]
        labels = {**labels, WATCH_TIME_HEAD: (y, np.where(y == 1, w / watch_scale, w))}
    if weight_means is None:
        weight_means = {head: w.mean() for head, (_, w) in labels.items()}
    return ObjectiveRows(
        inputs=_inputs_on(preprocessor.transform(rows), device),
        positions=position_index(rows, config).to(device),
        targets={head: torch.from_numpy(y.astype(np.float32)).to(device) for head, (y, _) in labels.items()},
        weights={head: torch.from_numpy((w / weight_means[head]).astype(np.float32)).to(device)
                 for head, (_, w) in labels.items()},
        weight_means=weight_means,
    )


def training_device(name: str) -> torch.device:
    """The torch device `RankerConfig.device` names (models/devices.py)."""
    return devices.training_device(name, "RankerConfig")


def _listwise_inputs(fit_rows: pd.DataFrame, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(request code, relevance, log sampling weight) per fit row, on `device`."""
    relevance, log_weight = listwise_targets(fit_rows)
    return (torch.from_numpy(request_codes(fit_rows)).to(device),
            torch.from_numpy(relevance.astype(np.float32)).to(device),
            torch.from_numpy(log_weight.astype(np.float32)).to(device))


def _epoch_batches(num_rows: int, batch_size: int, generator: torch.Generator,
                   listwise: tuple[torch.Tensor, ...] | None, device: torch.device) -> list[torch.Tensor]:
    """One epoch's row indices per batch: shuffled rows, or shuffled whole requests when the
    listwise term needs them (drawn on the CPU: the same batches on any device)."""
    if listwise is None:
        order = torch.randperm(num_rows, generator=generator).to(device)
        return list(order.split(batch_size))
    codes = listwise[0].cpu().numpy()
    return [torch.from_numpy(rows).to(device) for rows in request_batches(codes, batch_size, generator)]


def _inputs_on(inputs: RankerInputs, device: torch.device) -> RankerInputs:
    return RankerInputs(inputs.categorical.to(device), inputs.numeric.to(device),
                        None if inputs.bags is None else inputs.bags.to(device))


def _watch_seconds_scale(labels: dict[str, tuple[np.ndarray, np.ndarray]], config: RankerConfig) -> float:
    """Mean watch-seconds weight of a positive. Positives weighing hundreds of times a negative
    saturate the sigmoid and train slowly; dividing positive weights by this constant c only
    divides the optimal odds by c, so training uses weights/c and the head's bias gets + log c."""
    if WATCH_TIME_HEAD not in labels or not config.watch_time_weighted:
        return 1.0
    y, w = labels[WATCH_TIME_HEAD]
    positive = (y == 1) & (w > 0)
    return float(w[positive].mean() / w[~positive].mean()) if positive.any() and (~positive).any() else 1.0


def calibrate(bundle: RankerBundle, calibration_rows: pd.DataFrame) -> None:
    """Fit `bundle.calibrators` on serving-mode logits of the (time-ordered) calibration rows."""
    heads = [head for head in bundle.model.head_names if head in PROBABILITY_HEADS]
    if calibration_rows.empty or not heads:
        logger.warning("no calibration rows; probabilistic heads serve the uncalibrated sigmoid")
        return
    logits = bundle.all_logits(calibration_rows)
    labels = head_labels(calibration_rows, bundle.config)
    for head in heads:
        y, w = labels[head]
        try:
            bundle.calibrators[head], report = fit_calibrator(logits[head], y, w)
        except ValueError as error:
            logger.warning("cannot calibrate head %s: %s", head, error)
            continue
        bundle.calibration[head] = report


def holdout_metrics(bundle: RankerBundle, holdout: pd.DataFrame,
                    constant_rates: dict[str, float] | None = None) -> dict[str, float]:
    """The module docstring's `holdout_*` metrics; `constant_rates` (head → the training rows' base
    rate) is the constant predictor the ECE is set beside."""
    if holdout.empty:
        logger.warning("no holdout rows; skipping ranker evaluation")
        return {}
    logits = bundle.all_logits(holdout)
    values = bundle._values(logits)
    labels = head_labels(holdout, bundle.config)
    bins = bundle.config.calibration_bins
    row_weights = example_weights(holdout)
    probabilities = {head: (labels[head][0], values[head]) for head in bundle.model.head_names
                     if head in PROBABILITY_HEADS}
    metrics = {f"holdout_{key}": value
               for key, value in ranking_report(holdout, bundle.combine(values), probabilities, bins,
                                                  constant_rates).items()}
    for head, (y, calibrated) in probabilities.items():
        if head not in bundle.calibration or not 0 < y.sum() < len(y):
            continue
        raw = 1.0 / (1.0 + np.exp(-logits[head]))
        entry = bundle.calibration[head]
        entry["ece_before"] = expected_calibration_error(y, raw, row_weights, bins)
        entry["ece_after"] = expected_calibration_error(y, calibrated, row_weights, bins)
        entry["bins_before"] = reliability_bins(y, raw, row_weights, bins).to_dict(orient="list")
        entry["bins_after"] = reliability_bins(y, calibrated, row_weights, bins).to_dict(orient="list")
        metrics[f"holdout_ece_before_{head}"] = entry["ece_before"]
    if WATCH_TIME_HEAD in logits:
        clicked, weights = watch_time_labels(holdout)
        watch_logits = logits[WATCH_TIME_HEAD]
        metrics["holdout_predicted_over_actual_watch_seconds"] = float(
            (np.exp(watch_logits) * row_weights).sum() / max(holdout["watch_seconds"].fillna(0.0).sum(), 1e-12))
        if 0 < clicked.sum() < len(clicked) and weights[clicked == 1].sum() > 0:
            metrics["holdout_auc_clicked"] = roc_auc(clicked, watch_logits, sample_weight=row_weights)
            metrics["holdout_auc_watch_weighted"] = roc_auc(clicked, watch_logits, sample_weight=weights)
            metrics["holdout_weighted_log_loss"] = log_loss(
                clicked, 1.0 / (1.0 + np.exp(-watch_logits)), sample_weight=weights)
    if "holdout_log_loss_click" in metrics:
        metrics["holdout_log_loss_clicked"] = metrics["holdout_log_loss_click"]
    return {key: value for key, value in metrics.items() if not (isinstance(value, float) and math.isnan(value))}
