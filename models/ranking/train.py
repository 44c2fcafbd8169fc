"""Training the ranker with the paper's watch-time-weighted logistic regression.

Clicked impressions are positives weighted by their watch seconds; unclicked impressions are
negatives with weight 1. The learned odds e^f then approximate Σ watch seconds / #negatives, i.e.
E[watch seconds] / (1 − P(click)) ≈ E[watch seconds per impression] when clicks are rare, which is
the quantity the ranker orders by. A click with 0 watch seconds carries no weight. Weights are
divided by their training mean, which leaves the optimum unchanged and keeps the loss near 1.

What the holdout metrics mean (they are reported honestly, not as a calibrated click model):
- `holdout_auc_clicked`: AUC of the logit against `clicked`. The model is not trained for clicks,
  but a good watch-time model should still separate clicked from unclicked impressions.
- `holdout_auc_watch_weighted`: the same with each positive weighted by its watch seconds: the
  chance a random watched second outranks a random unclicked impression. This is what the loss
  optimises.
- `holdout_weighted_log_loss`: the training objective on the holdout.
- `holdout_log_loss_clicked`: log loss of sigmoid(f) against `clicked`. sigmoid(f) is NOT a click
  probability (the odds are inflated by watch time), so this is large and only useful to compare
  runs of this same model; calibrate separately if a click probability is needed.
- `holdout_predicted_over_actual_watch_seconds`: Σ e^f / Σ watch seconds, ≈ 1 / (1 − CTR) when
  the model is well fitted.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from models.evaluation.metrics import log_loss, roc_auc
from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.model import WATCH_TIME_HEAD, Ranker
from models.ranking.preprocessing import FeaturePreprocessor

logger = logging.getLogger(__name__)

LABEL_COLUMNS = ("clicked", "watch_seconds", "split")
EXAMPLE_WEIGHT_COLUMN = "example_weight"


def example_weights(frame: pd.DataFrame) -> np.ndarray:
    """Per-row weights that undo negative down-sampling (`example_weight` column; 1 when absent).

    A frame that keeps every click but only a share r of non-clicks gives each kept non-click the
    weight 1/r, so losses and metrics estimate what the full impression log would give.
    """
    if EXAMPLE_WEIGHT_COLUMN not in frame.columns:
        return np.ones(len(frame))
    weights = frame[EXAMPLE_WEIGHT_COLUMN].fillna(1.0).to_numpy(np.float64)
    if np.any(weights <= 0):
        raise ValueError(f"{EXAMPLE_WEIGHT_COLUMN} must be positive, found minimum {weights.min()}")
    return weights


def watch_time_labels(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(clicked float64 0/1, weight float64): positives weigh their watch seconds, negatives 1,
    each times its `example_weight` (negative down-sampling correction)."""
    clicked = frame["clicked"].fillna(False).astype(bool).to_numpy()
    watch_seconds = frame["watch_seconds"].fillna(0.0).to_numpy(np.float64)
    if np.any(watch_seconds < 0):
        raise ValueError(f"watch_seconds must be non-negative, found minimum {watch_seconds.min()}")
    weights = np.where(clicked, watch_seconds, 1.0) * example_weights(frame)
    return clicked.astype(np.float64), weights


def train_ranker(frame: pd.DataFrame, config: RankerConfig | None = None) -> RankerBundle:
    """Fit the preprocessor and the model on `split == 'train'`, report metrics on 'holdout'."""
    config = config or RankerConfig()
    missing = [column for column in LABEL_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"ranking frame lacks label columns {missing}")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    train = frame[frame["split"] == "train"]
    if train.empty:
        raise ValueError("ranking frame has no 'train' rows")

    preprocessor = FeaturePreprocessor.fit(train, config)
    inputs = preprocessor.transform(train)
    clicked, weights = watch_time_labels(train)
    if weights[clicked == 1].sum() <= 0:
        raise ValueError("no clicked training row has positive watch_seconds; nothing to learn")
    labels = torch.from_numpy(clicked.astype(np.float32))
    scaled_weights = torch.from_numpy((weights / weights.mean()).astype(np.float32))

    model = Ranker(config, preprocessor.vocabulary_sizes, preprocessor.numeric_width)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    metrics: dict[str, float] = {}
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total_loss = 0.0
        progress = tqdm(range(steps_per_epoch), desc=f"ranker epoch {epoch + 1}/{config.epochs}",
                        disable=not config.show_progress, leave=False)
        for step in progress:
            rows = order[step * config.batch_size:(step + 1) * config.batch_size]
            logits = model(inputs.select(rows))[WATCH_TIME_HEAD]  # (batch,)
            loss = F.binary_cross_entropy_with_logits(logits, labels[rows], weight=scaled_weights[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        metrics["train_loss"] = total_loss / steps_per_epoch
        logger.info("ranker epoch %d/%d: train loss %.4f", epoch + 1, config.epochs, metrics["train_loss"])

    bundle = RankerBundle(model=model.eval(), preprocessor=preprocessor, config=config)
    metrics.update(holdout_metrics(bundle, frame[frame["split"] == "holdout"]))
    metrics["train_seconds"] = time.perf_counter() - started
    bundle.metrics = metrics
    logger.info("ranker training done: %s", metrics)
    return bundle


def holdout_metrics(bundle: RankerBundle, holdout: pd.DataFrame) -> dict[str, float]:
    if holdout.empty:
        logger.warning("no holdout rows; skipping ranker evaluation")
        return {}
    clicked, weights = watch_time_labels(holdout)
    logits = bundle.logits(holdout)
    metrics = {
        "holdout_rows": float(len(holdout)),
        "holdout_predicted_over_actual_watch_seconds": float(
            (np.exp(logits) * example_weights(holdout)).sum() / max(holdout["watch_seconds"].fillna(0.0).sum(), 1e-12)
        ),
    }
    if 0 < clicked.sum() < len(clicked):
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        row_weights = example_weights(holdout)
        metrics["holdout_auc_clicked"] = roc_auc(clicked, logits, sample_weight=row_weights)
        metrics["holdout_log_loss_clicked"] = log_loss(clicked, probabilities, sample_weight=row_weights)
        if weights[clicked == 1].sum() > 0:
            metrics["holdout_auc_watch_weighted"] = roc_auc(clicked, logits, sample_weight=weights)
            metrics["holdout_weighted_log_loss"] = log_loss(clicked, probabilities, sample_weight=weights)
    else:
        logger.warning("holdout has only one click class; skipping AUC and log loss")
    return metrics
