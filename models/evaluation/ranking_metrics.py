"""Offline metrics of the ranker, as pure numpy/pandas functions.

Every function takes optional `sample_weight` (the frame's `example_weight`, undoing negative
down-sampling) so numbers estimate the full impression log. Definitions, fixed here:

- `group_auc` (GAUC): the weighted ROC AUC within each group (user), averaged over the groups that
  have both a positive and a negative with non-zero weight, each group weighted by its total
  sample weight (its impressions in the full log; Zhou et al., 2018). `weighting="uniform"` gives
  every such group weight 1.
- `expected_calibration_error` (ECE): predictions sorted and cut into `bins` bins of equal total
  sample weight (equal-frequency bins); ECE = Σ_b (W_b / W) · |mean prediction_b − mean label_b|,
  both means weighted.
- `ndcg_at_k_by_group`: per group, DCG@k = Σ_{rank ≤ k} gain / log2(rank + 1) with the model's
  order and linear gains (watch seconds), divided by the DCG of the gain-sorted order; averaged
  over groups with a positive total gain. Tied scores are ordered pessimistically (lowest gain
  first), so a constant predictor cannot look good by the frame's row order.
- `watch_time_weighted_pairwise_loss` (Covington et al.'s offline metric): over every
  (positive, negative) pair of impressions in the same group (request), with weight = positive's
  watch seconds × both rows' sample weights, the weighted share of pairs the model orders wrongly
  (negative scored above the positive; a tie counts 1/2). 0 is perfect, 0.5 is random.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.evaluation.metrics import log_loss, roc_auc

__all__ = [
    "expected_calibration_error",
    "group_auc",
    "log_loss",
    "ndcg_at_k_by_group",
    "reliability_bins",
    "roc_auc",
    "watch_time_weighted_pairwise_loss",
]


def _weights(sample_weight, size: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(size)
    weights = np.asarray(sample_weight, dtype=np.float64).ravel()
    if weights.size != size:
        raise ValueError(f"sample_weight has {weights.size} entries, expected {size}")
    return weights


def group_auc(labels, scores, groups, sample_weight=None, weighting: str = "impressions") -> float:
    """GAUC; raises when no group has both classes (see the module docstring)."""
    if weighting not in ("impressions", "uniform"):
        raise ValueError(f"weighting must be 'impressions' or 'uniform', got {weighting!r}")
    labels = np.asarray(labels).astype(np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    weights = _weights(sample_weight, labels.size)
    group_codes, _ = pd.factorize(np.asarray(groups).ravel())
    order = np.argsort(group_codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(group_codes[order])) + 1
    total, total_weight = 0.0, 0.0
    for rows in np.split(order, boundaries):
        positive = (weights[rows] * labels[rows]).sum()
        negative = (weights[rows] * (1.0 - labels[rows])).sum()
        if positive <= 0 or negative <= 0:
            continue
        group_weight = weights[rows].sum() if weighting == "impressions" else 1.0
        total += group_weight * roc_auc(labels[rows], scores[rows], sample_weight=weights[rows])
        total_weight += group_weight
    if total_weight == 0:
        raise ValueError("group_auc needs at least one group with both positive and negative examples")
    return total / total_weight


def reliability_bins(labels, probabilities, sample_weight=None, bins: int = 15) -> pd.DataFrame:
    """Equal-weight bins of the sorted predictions: columns mean_prediction, mean_label, weight."""
    labels = np.asarray(labels).astype(np.float64).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    weights = _weights(sample_weight, labels.size)
    if labels.size == 0 or weights.sum() <= 0:
        raise ValueError("reliability_bins needs at least one example with positive weight")
    order = np.argsort(probabilities, kind="stable")
    cumulative_before = np.cumsum(weights[order]) - weights[order]
    bin_of = np.minimum((cumulative_before / weights.sum() * bins).astype(np.int64), bins - 1)
    table = pd.DataFrame({
        "bin": bin_of, "weight": weights[order],
        "weighted_prediction": weights[order] * probabilities[order], "weighted_label": weights[order] * labels[order],
    }).groupby("bin").sum()
    table = table[table["weight"] > 0]
    return pd.DataFrame({
        "mean_prediction": table["weighted_prediction"] / table["weight"],
        "mean_label": table["weighted_label"] / table["weight"],
        "weight": table["weight"],
    }).reset_index(drop=True)


def expected_calibration_error(labels, probabilities, sample_weight=None, bins: int = 15) -> float:
    table = reliability_bins(labels, probabilities, sample_weight, bins)
    gaps = (table["mean_prediction"] - table["mean_label"]).abs()
    return float((gaps * table["weight"]).sum() / table["weight"].sum())


def ndcg_at_k_by_group(gains, scores, groups, k: int = 10) -> float:
    """Mean NDCG@k over groups with positive total gain (linear gains, pessimistic ties)."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    frame = pd.DataFrame({
        "group": pd.factorize(np.asarray(groups).ravel())[0],
        "gain": np.asarray(gains, dtype=np.float64).ravel(),
        "score": np.asarray(scores, dtype=np.float64).ravel(),
    })
    if np.any(frame["gain"] < 0):
        raise ValueError("gains must be non-negative")
    frame = frame[frame.groupby("group")["gain"].transform("sum") > 0]
    if frame.empty:
        raise ValueError("ndcg_at_k_by_group needs at least one group with a positive gain")
    discount = lambda rank: 1.0 / np.log2(rank + 1.0)
    model_rank = frame.sort_values(["group", "score", "gain"], ascending=[True, False, True]).groupby("group").cumcount() + 1
    ideal_rank = frame.sort_values(["group", "gain"], ascending=[True, False]).groupby("group").cumcount() + 1
    frame["dcg"] = np.where(model_rank <= k, frame["gain"] * discount(model_rank), 0.0)
    frame["ideal"] = np.where(ideal_rank.reindex(frame.index) <= k, frame["gain"] * discount(ideal_rank.reindex(frame.index)), 0.0)
    per_group = frame.groupby("group")[["dcg", "ideal"]].sum()
    return float((per_group["dcg"] / per_group["ideal"]).mean())


def watch_time_weighted_pairwise_loss(clicked, watch_seconds, scores, groups, sample_weight=None) -> float:
    """Weighted share of within-group (positive, negative) pairs ordered wrongly (ties 1/2)."""
    clicked = np.asarray(clicked).astype(bool).ravel()
    frame = pd.DataFrame({
        "group": pd.factorize(np.asarray(groups).ravel())[0],
        "score": np.asarray(scores, dtype=np.float64).ravel(),
        "weight": _weights(sample_weight, clicked.size),
    })
    frame["negative_weight"] = np.where(clicked, 0.0, frame["weight"])
    frame["positive_weight"] = np.where(clicked, np.asarray(watch_seconds, dtype=np.float64).ravel(), 0.0) * frame["weight"]
    at_score = frame.groupby(["group", "score"], sort=True)["negative_weight"].sum().rename("negative_at_score")
    cumulative = at_score.groupby(level="group").cumsum().rename("negative_at_or_below")
    total = at_score.groupby(level="group").sum().rename("negative_total")
    positives = frame[frame["positive_weight"] > 0].join(at_score, on=["group", "score"]).join(
        cumulative, on=["group", "score"]).join(total, on="group")
    wrong = positives["negative_total"] - positives["negative_at_or_below"] + 0.5 * positives["negative_at_score"]
    pair_weight = (positives["positive_weight"] * positives["negative_total"]).sum()
    if pair_weight <= 0:
        raise ValueError("no group holds both a watched positive and a negative; the pairwise loss is undefined")
    return float((positives["positive_weight"] * wrong).sum() / pair_weight)
