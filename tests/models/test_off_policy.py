"""The off-policy estimators on a slate problem whose target value is known in closed form.

Requests come from three contexts. The logging policy shows a fixed per-context list with
probability 1 − EXPLORE and a uniformly random ordered list otherwise, so the probability of an item
at a position is known exactly: (1 − EXPLORE)·[item is the list's item there] + EXPLORE / ITEMS.
The target deterministically shows each context's best items in order. A click at position k on
item a in context c is Bernoulli(ATTRACTION[c, a] · EXAMINATION[k]), which is the item-position
model, so the target's value is Σ_c share_c Σ_k ATTRACTION[c, target_c[k]] · EXAMINATION[k].
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from models.evaluation.off_policy import clipped_share, direct_method, doubly_robust, ips, snips

CONTEXT_SHARES = np.array([0.5, 0.3, 0.2])
ITEMS = 8
EXAMINATION = np.array([1.0, 0.7, 0.5])  # position bias: the chance a user looks at each slot
EXPLORE = 0.4
REQUESTS = 20_000
RESAMPLES = 500
ESTIMATE_ONLY = 20  # resamples where a test checks only the point estimate, which does not depend on them
Z_95 = 1.96


@dataclass(frozen=True)
class SlateProblem:
    attraction: np.ndarray  # (contexts, items): click probability of an examined item
    logging_lists: np.ndarray  # (contexts, positions): what the logging policy shows when it exploits
    target_lists: np.ndarray  # (contexts, positions): what the target shows

    def mean_reward(self, context, item, position):
        return self.attraction[context, item] * EXAMINATION[position]

    def value_of_context(self, context: int) -> float:
        positions = np.arange(len(EXAMINATION))
        return float(self.mean_reward(context, self.target_lists[context], positions).sum())

    @property
    def target_value(self) -> float:
        return float(sum(share * self.value_of_context(c) for c, share in enumerate(CONTEXT_SHARES)))

    def logged_propensity(self, context, item, position):
        return (1 - EXPLORE) * (self.logging_lists[context, position] == item) + EXPLORE / ITEMS

    def target_propensity(self, context, item, position):
        return (self.target_lists[context, position] == item).astype(np.float64)


def _problem() -> SlateProblem:
    rng = np.random.default_rng(0)
    attraction = rng.uniform(0.5, 0.95, size=(len(CONTEXT_SHARES), ITEMS))
    slots = len(EXAMINATION)
    logging_lists = np.stack([rng.permutation(ITEMS)[:slots] for _ in CONTEXT_SHARES])
    target_lists = np.argsort(-attraction, axis=1)[:, :slots]
    return SlateProblem(attraction, logging_lists, target_lists)


def _log_requests(problem: SlateProblem, requests: int, seed: int) -> pd.DataFrame:
    """One row per shown item, with the true mean reward as a perfect model's prediction."""
    rng = np.random.default_rng(seed)
    slots = len(EXAMINATION)
    contexts = rng.choice(len(CONTEXT_SHARES), size=requests, p=CONTEXT_SHARES)
    random_lists = np.argsort(rng.random((requests, ITEMS)), axis=1)[:, :slots]
    explores = rng.random(requests) < EXPLORE
    shown = np.where(explores[:, None], random_lists, problem.logging_lists[contexts])  # (requests, slots)
    context = np.repeat(contexts, slots)
    item = shown.ravel()
    position = np.tile(np.arange(slots), requests)
    mean_reward = problem.mean_reward(context, item, position)
    return pd.DataFrame({
        "request_id": np.repeat(np.arange(requests), slots),
        "user_id": np.repeat(np.arange(requests) // 4, slots),  # four requests per user
        "context": context,
        "position": position,
        "item": item,
        "reward": (rng.random(len(item)) < mean_reward).astype(np.float64),
        "logged_propensity": problem.logged_propensity(context, item, position),
        "target_propensity": problem.target_propensity(context, item, position),
        "reward_prediction": mean_reward,
    })


def _target_predictions(problem: SlateProblem, logged: pd.DataFrame) -> pd.DataFrame:
    """The target's own slate for every logged request, scored by the perfect model."""
    requests = logged.drop_duplicates("request_id")[["request_id", "user_id", "context"]]
    slots = len(EXAMINATION)
    context = np.repeat(requests["context"].to_numpy(), slots)
    position = np.tile(np.arange(slots), len(requests))
    item = problem.target_lists[context, position]
    return pd.DataFrame({
        "request_id": np.repeat(requests["request_id"].to_numpy(), slots),
        "user_id": np.repeat(requests["user_id"].to_numpy(), slots),
        "position": position,
        "item": item,
        "reward_prediction": problem.mean_reward(context, item, position),
    })


@pytest.fixture(scope="module")
def problem() -> SlateProblem:
    return _problem()


@pytest.fixture(scope="module")
def logged(problem) -> pd.DataFrame:
    return _log_requests(problem, REQUESTS, seed=1)


@pytest.fixture(scope="module")
def target_predictions(problem, logged) -> pd.DataFrame:
    return _target_predictions(problem, logged)


@pytest.fixture(scope="module")
def ips_interval(logged):
    return ips(logged, resamples=RESAMPLES)


@pytest.fixture(scope="module")
def doubly_robust_interval(logged, target_predictions):
    return doubly_robust(logged, target_predictions, resamples=RESAMPLES)


def _standard_error(interval) -> float:
    return (interval.high - interval.low) / (2 * Z_95)


def _width(interval) -> float:
    return interval.high - interval.low


def test_the_problem_makes_the_target_differ_from_what_was_logged(problem, logged):
    on_policy_mean = logged["reward"].sum() / REQUESTS
    assert problem.target_value - on_policy_mean > 0.2  # so an estimator that ignored the weights would fail


@pytest.mark.parametrize("estimator", ["ips", "snips", "doubly_robust"])
def test_estimates_land_near_the_analytic_target_value_and_their_intervals_cover_it(estimator, problem, request):
    if estimator == "snips":
        interval = snips(request.getfixturevalue("logged"), resamples=RESAMPLES)
    else:
        interval = request.getfixturevalue(f"{estimator}_interval")
    assert interval.units == REQUESTS
    assert abs(interval.estimate - problem.target_value) <= 3 * _standard_error(interval)
    assert interval.low <= problem.target_value <= interval.high
    assert _width(interval) < 0.2 * problem.target_value  # informative, not merely wide


def test_doubly_robust_with_a_perfect_reward_model_is_much_narrower_than_ips(ips_interval, doubly_robust_interval):
    # Bernoulli noise stays in the residuals, so the gain is bounded: under 60% of the width is a third of the variance.
    assert _width(doubly_robust_interval) < 0.6 * _width(ips_interval)


def test_doubly_robust_recovers_the_value_even_with_a_wrong_reward_model(problem, logged, target_predictions):
    constant_guess = 0.3
    wrong_logged = logged.assign(reward_prediction=constant_guess)
    wrong_target = target_predictions.assign(reward_prediction=constant_guess)
    assert abs(direct_method(wrong_target, resamples=ESTIMATE_ONLY).estimate - problem.target_value) > 1.0
    interval = doubly_robust(wrong_logged, wrong_target, resamples=RESAMPLES)
    assert abs(interval.estimate - problem.target_value) <= 3 * _standard_error(interval)


def test_direct_method_with_a_perfect_model_is_the_truth_of_the_contexts_drawn(problem, logged, target_predictions):
    context_counts = logged.drop_duplicates("request_id")["context"].value_counts()
    truth_of_sample = sum(count * problem.value_of_context(c) for c, count in context_counts.items()) / REQUESTS
    interval = direct_method(target_predictions, resamples=RESAMPLES)
    assert interval.estimate == pytest.approx(truth_of_sample, rel=1e-12)
    assert abs(interval.estimate - problem.target_value) <= 3 * _standard_error(interval)


def test_when_the_target_is_the_logging_policy_ips_and_snips_are_the_on_policy_mean(logged):
    on_policy = logged.assign(target_propensity=logged["logged_propensity"])
    on_policy_mean = logged["reward"].sum() / REQUESTS
    assert ips(on_policy, resamples=ESTIMATE_ONLY).estimate == pytest.approx(on_policy_mean, rel=1e-12)
    assert snips(on_policy, resamples=ESTIMATE_ONLY).estimate == pytest.approx(on_policy_mean, rel=1e-12)


def test_snips_ignores_the_weights_overall_scale_which_ips_does_not(logged):
    halved = logged.assign(target_propensity=logged["target_propensity"] / 2)
    for estimate, expected_ratio in [(ips, 0.5), (snips, 1.0)]:
        ratio = estimate(halved, resamples=ESTIMATE_ONLY).estimate / estimate(logged, resamples=ESTIMATE_ONLY).estimate
        assert ratio == pytest.approx(expected_ratio)


def test_clipping_narrows_the_interval_biases_the_estimate_down_and_is_reported(problem, logged, ips_interval, caplog):
    weights = logged["target_propensity"] / logged["logged_propensity"]
    max_weight = 10.0
    assert weights.max() > max_weight  # the exploration rows' weights are ITEMS / EXPLORE = 20
    unclipped = ips_interval
    with caplog.at_level(logging.INFO, logger="models.evaluation.off_policy"):
        clipped = ips(logged, max_weight=max_weight, resamples=RESAMPLES)
    assert _width(clipped) < 0.7 * _width(unclipped)
    assert clipped.estimate < unclipped.estimate
    assert clipped.high < problem.target_value  # the bias clipping bought: the interval misses the truth
    assert clipped_share(logged, max_weight) == pytest.approx(float(np.mean(weights > max_weight)))
    assert clipped_share(logged, max_weight) > 0
    assert f"clipped {int((weights > max_weight).sum())} of {len(logged)} importance weights" in caplog.text


def test_a_cap_above_every_weight_changes_nothing(logged):
    assert ips(logged, max_weight=1e6, resamples=ESTIMATE_ONLY) == ips(logged, resamples=ESTIMATE_ONLY)


def test_user_level_units_keep_the_per_request_estimate_and_resample_users(logged, target_predictions):
    by_request = doubly_robust(logged, target_predictions, resamples=ESTIMATE_ONLY)
    by_user = doubly_robust(logged, target_predictions, unit="user_id", resamples=ESTIMATE_ONLY)
    assert by_user.estimate == pytest.approx(by_request.estimate, rel=1e-12)
    assert by_user.units == REQUESTS // 4
    assert ips(logged, unit="user_id", resamples=ESTIMATE_ONLY).estimate == pytest.approx(
        ips(logged, resamples=ESTIMATE_ONLY).estimate, rel=1e-12
    )


def _tiny_logged() -> pd.DataFrame:
    return pd.DataFrame({
        "request_id": ["r1", "r1", "r2"],
        "user_id": [1, 1, 2],
        "position": [0, 1, 0],
        "reward": [1.0, 0.0, 1.0],
        "logged_propensity": [0.5, 0.25, 0.8],
        "target_propensity": [1.0, 1.0, 0.0],
        "reward_prediction": [0.5, 0.5, 0.5],
    })


def test_estimates_on_a_hand_checked_log():
    logged = _tiny_logged()
    # weights 2, 4, 0: request r1 earns 1·2 + 0·4 = 2, r2 earns 0; mean weights 3 and 0.
    assert ips(logged, resamples=50).estimate == pytest.approx(1.0)
    assert snips(logged, resamples=50).estimate == pytest.approx(2.0 / 3.0)


def test_requests_missing_from_one_frame_count_with_zero_contribution():
    logged = _tiny_logged()
    target_predictions = pd.DataFrame({
        "request_id": ["r2", "r3"],
        "user_id": [2, 3],
        "position": [0, 0],
        "reward_prediction": [0.4, 0.9],
    })
    # r1: no target rows, correction 2·(1 − 0.5) + 4·(0 − 0.5) = −1; r2: 0.4 + 0; r3: not logged, 0.9.
    interval = doubly_robust(logged, target_predictions, resamples=50)
    assert interval.units == 3
    assert interval.estimate == pytest.approx((-1.0 + 0.4 + 0.9) / 3)
    assert direct_method(target_predictions, resamples=50).estimate == pytest.approx(0.65)


def test_a_stochastic_target_is_scored_by_its_probability_of_each_row():
    target_predictions = pd.DataFrame({
        "request_id": ["r1", "r1", "r1"],
        "position": [0, 0, 1],
        "reward_prediction": [1.0, 0.2, 0.5],
        "target_propensity": [0.75, 0.25, 1.0],
    })
    assert direct_method(target_predictions, resamples=50).estimate == pytest.approx(0.75 + 0.05 + 0.5)
    overfull = target_predictions.assign(target_propensity=[0.75, 0.5, 1.0])
    with pytest.raises(ValueError, match="sums to more than 1"):
        direct_method(overfull)


def test_a_request_in_two_users_raises():
    logged = _tiny_logged().assign(user_id=[1, 2, 2])
    with pytest.raises(ValueError, match="each request must belong to one user_id"):
        ips(logged, unit="user_id")


def test_snips_without_any_positive_weight_raises():
    with pytest.raises(ValueError, match="every importance weight is 0"):
        snips(_tiny_logged().assign(target_propensity=0.0))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop(columns=["logged_propensity"]), r"lacks the column\(s\) \['logged_propensity'\]"),
        (lambda frame: frame.drop(columns=["reward", "position"]), r"\['position', 'reward'\]"),
        (lambda frame: frame.assign(logged_propensity=[0.5, 0.0, 0.8]), r"logged_propensity must lie in \(0, 1\]"),
        (lambda frame: frame.assign(logged_propensity=[0.5, 1.5, 0.8]), r"logged_propensity must lie in \(0, 1\]"),
        (lambda frame: frame.assign(logged_propensity=[0.5, np.inf, 0.8]), r"logged\.logged_propensity must be finite"),
        (lambda frame: frame.assign(target_propensity=[1.0, -0.1, 0.0]), r"target_propensity must lie in \[0, 1\]"),
        (lambda frame: frame.assign(target_propensity=[1.0, np.nan, 0.0]), r"logged\.target_propensity must be finite"),
        (lambda frame: frame.assign(reward=[1.0, np.nan, 1.0]), r"logged\.reward must be finite"),
        (lambda frame: frame.assign(reward=["yes", "no", "yes"]), r"logged\.reward must be numeric"),
        (lambda frame: frame.assign(position=[0, 0, 0]), r"2 rows sharing a \(request_id, position\)"),
        (lambda frame: frame.assign(request_id=["r1", None, "r2"]), r"logged\.request_id has 1 missing value"),
        (lambda frame: frame.iloc[:0], "logged has no rows"),
    ],
)
def test_bad_logs_raise_naming_the_column(change, message):
    with pytest.raises(ValueError, match=message):
        ips(change(_tiny_logged()))


def test_bad_target_predictions_and_settings_raise():
    logged = _tiny_logged()
    with pytest.raises(ValueError, match=r"target_predictions lacks the column\(s\) \['reward_prediction'\]"):
        direct_method(pd.DataFrame({"request_id": ["r1"], "position": [0]}))
    with pytest.raises(ValueError, match=r"logged\.reward_prediction must be finite"):
        doubly_robust(logged.assign(reward_prediction=np.nan), logged)
    with pytest.raises(ValueError, match=r"logged lacks the column\(s\) \['user_id'\]"):
        ips(logged.drop(columns=["user_id"]), unit="user_id")
    with pytest.raises(ValueError, match="a deterministic target shows one item per position"):
        direct_method(pd.DataFrame({"request_id": ["r1", "r1"], "position": [0, 0], "reward_prediction": [1.0, 0.5]}))
    for bad_cap in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="max_weight must be a positive finite number"):
            ips(logged, max_weight=bad_cap)
