import numpy as np
import pytest

from models.evaluation.bootstrap import bootstrap_interval, mean_over_seeds, paired_difference


def test_interval_of_a_mean_covers_the_truth_at_about_the_stated_rate():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        values = rng.binomial(1, 0.3, size=300).astype(float)
        interval = bootstrap_interval(values, resamples=400, seed=trial)
        covered += interval.low <= 0.3 <= interval.high
    assert 0.90 <= covered / 200 <= 0.99


def test_interval_width_shrinks_with_more_users():
    rng = np.random.default_rng(1)
    small = bootstrap_interval(rng.normal(size=100), resamples=500)
    large = bootstrap_interval(rng.normal(size=10_000), resamples=500)
    assert (large.high - large.low) < 0.2 * (small.high - small.low)


def test_ratio_statistic_weights_units_by_their_denominator():
    # Two groups: AUC 1.0 with weight 3, AUC 0.0 with weight 1 -> weighted mean 0.75.
    interval = bootstrap_interval([3.0, 0.0], [3.0, 1.0], resamples=200)
    assert interval.estimate == pytest.approx(0.75)
    assert interval.units == 2


def test_paired_difference_detects_a_small_consistent_gain_an_unpaired_view_would_miss():
    rng = np.random.default_rng(2)
    baseline = rng.uniform(0, 1, size=500)  # users differ a lot ...
    ours = baseline + 0.01  # ... but ours is better on every one of them by a little
    separate_a, separate_b = bootstrap_interval(ours), bootstrap_interval(baseline)
    assert separate_a.low < separate_b.high  # the two intervals overlap
    difference = paired_difference(ours, baseline)
    assert difference.estimate == pytest.approx(0.01)
    assert difference.excludes_zero and difference.low > 0


def test_paired_difference_of_equal_methods_includes_zero():
    values = np.random.default_rng(3).normal(size=400)
    difference = paired_difference(values, values.copy())
    assert difference.estimate == 0.0 and not difference.excludes_zero


def test_same_seed_gives_the_same_interval():
    values = np.random.default_rng(4).normal(size=50)
    assert bootstrap_interval(values, seed=7) == bootstrap_interval(values, seed=7)


def test_mean_over_seeds_averages_each_user_across_seeds():
    assert mean_over_seeds([[1.0, 0.0], [0.0, 0.0], [0.5, 1.0]]).tolist() == pytest.approx([0.5, 1 / 3])


@pytest.mark.parametrize(
    ("numerators", "denominators", "message"),
    [
        ([], None, "empty"),
        ([1.0, np.nan], None, "finite"),
        ([1.0, 2.0], [1.0], "denominators has 1"),
        ([1.0], [0.0], "positive sum"),
    ],
)
def test_bad_inputs_are_named(numerators, denominators, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_interval(numerators, denominators)


def test_paired_units_must_align():
    with pytest.raises(ValueError, match="A has 3, B has 2"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])
