import numpy as np
import pandas as pd
import pytest

from models.evaluation.ranking_metrics import (
    MIN_CALIBRATION_POSITIVES,
    calibration_report,
    expected_calibration_error,
    group_auc,
    group_auc_components,
    ndcg_at_k_by_group,
    ndcg_components,
    pairwise_loss_components,
    reliability_bins,
    roc_auc,
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


def _shuffled_groups(num_groups: int, group_size: int, seed: int):
    """Gains, model scores and group labels of `num_groups` groups, rows interleaved at random."""
    rng = np.random.default_rng(seed)
    gains = rng.choice([0.0, 0.0, 0.0, 5.0, 30.0, 120.0], size=num_groups * group_size)
    scores = gains + rng.normal(0, 20.0, gains.size)
    groups = np.repeat([f"request-{index}" for index in range(num_groups)], group_size)
    return gains, scores, groups, rng.permutation(gains.size)


@pytest.mark.parametrize("group_size", [12, 40, 200])
def test_ndcg_of_a_perfect_order_is_one_for_large_shuffled_groups(group_size):
    gains, _, groups, shuffle = _shuffled_groups(25, group_size, seed=group_size)
    perfect = gains * 10.0 + np.arange(gains.size) * 1e-6  # the gain order, no ties
    assert ndcg_at_k_by_group(gains[shuffle], perfect[shuffle], groups[shuffle]) == pytest.approx(1.0)
    assert ndcg_at_k_by_group(gains[shuffle], perfect[shuffle], groups[shuffle], k=group_size) == pytest.approx(1.0)
    reversed_order = ndcg_at_k_by_group(gains[shuffle], -perfect[shuffle], groups[shuffle])
    assert reversed_order < 0.6


def test_ndcg_does_not_depend_on_row_order():
    gains, scores, groups, shuffle = _shuffled_groups(30, 25, seed=1)
    in_order = ndcg_at_k_by_group(gains, scores, groups)
    assert 0.0 < in_order < 1.0
    assert ndcg_at_k_by_group(gains[shuffle], scores[shuffle], groups[shuffle]) == pytest.approx(in_order, abs=1e-12)
    per_group = ndcg_components(gains, scores, groups).set_index("group")["ndcg"]
    shuffled = ndcg_components(gains[shuffle], scores[shuffle], groups[shuffle]).set_index("group")["ndcg"]
    pd.testing.assert_series_equal(per_group.sort_index(), shuffled.sort_index())


def test_ndcg_ties_stay_pessimistic_in_a_large_shuffled_group():
    # one watched row among 20 tied scores: the tie puts it last, whatever the row order
    gains = np.zeros(20)
    gains[7] = 60.0
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(20)
        assert ndcg_at_k_by_group(gains[order], np.zeros(20), ["q"] * 20, k=20) == pytest.approx(1 / np.log2(21))
        assert ndcg_at_k_by_group(gains[order], np.zeros(20), ["q"] * 20, k=10) == 0.0


def test_gauc_components_recombine_to_group_auc():
    rng = np.random.default_rng(2)
    labels = rng.random(600) < 0.2
    scores = labels + rng.normal(0, 1, 600)
    users = rng.integers(0, 40, 600)
    weights = np.where(labels, 1.0, 5.0)
    components = group_auc_components(labels, scores, users, sample_weight=weights)
    assert set(components.columns) == {"group", "auc", "weight"}
    assert components["weight"].sum() < weights.sum()  # one-class users are left out, not zero-weighted
    recombined = (components["weight"] * components["auc"]).sum() / components["weight"].sum()
    assert recombined == pytest.approx(group_auc(labels, scores, users, sample_weight=weights))
    one_user = components.set_index("group").loc[users[0]]
    rows = users == users[0]
    assert one_user["auc"] == pytest.approx(roc_auc(labels[rows], scores[rows], sample_weight=weights[rows]))


def test_pairwise_components_recombine_to_the_loss_per_request():
    clicked = [1, 1, 0, 0, 1, 0, 1, 1]
    watch = [100.0, 10.0, 0.0, 0.0, 50.0, 0.0, 30.0, 20.0]
    scores = [0.5, 0.1, 0.9, 0.3, 0.2, 0.2, 0.4, 0.6]
    requests = ["r1", "r1", "r1", "r1", "r2", "r2", "r3", "r3"]  # r3: no negative, no pair
    components = pairwise_loss_components(clicked, watch, scores, requests).set_index("group")
    assert list(components.index) == ["r1", "r2"]
    assert components.loc["r1"].tolist() == [100 * 1 + 10 * 2, 100 * 2 + 10 * 2]
    assert components.loc["r2"].tolist() == [25.0, 50.0]
    assert watch_time_weighted_pairwise_loss(clicked, watch, scores, requests) == pytest.approx(
        components["wrong_weight"].sum() / components["pair_weight"].sum())


def test_ece_keeps_equal_predictions_in_one_bin_whatever_the_row_order():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0] * 10)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(labels.size)
        # a constant predictor: one bin, ECE = |constant − base rate|, not the noise of arbitrary bins
        assert expected_calibration_error(labels[order], np.full(100, 0.25)) == pytest.approx(0.05)


def test_calibration_report_sets_each_head_beside_its_base_rate_and_a_constant_predictor():
    rng = np.random.default_rng(3)
    click = (rng.random(4000) < 0.3).astype(float)
    like = (rng.random(4000) < 0.01).astype(float)  # about 40 positives: too few to count
    heads = {"click": (click, np.full(4000, 0.3)), "like": (like, np.full(4000, 0.2))}
    report = calibration_report(heads, constant_rates={"click": 0.25}).set_index("head")
    assert report.loc["click", "base_rate"] == pytest.approx(click.mean())
    assert report.loc["click", "constant_from"] == "train"
    assert report.loc["click", "constant_ece"] == pytest.approx(abs(0.25 - click.mean()))
    assert report.loc["click", "ece"] == pytest.approx(abs(0.3 - click.mean()))
    assert bool(report.loc["click", "counts_toward_bar"])
    assert report.loc["like", "constant_from"] == "scored"
    assert report.loc["like", "constant_ece"] == pytest.approx(0.0)
    assert report.loc["like", "positives"] == int(like.sum()) < MIN_CALIBRATION_POSITIVES
    assert not bool(report.loc["like", "counts_toward_bar"])
    assert report.loc["like", "ece_over_base_rate"] == pytest.approx((0.2 - like.mean()) / like.mean())
    # a constant is one bin: its calibration in the large is its ECE
    assert report.loc["click", "calibration_in_the_large"] == pytest.approx(report.loc["click", "ece"])


def test_calibration_in_the_large_tells_a_shift_from_a_wrong_shape():
    """Right on average but too flat: a large ECE, nothing in the large. Shifted up by 0.05: the
    shift, whatever the shape."""
    rng = np.random.default_rng(5)
    predicted = rng.uniform(0.15, 0.45, 200_000)
    truth = 0.3 + 2 * (predicted - 0.3)  # twice as steep, in [0, 0.6], the same mean
    labels = (rng.random(predicted.size) < truth).astype(float)
    report = calibration_report({"flat": (labels, predicted), "shifted": (labels, truth + 0.05)}).set_index("head")
    assert report.loc["flat", "ece"] > 0.06 and report.loc["flat", "calibration_in_the_large"] < 0.005
    assert report.loc["flat", "mean_prediction"] == pytest.approx(predicted.mean())
    assert report.loc["shifted", "calibration_in_the_large"] == pytest.approx(0.05, abs=0.005)
