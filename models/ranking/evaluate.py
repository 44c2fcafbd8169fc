"""The ranker's offline report on a labelled frame (the temporal holdout), shared by training and
bench/ranking.py so baselines and our model are measured by the same code.

Keys (all weighted by `example_weight`; definitions in models/evaluation/ranking_metrics.py):
`auc_clicked` and `gauc_clicked` (final score vs clicked; GAUC per user), `auc_watch_weighted`
(final score, positives weighted by watch seconds), `pairwise_loss_watch_weighted` (per request),
`ndcg_at_10_watch_seconds` (per request, gains = watch seconds), and for every probabilistic head
given: `auc_<head>`, `log_loss_<head>`, `ece_<head>`, and beside the ECE what it must be read
against (`calibration_report`): `base_rate_<head>` and `positives_<head>` of the scored rows,
`ece_constant_<head>` (a constant predictor's ECE: the constant is `constant_rates[head]` when
given, the training rows' base rate in bench/ranking.py, else the scored rows' own base rate,
whose ECE is 0), `calibration_in_the_large_<head>` (|weighted mean prediction − base rate|, the
figure measured as the constant's ECE is) and `ece_counts_toward_bar_<head>` (1.0, or 0.0 when
the scored rows hold fewer than MIN_CALIBRATION_POSITIVES positives: the ECE is then reported but
no bar may use it).

`user_components` gives the per-user terms of GAUC and of the pairwise loss, for bootstrap
intervals over users (models/evaluation/bootstrap.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from models.evaluation.ranking_metrics import (
    calibration_report,
    group_auc,
    group_auc_components,
    log_loss,
    ndcg_at_k_by_group,
    pairwise_loss_components,
    roc_auc,
    watch_time_weighted_pairwise_loss,
)
from models.ranking.config import PROBABILITY_HEADS, RankerConfig
from models.ranking.labels import example_weights, head_labels, request_groups, watch_time_labels

COMPONENT_COLUMNS = ("gauc_numerator", "gauc_weight", "pairwise_wrong_weight", "pairwise_pair_weight")


def _defined(metric, *args, **kwargs) -> float:
    try:
        return float(metric(*args, **kwargs))
    except ValueError:  # a metric with one class or no pair: reported as NaN, not a crash
        return float("nan")


def _users(frame: pd.DataFrame, groups: np.ndarray) -> np.ndarray:
    return frame["user_id"].to_numpy() if "user_id" in frame.columns else groups


def _watched_seconds(frame: pd.DataFrame, clicked: np.ndarray) -> np.ndarray:
    return np.where(clicked == 1, frame["watch_seconds"].fillna(0.0).to_numpy(np.float64), 0.0)


def ranking_report(frame: pd.DataFrame, final_score: np.ndarray,
                   probabilities: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                   bins: int = 15, constant_rates: Mapping[str, float] | None = None) -> dict[str, float]:
    """`probabilities`: head → (labels, predicted probabilities) of calibrated heads;
    `constant_rates`: head → the constant a trivial predictor ships (see the module docstring)."""
    clicked, watch_weights = watch_time_labels(frame)
    weights = example_weights(frame)
    groups = request_groups(frame)
    watch_seconds = _watched_seconds(frame, clicked)
    report = {
        "rows": float(len(frame)),
        "auc_clicked": _defined(roc_auc, clicked, final_score, sample_weight=weights),
        "gauc_clicked": _defined(group_auc, clicked, final_score, _users(frame, groups), sample_weight=weights),
        "auc_watch_weighted": _defined(roc_auc, clicked, final_score, sample_weight=watch_weights),
        "pairwise_loss_watch_weighted": _defined(
            watch_time_weighted_pairwise_loss, clicked, watch_seconds, final_score, groups, sample_weight=weights),
        "ndcg_at_10_watch_seconds": _defined(ndcg_at_k_by_group, watch_seconds, final_score, groups, k=10),
    }
    for head, (labels, predicted) in (probabilities or {}).items():
        report[f"auc_{head}"] = _defined(roc_auc, labels, predicted, sample_weight=weights)
        report[f"log_loss_{head}"] = _defined(log_loss, labels, predicted, sample_weight=weights)
    if probabilities and len(frame):
        calibration = calibration_report(probabilities, weights, constant_rates, bins).set_index("head")
        for head, row in calibration.iterrows():
            report[f"ece_{head}"] = float(row["ece"])
            report[f"base_rate_{head}"] = float(row["base_rate"])
            report[f"positives_{head}"] = float(row["positives"])
            report[f"ece_constant_{head}"] = float(row["constant_ece"])
            report[f"calibration_in_the_large_{head}"] = float(row["calibration_in_the_large"])
            report[f"ece_counts_toward_bar_{head}"] = float(row["counts_toward_bar"])
    return report


def user_components(frame: pd.DataFrame, final_score: np.ndarray) -> pd.DataFrame:
    """Per user (index: every `user_id` of `frame`), the summed terms of GAUC and of the
    watch-time-weighted pairwise loss: GAUC = Σ gauc_numerator / Σ gauc_weight and the loss =
    Σ pairwise_wrong_weight / Σ pairwise_pair_weight over users, exactly `ranking_report`'s
    `gauc_clicked` and `pairwise_loss_watch_weighted`. The loss's pairs stay within a request;
    a user's terms are the sums over their requests. A user with no term has zeros."""
    clicked, _ = watch_time_labels(frame)
    weights = example_weights(frame)
    groups = request_groups(frame)
    users = _users(frame, groups)
    index = pd.Index(pd.unique(users), name="user_id")
    auc = group_auc_components(clicked, final_score, users, sample_weight=weights).set_index("group")
    pairs = pairwise_loss_components(clicked, _watched_seconds(frame, clicked), final_score, groups,
                                     sample_weight=weights)
    user_of_request = pd.Series(users, index=groups).groupby(level=0).first()
    pairs_by_user = pairs.assign(user_id=user_of_request.reindex(pairs["group"]).to_numpy()).groupby("user_id")[
        ["wrong_weight", "pair_weight"]].sum()
    return pd.DataFrame({
        "gauc_numerator": (auc["weight"] * auc["auc"]).reindex(index, fill_value=0.0).to_numpy(),
        "gauc_weight": auc["weight"].reindex(index, fill_value=0.0).to_numpy(),
        "pairwise_wrong_weight": pairs_by_user["wrong_weight"].reindex(index, fill_value=0.0).to_numpy(),
        "pairwise_pair_weight": pairs_by_user["pair_weight"].reindex(index, fill_value=0.0).to_numpy(),
    }, index=index)


def base_rates(frame: pd.DataFrame, config: RankerConfig) -> dict[str, float]:
    """Weighted base rate of every probabilistic head of `config` on `frame` (e.g. the training
    rows: the constant a trivial predictor would ship)."""
    labels = head_labels(frame, config)
    return {head: float((weights * y).sum() / weights.sum())
            for head, (y, weights) in labels.items() if head in PROBABILITY_HEADS and weights.sum() > 0}
