"""Offline metrics for both stages, as pure numpy functions (and one pandas table of per-user values).

Retrieval metrics are per user: `ranked_ids` is what the model returned (best first) and
`relevant_ids` what the user actually watched in the holdout. Conventions, fixed here so every
report means the same thing:

- Recall@K = |top-K ∩ relevant| / |relevant|. The denominator is the whole relevant set, not
  min(K, |relevant|), so a user with 200 holdout watches cannot reach recall 1 at K=10; numbers
  stay comparable across K and across models, and they are lower than the "capped" variant.
- NDCG@K uses binary gains: DCG = Σ 1/log2(rank + 1) over hits in the top K (rank from 1),
  normalised by the DCG of an ideal list with min(K, |relevant|) hits.
- HitRate@K is 1 when any relevant item is in the top K.
- MRR is 1/rank of the first relevant item in the whole list (0 when none).
- A repeated id in `ranked_ids` counts once, at its first position.

Ranking metrics (`roc_auc`, `log_loss`) take optional sample weights, because the ranker is a
watch-time-weighted logistic regression and its natural evaluation is weighted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd


def _check_inputs(relevant_ids: Iterable[int], k: int | None) -> set[int]:
    relevant = set(relevant_ids)
    if not relevant:
        raise ValueError("relevant_ids is empty; a per-user metric needs at least one relevant item")
    if k is not None and k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return relevant


def _hit_ranks(ranked_ids: Sequence[int], relevant: set[int], k: int | None) -> list[int]:
    """1-based ranks of the first occurrence of each relevant id within the top k."""
    seen: set[int] = set()
    ranks = []
    for rank, item in enumerate(ranked_ids[:k] if k is not None else ranked_ids, start=1):
        if item in relevant and item not in seen:
            ranks.append(rank)
        seen.add(item)
    return ranks


def recall_at_k(ranked_ids: Sequence[int], relevant_ids: Iterable[int], k: int) -> float:
    """|top-k ∩ relevant| / |relevant| (see the module docstring for why not min(k, |relevant|))."""
    relevant = _check_inputs(relevant_ids, k)
    return len(_hit_ranks(list(ranked_ids), relevant, k)) / len(relevant)


def ndcg_at_k(ranked_ids: Sequence[int], relevant_ids: Iterable[int], k: int) -> float:
    """Binary-gain NDCG@k, normalised by an ideal list holding min(k, |relevant|) hits."""
    relevant = _check_inputs(relevant_ids, k)
    ranks = np.asarray(_hit_ranks(list(ranked_ids), relevant, k), dtype=np.float64)
    dcg = float(np.sum(1.0 / np.log2(ranks + 1.0)))
    ideal = float(np.sum(1.0 / np.log2(np.arange(1, min(k, len(relevant)) + 1) + 1.0)))
    return dcg / ideal


def hit_rate_at_k(ranked_ids: Sequence[int], relevant_ids: Iterable[int], k: int) -> float:
    """1.0 when any relevant item is in the top k, else 0.0."""
    relevant = _check_inputs(relevant_ids, k)
    return 1.0 if _hit_ranks(list(ranked_ids), relevant, k) else 0.0


def mrr(ranked_ids: Sequence[int], relevant_ids: Iterable[int], k: int | None = None) -> float:
    """Reciprocal rank of the first relevant item (within the top k when k is given), else 0."""
    relevant = _check_inputs(relevant_ids, k)
    ranks = _hit_ranks(list(ranked_ids), relevant, k)
    return 1.0 / ranks[0] if ranks else 0.0


def per_user_retrieval_metrics(
    recommendations: Mapping[int, Sequence[int]],
    holdout: Mapping[int, Iterable[int]],
    ks: Sequence[int] = (10, 50, 100),
) -> pd.DataFrame:
    """The per-user metrics of every user with at least one holdout item: one row per user, indexed
    by `user_id` in ascending order, so two methods scored on the same holdout pair up row by row
    (what a paired bootstrap resamples).

    A holdout user missing from `recommendations` counts as an empty list (all metrics 0), so a
    model cannot look better by skipping hard users. Columns: `recall@K`, `ndcg@K`, `hit_rate@K`
    for each K, then `mrr`.
    """
    if not ks:
        raise ValueError("ks is empty; pass at least one cut-off such as (10, 50, 100)")
    users = sorted(user for user, items in holdout.items() if len(set(items)) > 0)
    if not users:
        raise ValueError("holdout has no user with at least one relevant item")
    rows = []
    for user in users:
        relevant = set(holdout[user])
        ranked = list(recommendations.get(user, ()))
        row = {}
        for k in ks:
            for name, metric in (("recall", recall_at_k), ("ndcg", ndcg_at_k), ("hit_rate", hit_rate_at_k)):
                row[f"{name}@{k}"] = metric(ranked, relevant, k)
        row["mrr"] = mrr(ranked, relevant)
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(users, name="user_id"), dtype=np.float64)


def evaluate_retrieval(
    recommendations: Mapping[int, Sequence[int]],
    holdout: Mapping[int, Iterable[int]],
    ks: Sequence[int] = (10, 50, 100),
) -> dict[str, float]:
    """The mean of `per_user_retrieval_metrics` over its users, plus `num_users`."""
    per_user = per_user_retrieval_metrics(recommendations, holdout, ks)
    averaged = {name: float(value) for name, value in per_user.mean().items()}
    averaged["num_users"] = float(len(per_user))
    return averaged


def _binary_inputs(
    labels: np.ndarray | Sequence, values: np.ndarray | Sequence, sample_weight, values_name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.float64).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    if labels.size == 0:
        raise ValueError("labels is empty")
    if labels.shape != values.shape:
        raise ValueError(f"labels has {labels.size} entries but {values_name} has {values.size}")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("labels must be binary (0/1 or bool)")
    weights = np.ones_like(labels) if sample_weight is None else np.asarray(sample_weight, np.float64).ravel()
    if weights.shape != labels.shape:
        raise ValueError(f"sample_weight has {weights.size} entries, expected {labels.size}")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("sample_weight must be finite and non-negative")
    return labels, values, weights


def roc_auc(labels, scores, sample_weight=None) -> float:
    """Weighted ROC AUC: P(score of a random positive > score of a random negative), ties 1/2.

    Each positive/negative pair counts with the product of their weights, so with positive weights
    equal to watch seconds this is "the chance a random watched second outranks a random non-click".
    """
    labels, scores, weights = _binary_inputs(labels, scores, sample_weight, "scores")
    positive_weight = weights * labels
    negative_weight = weights * (1.0 - labels)
    total_positive, total_negative = positive_weight.sum(), negative_weight.sum()
    if total_positive <= 0 or total_negative <= 0:
        raise ValueError("roc_auc needs both positive and negative examples with non-zero weight")
    unique_scores, group = np.unique(scores, return_inverse=True)
    positive_by_score = np.bincount(group, positive_weight, minlength=unique_scores.size)
    negative_by_score = np.bincount(group, negative_weight, minlength=unique_scores.size)
    negatives_below = np.cumsum(negative_by_score) - negative_by_score
    wins = positive_by_score * (negatives_below + 0.5 * negative_by_score)
    return float(wins.sum() / (total_positive * total_negative))


def log_loss(labels, probabilities, sample_weight=None, eps: float = 1e-15) -> float:
    """Weighted mean binary cross-entropy; probabilities are clipped to [eps, 1 - eps]."""
    labels, probabilities, weights = _binary_inputs(labels, probabilities, sample_weight, "probabilities")
    if np.any((probabilities < 0) | (probabilities > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    if weights.sum() <= 0:
        raise ValueError("sample_weight sums to zero")
    clipped = np.clip(probabilities, eps, 1.0 - eps)
    losses = -(labels * np.log(clipped) + (1.0 - labels) * np.log(1.0 - clipped))
    return float(np.sum(weights * losses) / weights.sum())


def catalog_coverage(recommendations: Mapping[int, Sequence[int]], catalog_size: int, k: int) -> float:
    """Share of the catalog that appears in at least one user's top k (0 when nothing is recommended)."""
    if catalog_size < 1:
        raise ValueError(f"catalog_size must be a positive integer, got {catalog_size!r}")
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    shown = {item for ranked in recommendations.values() for item in list(ranked)[:k]}
    return len(shown) / catalog_size
