import numpy as np
import pytest

from models.evaluation.ranking_metrics import (
    expected_calibration_error,
    group_auc,
    ndcg_at_k_by_group,
    reliability_bins,
    watch_time_weighted_pairwise_loss,
)


def test_group_auc_averages_per_user_auc_weighted_by_impressions_and_skips_one_class_users():
    labels = [1, 0, 0, 1, 0, 1, 1]
    scores = [0.9, 0.1, 0.5, 0.2, 0.8, 0.3, 0.4]
    users = ["a", "a", "a", "b", "b", "c", "c"]  # a: AUC 1 (3 rows), b: AUC 0 (2 rows), c: one class
    assert group_auc(labels, scores, users) == pytest.approx((3 * 1.0 + 2 * 0.0) / 5)
    assert group_auc(labels, scores, users, weighting="uniform") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both positive and negative"):
        group_auc([1, 1], [0.1, 0.2], ["a", "a"])


def test_pairwise_loss_weights_pairs_by_the_positives_watch_seconds_within_requests():
    # request r1: positive 100 s scored above one negative and below the other; positive 10 s below both.
    clicked = [1, 1, 0, 0, 1, 0]
    watch = [100.0, 10.0, 0.0, 0.0, 50.0, 0.0]
    scores = [0.5, 0.1, 0.9, 0.3, 0.2, 0.2]
    requests = ["r1", "r1", "r1", "r1", "r2", "r2"]  # r2: a tie, counts 1/2
    wrong = 100 * 1 + 10 * 2 + 50 * 0.5
    total = 100 * 2 + 10 * 2 + 50 * 1
    assert watch_time_weighted_pairwise_loss(clicked, watch, scores, requests) == pytest.approx(wrong / total)
    # A cross-request pair never counts: a perfect order within each request scores 0.
    assert watch_time_weighted_pairwise_loss([1, 0, 1, 0], [5, 0, 5, 0], [0.2, 0.1, 0.9, 0.8], [1, 1, 2, 2]) == 0.0


def test_pairwise_loss_counts_negative_sample_weights():
    # One wrongly ordered negative weighing 9 and one right one weighing 1.
    loss = watch_time_weighted_pairwise_loss([1, 0, 0], [10, 0, 0], [0.5, 0.9, 0.1], ["r"] * 3, sample_weight=[1, 9, 1])
    assert loss == pytest.approx(0.9)


def test_ndcg_uses_watch_seconds_as_gains_and_breaks_ties_pessimistically():
    gains = [0.0, 30.0, 10.0]
    scores = [0.9, 0.5, 0.1]  # order: 0, 30, 10
    dcg = 30 / np.log2(3) + 10 / np.log2(4)
    ideal = 30 / np.log2(2) + 10 / np.log2(3)
    assert ndcg_at_k_by_group(gains, scores, ["q"] * 3) == pytest.approx(dcg / ideal)
    assert ndcg_at_k_by_group(gains, scores, ["q"] * 3, k=1) == 0.0
    tied = ndcg_at_k_by_group([0.0, 30.0], [0.5, 0.5], ["q", "q"])
    assert tied == pytest.approx((30 / np.log2(3)) / 30)
    # A group with no watch time is left out of the mean.
    assert ndcg_at_k_by_group([0.0, 30.0, 0.0], [0.1, 0.9, 0.3], ["q", "q", "z"]) == 1.0


def test_ece_of_equal_frequency_bins_matches_a_hand_computation():
    labels = [0, 0, 1, 1]
    predictions = [0.1, 0.3, 0.6, 0.8]
    # two bins: {0.1, 0.3} mean 0.2 vs 0; {0.6, 0.8} mean 0.7 vs 1 → (0.2 + 0.3) / 2
    assert expected_calibration_error(labels, predictions, bins=2) == pytest.approx(0.25)
    table = reliability_bins(labels, predictions, sample_weight=[3, 1, 1, 1], bins=2)
    assert table["weight"].tolist() == [3.0, 3.0]  # equal weight, not equal count
    assert expected_calibration_error([1, 0], [0.5, 0.5], bins=1) == 0.0
