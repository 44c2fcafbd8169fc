"""The ranker's offline report on a labelled frame (the temporal holdout), shared by training and
bench/ranking.py so baselines and our model are measured by the same code.

Keys (all weighted by `example_weight`; definitions in models/evaluation/ranking_metrics.py):
`auc_clicked` and `gauc_clicked` (final score vs clicked; GAUC per user), `auc_watch_weighted`
(final score, positives weighted by watch seconds), `pairwise_loss_watch_weighted` (per request),
`ndcg_at_10_watch_seconds` (per request, gains = watch seconds), and for every probabilistic head
given: `auc_<head>`, `log_loss_<head>`, `ece_<head>`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.evaluation.ranking_metrics import (
    expected_calibration_error,
    group_auc,
    log_loss,
    ndcg_at_k_by_group,
    roc_auc,
    watch_time_weighted_pairwise_loss,
)
from models.ranking.labels import example_weights, request_groups, watch_time_labels


def _defined(metric, *args, **kwargs) -> float:
    try:
        return float(metric(*args, **kwargs))
    except ValueError:  # a metric with one class or no pair: reported as NaN, not a crash
        return float("nan")


def ranking_report(frame: pd.DataFrame, final_score: np.ndarray,
                   probabilities: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                   bins: int = 15) -> dict[str, float]:
    """`probabilities`: head → (labels, predicted probabilities) of calibrated heads."""
    clicked, watch_weights = watch_time_labels(frame)
    weights = example_weights(frame)
    groups = request_groups(frame)
    users = frame["user_id"].to_numpy() if "user_id" in frame.columns else groups
    watch_seconds = np.where(clicked == 1, frame["watch_seconds"].fillna(0.0).to_numpy(np.float64), 0.0)
    report = {
        "rows": float(len(frame)),
        "auc_clicked": _defined(roc_auc, clicked, final_score, sample_weight=weights),
        "gauc_clicked": _defined(group_auc, clicked, final_score, users, sample_weight=weights),
        "auc_watch_weighted": _defined(roc_auc, clicked, final_score, sample_weight=watch_weights),
        "pairwise_loss_watch_weighted": _defined(
            watch_time_weighted_pairwise_loss, clicked, watch_seconds, final_score, groups, sample_weight=weights),
        "ndcg_at_10_watch_seconds": _defined(ndcg_at_k_by_group, watch_seconds, final_score, groups, k=10),
    }
    for head, (labels, predicted) in (probabilities or {}).items():
        report[f"auc_{head}"] = _defined(roc_auc, labels, predicted, sample_weight=weights)
        report[f"log_loss_{head}"] = _defined(log_loss, labels, predicted, sample_weight=weights)
        report[f"ece_{head}"] = _defined(expected_calibration_error, labels, predicted, sample_weight=weights, bins=bins)
    return report
