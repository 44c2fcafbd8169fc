"""Off-policy estimates of a ranking policy's value from the slates another policy logged.

An A/B arm is served by one policy, and its impression log says what that policy showed and with
what probability. These estimators answer "what would this arm have measured per request had it
been served by the target policy instead?" from the log alone, so the closed loop can set them
beside what the target's own arm measured online.

Why the item-position model. The propensity of a whole logged slate (the probability that the
logging policy shows exactly this ordered list) is a product over slots: for ten slots with any
exploration it is far below 1e-6, the target's list almost never equals the logged one, and an
estimator that divides by it is all variance (nearly every weight 0, the rest astronomic). What the
service can log, and does (serving/policy/exploration.py), is per slot: the probability of that
item at that position. The item-position model (also called the independent or position-based
model) makes that enough, under one assumption:

    a row's reward depends only on the request, the item and its position,
    not on the other items in the slate.

A policy's value, the expected total reward per request, is then a sum over positions of
per-(item, position) expectations, and each is estimated with its own weight
w = target_propensity / logged_propensity. Where the assumption fails (a strong item above takes
clicks from the one below), the estimates carry that interaction as bias.

For request i with logged rows k (weight w_ik, reward r_ik, reward-model prediction r̂_ik) and the
target's own rows j (prediction r̂_ij, weighted by the target's probability π_ij of the row when it
is given, else 1: a deterministic target's slate), over the N requests:

    ips            V = 1/N Σ_i Σ_k w_ik r_ik
    snips          V = Σ_i Σ_k w_ik r_ik / Σ_i mean_k(w_ik)
    direct_method  V = 1/N Σ_i Σ_j π_ij r̂_ij
    doubly_robust  V = 1/N Σ_i [Σ_j π_ij r̂_ij + Σ_k w_ik (r_ik − r̂_ik)]

What snips normalises: at a logged position the weight has expectation Σ_items target(item, k),
which is 1 when the target fills that position with items the logger could show there. So a
request's mean weight has expectation 1 and Σ_i mean_k(w_ik) estimates N, the count ips divides
by: snips estimates the same per-request value, with the weights' overall luck (rare heavy weights
drawn more or less often than expected) cancelling between numerator and denominator, at the cost
of a small bias. When target == logging every weight is 1 and both are exactly the on-policy mean
reward per request.

Support. An item the target shows at a position where the logger never shows it has no rows to
weight: ips and snips miss its value entirely; the reward model still credits it in
direct_method and doubly_robust. The logged propensity should be the item's probability at the
position for the request; serving logs it given the items above the slot, so a target item that
the logged slots above ruled out (already shown, creator rules) is never credited there.

Clipping. `max_weight` caps each weight. Rare large weights are most of ips' variance; capping
them narrows the interval but biases the estimate (towards 0 for non-negative rewards): it trades
bias for variance. How many weights were clipped is logged, and `clipped_share` gives the share
for a report to print beside the estimate.

Requests and units. N counts every request in either frame: a request logged but absent from
`target_predictions` contributes 0 to the direct-method term, one in `target_predictions` but not
logged contributes 0 to the correction term. Intervals resample `unit`s with the bootstrap of
models/evaluation/bootstrap.py: requests by default, or users (`unit="user_id"`) when a user's
requests are correlated, as they are in the closed loop. Each unit contributes (the sum of its
requests' terms, its request count) to the Σ/Σ statistic, so the estimate stays per request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.evaluation.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, Interval, bootstrap_interval

logger = logging.getLogger(__name__)

LOGGED_COLUMNS = ("request_id", "position", "reward", "logged_propensity", "target_propensity")
PREDICTION_COLUMNS = ("request_id", "position", "reward_prediction")
_PROBABILITY_TOLERANCE = 1e-9


def ips(
    logged: pd.DataFrame,
    max_weight: float | None = None,
    *,
    unit: str = "request_id",
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Inverse propensity scoring: the mean over requests of Σ reward × weight."""
    logged = _checked_logged(logged, unit)
    terms = _numeric(logged, "reward", "logged") * _importance_weights(logged, max_weight)
    per_request = _per_request({"numerator": _sum_by_request(logged, terms)}, _request_units([logged], unit))
    per_request["denominator"] = 1.0
    return _interval(per_request, resamples, confidence, seed)


def snips(
    logged: pd.DataFrame,
    max_weight: float | None = None,
    *,
    unit: str = "request_id",
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Self-normalised ips: Σ reward × weight over the log / Σ over requests of the request's mean weight."""
    logged = _checked_logged(logged, unit)
    weights = _importance_weights(logged, max_weight)
    if not np.any(weights > 0):
        raise ValueError("every importance weight is 0: the target never shows what was logged, so snips is undefined")
    terms = _numeric(logged, "reward", "logged") * weights
    mean_weights = pd.Series(weights, index=logged.index).groupby(logged["request_id"], sort=True).mean()
    per_request = _per_request(
        {"numerator": _sum_by_request(logged, terms), "denominator": mean_weights}, _request_units([logged], unit)
    )
    return _interval(per_request, resamples, confidence, seed)


def direct_method(
    target_predictions: pd.DataFrame,
    *,
    unit: str = "request_id",
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The reward model's total for the target's own slate, averaged over requests."""
    target_predictions = _checked_predictions(target_predictions, unit)
    per_request = _per_request(
        {"numerator": _sum_by_request(target_predictions, _predicted_rewards(target_predictions))},
        _request_units([target_predictions], unit),
    )
    per_request["denominator"] = 1.0
    return _interval(per_request, resamples, confidence, seed)


def doubly_robust(
    logged: pd.DataFrame,
    target_predictions: pd.DataFrame,
    max_weight: float | None = None,
    *,
    unit: str = "request_id",
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """The direct method corrected by the weighted residuals of the logged rows.

    `logged` needs `reward_prediction` too: the same reward model's prediction for each logged row.
    Unbiased when either the propensities or the reward model are right; with a good reward model
    the residuals are small and so is the variance the weights bring.
    """
    logged = _checked_logged(logged, unit, extra=("reward_prediction",))
    target_predictions = _checked_predictions(target_predictions, unit)
    residuals = _numeric(logged, "reward", "logged") - _numeric(logged, "reward_prediction", "logged")
    corrections = _sum_by_request(logged, residuals * _importance_weights(logged, max_weight))
    direct_terms = _sum_by_request(target_predictions, _predicted_rewards(target_predictions))
    units = _request_units([logged, target_predictions], unit)
    per_request = _per_request({"direct": direct_terms, "correction": corrections}, units)
    per_request["numerator"] = per_request["direct"] + per_request["correction"]
    per_request["denominator"] = 1.0
    return _interval(per_request, resamples, confidence, seed)


def clipped_share(logged: pd.DataFrame, max_weight: float) -> float:
    """The share of logged rows whose weight `max_weight` caps (what a report prints beside a clipped estimate)."""
    logged = _checked_logged(logged, "request_id")
    _check_max_weight(max_weight)
    return float(np.mean(_importance_weights(logged, None) > max_weight))


def _importance_weights(logged: pd.DataFrame, max_weight: float | None) -> np.ndarray:
    """target_propensity / logged_propensity per row, capped at `max_weight` when given."""
    weights = _numeric(logged, "target_propensity", "logged") / _numeric(logged, "logged_propensity", "logged")
    if max_weight is None:
        return weights
    _check_max_weight(max_weight)
    clipped = int(np.sum(weights > max_weight))
    if clipped:
        logger.info(
            "clipped %d of %d importance weights at max_weight=%s (%.2f%% of rows; the largest was %.4g)",
            clipped, len(weights), max_weight, 100.0 * clipped / len(weights), float(weights.max()),
        )
    return np.minimum(weights, max_weight)


def _check_max_weight(max_weight: float) -> None:
    if not (np.isfinite(max_weight) and max_weight > 0):
        raise ValueError(f"max_weight must be a positive finite number, got {max_weight!r}")


def _predicted_rewards(target_predictions: pd.DataFrame) -> np.ndarray:
    """Each target row's prediction, weighted by the target's probability of the row when one is given."""
    predictions = _numeric(target_predictions, "reward_prediction", "target_predictions")
    if "target_propensity" not in target_predictions.columns:
        return predictions
    return predictions * _numeric(target_predictions, "target_propensity", "target_predictions")


def _sum_by_request(frame: pd.DataFrame, values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=frame.index).groupby(frame["request_id"], sort=True).sum()


def _request_units(frames: Sequence[pd.DataFrame], unit: str) -> pd.Series:
    """request_id → its unit, over every request of `frames`; a request must belong to one unit."""
    if unit == "request_id":
        requests = pd.unique(pd.concat([frame["request_id"] for frame in frames], ignore_index=True))
        return pd.Series(requests, index=requests)
    pairs = pd.concat([frame[["request_id", unit]] for frame in frames], ignore_index=True).drop_duplicates()
    repeated = pairs["request_id"][pairs["request_id"].duplicated()]
    if len(repeated):
        raise ValueError(
            f"each request must belong to one {unit}; request(s) {repeated.unique()[:5].tolist()} have several"
        )
    return pd.Series(pairs[unit].to_numpy(), index=pairs["request_id"].to_numpy())


def _per_request(terms: dict[str, pd.Series], units: pd.Series) -> pd.DataFrame:
    """One row per request of `units` (its unit, then each term; 0 where a frame lacks the request)."""
    per_request = pd.DataFrame({"unit": units})
    for name, values in terms.items():
        per_request[name] = values.reindex(per_request.index, fill_value=0.0).to_numpy(np.float64)
    return per_request


def _interval(per_request: pd.DataFrame, resamples: int, confidence: float, seed: int) -> Interval:
    per_unit = per_request.groupby("unit", sort=True)[["numerator", "denominator"]].sum()
    return bootstrap_interval(
        per_unit["numerator"].to_numpy(), per_unit["denominator"].to_numpy(), resamples, confidence, seed
    )


def _checked_logged(logged: pd.DataFrame, unit: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    _check_frame(logged, "logged", (*LOGGED_COLUMNS, *extra), unit)
    for column in ("reward", *extra):
        _numeric(logged, column, "logged")
    _check_probabilities(logged, "logged_propensity", "logged", low_is_open=True)
    _check_probabilities(logged, "target_propensity", "logged", low_is_open=False)
    _check_one_row_per_slot(logged, "logged", "each logged row is one shown item")
    return logged


def _checked_predictions(target_predictions: pd.DataFrame, unit: str) -> pd.DataFrame:
    _check_frame(target_predictions, "target_predictions", PREDICTION_COLUMNS, unit)
    _numeric(target_predictions, "reward_prediction", "target_predictions")
    if "target_propensity" not in target_predictions.columns:
        _check_one_row_per_slot(
            target_predictions, "target_predictions",
            "a deterministic target shows one item per position; add target_propensity to list a stochastic target's",
        )
        return target_predictions
    _check_probabilities(target_predictions, "target_propensity", "target_predictions", low_is_open=False)
    slot_totals = target_predictions.groupby(["request_id", "position"])["target_propensity"].sum()
    overfull = slot_totals[slot_totals > 1.0 + _PROBABILITY_TOLERANCE]
    if len(overfull):
        raise ValueError(
            f"target_predictions' target_propensity sums to more than 1 at {len(overfull)} (request_id, position) "
            f"slot(s), e.g. {overfull.index[0]} sums to {overfull.iloc[0]:.6g}"
        )
    return target_predictions


def _check_frame(frame: pd.DataFrame, name: str, required: Sequence[str], unit: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    needed = list(dict.fromkeys([*required, unit]))
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it needs {needed}")
    if frame.empty:
        raise ValueError(f"{name} has no rows")
    for column in dict.fromkeys(["request_id", unit]):
        if frame[column].isna().any():
            raise ValueError(f"{name}.{column} has {int(frame[column].isna().sum())} missing value(s)")


def _check_probabilities(frame: pd.DataFrame, column: str, name: str, low_is_open: bool) -> None:
    values = _numeric(frame, column, name)
    outside = (values <= 0.0 if low_is_open else values < 0.0) | (values > 1.0)
    if np.any(outside):
        expected = "(0, 1] (every logged row was shown, so it had a positive probability)" if low_is_open else "[0, 1]"
        raise ValueError(
            f"{name}.{column} must lie in {expected}; {int(outside.sum())} row(s) do not, e.g. {values[outside][0]!r}"
        )


def _check_one_row_per_slot(frame: pd.DataFrame, name: str, why: str) -> None:
    repeated = frame[frame.duplicated(["request_id", "position"], keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        raise ValueError(
            f"{name} has {len(repeated)} rows sharing a (request_id, position), e.g. "
            f"({first['request_id']!r}, {first['position']!r}); {why}"
        )


def _numeric(frame: pd.DataFrame, column: str, name: str) -> np.ndarray:
    """A column as finite float64 values, or a ValueError naming the column."""
    try:
        values = pd.to_numeric(frame[column]).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"{name}.{column} must be numeric, got dtype {frame[column].dtype}") from None
    non_finite = ~np.isfinite(values)
    if np.any(non_finite):
        raise ValueError(f"{name}.{column} must be finite; {int(non_finite.sum())} row(s) are NaN or infinite")
    return values
