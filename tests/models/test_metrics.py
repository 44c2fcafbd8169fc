import math

import numpy as np
import pytest

from models.evaluation.metrics import (
    evaluate_retrieval,
    hit_rate_at_k,
    log_loss,
    mrr,
    ndcg_at_k,
    per_user_retrieval_metrics,
    recall_at_k,
    roc_auc,
)


def test_recall_divides_by_all_relevant_items():
    assert recall_at_k([1, 2, 3, 4], {2, 4, 9}, k=2) == pytest.approx(1 / 3)
    assert recall_at_k([1, 2, 3, 4], {2, 4, 9}, k=4) == pytest.approx(2 / 3)


def test_ndcg_uses_binary_gains_and_an_ideal_list_of_min_k_relevant():
    # hits at ranks 2 and 4; ideal has min(4, 3) = 3 hits at ranks 1..3
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert ndcg_at_k([1, 2, 3, 4], {2, 4, 9}, k=4) == pytest.approx(expected)
    assert ndcg_at_k([2, 4, 9], {2, 4, 9}, k=3) == pytest.approx(1.0)


def test_hit_rate_and_mrr():
    assert hit_rate_at_k([1, 2, 3], {3}, k=2) == 0.0
    assert hit_rate_at_k([1, 2, 3], {3}, k=3) == 1.0
    assert mrr([1, 2, 3], {3, 2}) == pytest.approx(0.5)
    assert mrr([1, 2, 3], {7}) == 0.0


def test_repeated_recommendation_counts_once():
    assert recall_at_k([5, 5, 5], {5, 6}, k=3) == pytest.approx(0.5)


def test_per_user_metrics_reject_empty_relevant_and_bad_k():
    with pytest.raises(ValueError, match="relevant_ids is empty"):
        recall_at_k([1], set(), k=1)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ndcg_at_k([1], {1}, k=0)


def test_evaluate_retrieval_averages_over_users_with_holdout_items():
    recommendations = {1: [10, 11], 2: [20, 21]}
    holdout = {1: {10}, 2: {99}, 3: {30}, 4: set()}  # user 3 has no recommendations, 4 no holdout
    scores = evaluate_retrieval(recommendations, holdout, ks=(1, 2))
    assert scores["num_users"] == 3
    assert scores["recall@1"] == pytest.approx(1 / 3)
    assert scores["hit_rate@2"] == pytest.approx(1 / 3)
    assert scores["mrr"] == pytest.approx(1 / 3)


def test_per_user_metrics_have_one_row_per_holdout_user_by_id_and_average_to_the_summary():
    recommendations = {7: [70, 71, 72], 2: [21, 20]}
    holdout = {7: {72, 79}, 2: {20}, 5: {50}, 9: set()}  # 5 gets nothing, 9 has no holdout item
    per_user = per_user_retrieval_metrics(recommendations, holdout, ks=(1, 3))
    assert per_user.index.name == "user_id" and list(per_user.index) == [2, 5, 7]
    assert list(per_user.columns) == ["recall@1", "ndcg@1", "hit_rate@1", "recall@3", "ndcg@3", "hit_rate@3", "mrr"]
    assert per_user.loc[7, "recall@3"] == pytest.approx(0.5) and per_user.loc[7, "mrr"] == pytest.approx(1 / 3)
    assert per_user.loc[2, "recall@1"] == 0.0 and per_user.loc[2, "mrr"] == pytest.approx(0.5)
    assert (per_user.loc[5] == 0.0).all()
    summary = evaluate_retrieval(recommendations, holdout, ks=(1, 3))
    assert summary == pytest.approx({**per_user.mean().to_dict(), "num_users": 3.0})


def test_evaluate_retrieval_rejects_empty_inputs():
    with pytest.raises(ValueError, match="no user"):
        evaluate_retrieval({1: [1]}, {1: set()})
    with pytest.raises(ValueError, match="ks is empty"):
        evaluate_retrieval({1: [1]}, {1: {1}}, ks=())


def test_roc_auc_counts_pairs_and_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1 → pairs: win, win, tie, win = 3.5 / 4
    assert roc_auc([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)


def test_weighted_roc_auc_weighs_pairs_by_product_of_weights():
    # positive 0.9 (w=3) beats the negative, positive 0.2 (w=1) loses: 3 / 4
    assert roc_auc([1, 1, 0], [0.9, 0.2, 0.5], sample_weight=[3, 1, 1]) == pytest.approx(0.75)


def test_roc_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        roc_auc([], [])


def test_log_loss_matches_hand_computation_and_weights():
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    weighted = log_loss([1, 0], [0.8, 0.4], sample_weight=[3, 1])
    assert weighted == pytest.approx(-(3 * math.log(0.8) + math.log(0.6)) / 4)
    assert np.isfinite(log_loss([1], [0.0]))  # clipped, not infinite
