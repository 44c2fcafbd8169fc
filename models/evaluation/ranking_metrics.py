"""Offline metrics of the ranker, as pure numpy/pandas functions.

Every function takes optional `sample_weight` (the frame's `example_weight`, undoing negative
down-sampling) so numbers estimate the full impression log. Definitions, fixed here:

- `group_auc` (GAUC): the weighted ROC AUC within each group (user), averaged over the groups that
  have both a positive and a negative with non-zero weight, each group weighted by its total
  sample weight (its impressions in the full log; Zhou et al., 2018). `weighting="uniform"` gives
  every such group weight 1.
- `expected_calibration_error` (ECE): predictions sorted and cut into `bins` bins of equal total
  sample weight (equal-frequency bins); ECE = Σ_b (W_b / W) · |mean prediction_b − mean label_b|,
  both means weighted. Equal predictions always share a bin (the bin where the first of them
  falls), so the ECE does not depend on row order: a constant predictor has one bin and
  ECE = |constant − base rate|, and an isotonic calibrator's plateaus are not split at random.
- `ndcg_at_k_by_group`: per group, DCG@k = Σ_{rank ≤ k} gain / log2(rank + 1) with the model's
  order and linear gains (watch seconds), divided by the DCG of the gain-sorted order; averaged
  over groups with a positive total gain. Tied scores are ordered pessimistically (lowest gain
  first), so a constant predictor cannot look good by the frame's row order; the result does
  not depend on row order at all.
- `watch_time_weighted_pairwise_loss` (Covington et al.'s offline metric): over every
  (positive, negative) pair of impressions in the same group (request), with weight = positive's
  watch seconds × both rows' sample weights, the weighted share of pairs the model orders wrongly
  (negative scored above the positive; a tie counts 1/2). 0 is perfect, 0.5 is random.

GAUC and the pairwise loss are ratios of per-group sums, Σ numerator / Σ denominator. The
`*_components` functions return those per-group terms (one row per group), so a caller can
re-aggregate them to a coarser unit (requests → users) and bootstrap over units with
models/evaluation/bootstrap.py; the scalar metrics are computed from the same components.

`calibration_report` puts each probabilistic head's ECE next to what makes it readable: the base
rate (an ECE of 0.02 is large for a 3 % head and small for a 40 % one), the ECE of a constant
predictor, and whether the scored rows hold enough positives (`MIN_CALIBRATION_POSITIVES`) for
the head's ECE to count toward any bar. Its calibration in the large, |weighted mean prediction −
base rate|, is the one figure measured as a constant's ECE is: the ECE of a model with 15 bins
also holds each bin's sampling noise, which a constant's single bin barely has, so a model's ECE
above a constant's is not on its own proof of worse calibration.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from models.evaluation.metrics import log_loss, roc_auc

__all__ = [
    "MIN_CALIBRATION_POSITIVES",
    "calibration_report",
    "expected_calibration_error",
    "group_auc",
    "group_auc_components",
    "log_loss",
    "ndcg_at_k_by_group",
    "ndcg_components",
    "pairwise_loss_components",
    "reliability_bins",
    "roc_auc",
    "watch_time_weighted_pairwise_loss",
]

# A head with fewer positive rows than this among the scored rows is reported, but its ECE counts
# toward no bar: with a 3 % base rate and 15 bins, a bin then holds about one positive, and the
# ECE measures sampling noise more than calibration.
MIN_CALIBRATION_POSITIVES = 200


def _weights(sample_weight, size: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(size)
    weights = np.asarray(sample_weight, dtype=np.float64).ravel()
    if weights.size != size:
        raise ValueError(f"sample_weight has {weights.size} entries, expected {size}")
    return weights


def _group_rows(groups) -> tuple[np.ndarray, list[np.ndarray]]:
    """(distinct group labels, row positions of each), in order of first appearance."""
    codes, labels = pd.factorize(np.asarray(groups).ravel())
    order = np.argsort(codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(codes[order])) + 1
    return np.asarray(labels), (np.split(order, boundaries) if order.size else [])


# --- GAUC ---------------------------------------------------------------------------------------

def group_auc_components(labels, scores, groups, sample_weight=None, weighting: str = "impressions") -> pd.DataFrame:
    """One row per group with both classes: columns `group`, `auc` (the group's weighted AUC) and
    `weight` (its total sample weight, or 1 under `weighting="uniform"`). GAUC = Σ weight·auc / Σ weight.
    Groups with one class are left out (no row); the frame is empty when no group has both."""
    if weighting not in ("impressions", "uniform"):
        raise ValueError(f"weighting must be 'impressions' or 'uniform', got {weighting!r}")
    labels = np.asarray(labels).astype(np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    weights = _weights(sample_weight, labels.size)
    names, row_sets = _group_rows(groups)
    kept, aucs, group_weights = [], [], []
    for name, rows in zip(names, row_sets, strict=True):
        positive = (weights[rows] * labels[rows]).sum()
        negative = (weights[rows] * (1.0 - labels[rows])).sum()
        if positive <= 0 or negative <= 0:
            continue
        kept.append(name)
        aucs.append(roc_auc(labels[rows], scores[rows], sample_weight=weights[rows]))
        group_weights.append(weights[rows].sum() if weighting == "impressions" else 1.0)
    return pd.DataFrame({"group": pd.Series(kept, dtype=object), "auc": np.asarray(aucs, dtype=np.float64),
                         "weight": np.asarray(group_weights, dtype=np.float64)})


def group_auc(labels, scores, groups, sample_weight=None, weighting: str = "impressions") -> float:
    """GAUC; raises when no group has both classes (see the module docstring)."""
    components = group_auc_components(labels, scores, groups, sample_weight, weighting)
    if components.empty:
        raise ValueError("group_auc needs at least one group with both positive and negative examples")
    return float((components["weight"] * components["auc"]).sum() / components["weight"].sum())


# --- calibration --------------------------------------------------------------------------------

def reliability_bins(labels, probabilities, sample_weight=None, bins: int = 15) -> pd.DataFrame:
    """Equal-weight bins of the sorted predictions: columns mean_prediction, mean_label, weight.
    Equal predictions share the bin of the first of them, so a bin can hold more than W / bins
    and a later bin can be empty (empty bins are left out)."""
    labels = np.asarray(labels).astype(np.float64).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    weights = _weights(sample_weight, labels.size)
    if labels.size == 0 or weights.sum() <= 0:
        raise ValueError("reliability_bins needs at least one example with positive weight")
    order = np.argsort(probabilities, kind="stable")
    sorted_probabilities = probabilities[order]
    cumulative_before = np.cumsum(weights[order]) - weights[order]
    # every row of a run of equal predictions takes the cumulative weight before the run's first row
    first_of_run = np.searchsorted(sorted_probabilities, sorted_probabilities, side="left")
    bin_of = np.minimum((cumulative_before[first_of_run] / weights.sum() * bins).astype(np.int64), bins - 1)
    table = pd.DataFrame({
        "bin": bin_of, "weight": weights[order],
        "weighted_prediction": weights[order] * sorted_probabilities, "weighted_label": weights[order] * labels[order],
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


def calibration_report(
    heads: Mapping[str, tuple[np.ndarray, np.ndarray]],
    sample_weight=None,
    constant_rates: Mapping[str, float] | None = None,
    bins: int = 15,
    min_positives: int = MIN_CALIBRATION_POSITIVES,
) -> pd.DataFrame:
    """One row per head of `heads` (head → (labels, predicted probabilities) on the scored rows).

    Columns: `head`; `positives` (positive rows, unweighted); `base_rate` (weighted mean label of
    the scored rows); `ece`; `constant_rate` and `constant_ece`, the ECE of predicting one number
    for every row; `constant_from`: "train" when `constant_rates` gives the head's rate (callers
    pass the training rows' weighted base rate: a constant a model could actually ship, so its
    ECE is |train rate − scored rate|), else "scored" (the scored rows' own base rate, whose ECE
    is 0 by construction: any model's ECE is then read against a trivial 0); `ece_over_base_rate`;
    `mean_prediction` (weighted) and `calibration_in_the_large`, |mean_prediction − base_rate|,
    which a constant's ECE equals for the constant (one bin): the comparable figure;
    `counts_toward_bar`: False when the head has fewer than `min_positives` positive rows, in
    which case its ECE is reported but no bar may use it.
    """
    rows = []
    for head, (labels, probabilities) in heads.items():
        labels = np.asarray(labels).astype(np.float64).ravel()
        weights = _weights(sample_weight, labels.size)
        base_rate = float((weights * labels).sum() / weights.sum()) if weights.sum() > 0 else float("nan")
        from_train = constant_rates is not None and head in constant_rates
        constant = float(constant_rates[head]) if from_train else base_rate
        ece = expected_calibration_error(labels, probabilities, weights, bins)
        predicted = np.asarray(probabilities, dtype=np.float64).ravel()
        mean_prediction = float((weights * predicted).sum() / weights.sum()) if weights.sum() > 0 else float("nan")
        rows.append({
            "head": head,
            "positives": int((labels > 0).sum()),
            "base_rate": base_rate,
            "ece": ece,
            "constant_rate": constant,
            "constant_ece": expected_calibration_error(labels, np.full(labels.size, constant), weights, bins),
            "constant_from": "train" if from_train else "scored",
            "ece_over_base_rate": ece / base_rate if base_rate > 0 else float("nan"),
            "mean_prediction": mean_prediction,
            "calibration_in_the_large": abs(mean_prediction - base_rate),
            "counts_toward_bar": bool((labels > 0).sum() >= min_positives),
        })
    return pd.DataFrame(rows, columns=["head", "positives", "base_rate", "ece", "constant_rate", "constant_ece",
                                       "constant_from", "ece_over_base_rate", "mean_prediction",
                                       "calibration_in_the_large", "counts_toward_bar"])


# --- NDCG ---------------------------------------------------------------------------------------

def _rank_within_group(group_codes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """1-based rank of every row within its group, given `order` sorted by group first."""
    sorted_groups = group_codes[order]
    first_of_group = np.searchsorted(sorted_groups, sorted_groups, side="left")
    ranks = np.empty(order.size, dtype=np.int64)
    ranks[order] = np.arange(order.size) - first_of_group + 1
    return ranks


def ndcg_components(gains, scores, groups, k: int = 10) -> pd.DataFrame:
    """One row per group with a positive total gain: columns `group` and `ndcg` (NDCG@k of the
    model's order, ties pessimistic). Independent of row order."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    gains = np.asarray(gains, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if np.any(gains < 0):
        raise ValueError("gains must be non-negative")
    if scores.size != gains.size:
        raise ValueError(f"scores has {scores.size} entries, expected {gains.size}")
    codes, names = pd.factorize(np.asarray(groups).ravel())
    # np.lexsort sorts by the last key first: group, then score descending, then gain ascending
    model_rank = _rank_within_group(codes, np.lexsort((gains, -scores, codes)))
    ideal_rank = _rank_within_group(codes, np.lexsort((-gains, codes)))

    def discounted(rank):
        return np.where(rank <= k, gains / np.log2(rank + 1.0), 0.0)

    dcg = np.bincount(codes, discounted(model_rank), minlength=len(names))
    ideal = np.bincount(codes, discounted(ideal_rank), minlength=len(names))
    scored = ideal > 0
    return pd.DataFrame({"group": pd.Series(np.asarray(names)[scored], dtype=object),
                         "ndcg": dcg[scored] / ideal[scored]})


def ndcg_at_k_by_group(gains, scores, groups, k: int = 10) -> float:
    """Mean NDCG@k over groups with positive total gain (linear gains, pessimistic ties)."""
    components = ndcg_components(gains, scores, groups, k)
    if components.empty:
        raise ValueError("ndcg_at_k_by_group needs at least one group with a positive gain")
    return float(components["ndcg"].mean())


# --- the watch-time-weighted pairwise loss ------------------------------------------------------

def pairwise_loss_components(clicked, watch_seconds, scores, groups, sample_weight=None) -> pd.DataFrame:
    """One row per group holding a watched positive and a negative: columns `group`,
    `wrong_weight` (weight of its wrongly ordered pairs, ties 1/2) and `pair_weight` (weight of
    all its pairs). The loss is Σ wrong_weight / Σ pair_weight."""
    clicked = np.asarray(clicked).astype(bool).ravel()
    codes, names = pd.factorize(np.asarray(groups).ravel())
    frame = pd.DataFrame({
        "group": codes,
        "score": np.asarray(scores, dtype=np.float64).ravel(),
        "weight": _weights(sample_weight, clicked.size),
    })
    frame["negative_weight"] = np.where(clicked, 0.0, frame["weight"])
    watched = np.asarray(watch_seconds, dtype=np.float64).ravel()
    frame["positive_weight"] = np.where(clicked, watched, 0.0) * frame["weight"]
    at_score = frame.groupby(["group", "score"], sort=True)["negative_weight"].sum().rename("negative_at_score")
    cumulative = at_score.groupby(level="group").cumsum().rename("negative_at_or_below")
    total = at_score.groupby(level="group").sum().rename("negative_total")
    positives = frame[frame["positive_weight"] > 0].join(at_score, on=["group", "score"]).join(
        cumulative, on=["group", "score"]).join(total, on="group")
    wrong = positives["negative_total"] - positives["negative_at_or_below"] + 0.5 * positives["negative_at_score"]
    per_group = pd.DataFrame({
        "group": positives["group"],
        "wrong_weight": positives["positive_weight"] * wrong,
        "pair_weight": positives["positive_weight"] * positives["negative_total"],
    }).groupby("group", sort=True).sum()
    per_group = per_group[per_group["pair_weight"] > 0]
    return pd.DataFrame({"group": pd.Series(np.asarray(names)[per_group.index.to_numpy()], dtype=object),
                         "wrong_weight": per_group["wrong_weight"].to_numpy(np.float64),
                         "pair_weight": per_group["pair_weight"].to_numpy(np.float64)})


def watch_time_weighted_pairwise_loss(clicked, watch_seconds, scores, groups, sample_weight=None) -> float:
    """Weighted share of within-group (positive, negative) pairs ordered wrongly (ties 1/2)."""
    components = pairwise_loss_components(clicked, watch_seconds, scores, groups, sample_weight)
    if components.empty:
        raise ValueError("no group holds both a watched positive and a negative; the pairwise loss is undefined")
    return float(components["wrong_weight"].sum() / components["pair_weight"].sum())
