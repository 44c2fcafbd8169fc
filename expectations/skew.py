"""Training-serving skew: do the features the model sees at serving time look like training's?

For each feature the population stability index (PSI) compares the share of rows per bin:
`PSI = Σ (serving_share − training_share) · ln(serving_share / training_share)`. Rules of thumb:
< 0.1 stable, 0.1–0.2 drifting, > 0.2 shifted. Numeric features are binned at training's
quantiles (so each bin holds about the same share of training rows, and values beyond training's
range land in the open outer bins); categorical features use their categories, with unseen
categories as their own bins. Shares are smoothed with a pseudo-count of `SMOOTHING` per bin so an
empty bin gives a large, finite PSI instead of infinity. Nulls are left out of PSI and compared on
their own: the null-rate gap is |serving null rate − training null rate|.

This is computed in numpy rather than with GX's KL-divergence expectation: PSI is the industry's
yardstick with known thresholds, it is symmetric, and the bins and their shares are what people
need to see when a check fails. It reports through the same `ValidationOutcome` as the suites.

Given `max_ks`, numeric features are also judged by the two-sample Kolmogorov-Smirnov statistic
(scipy's `ks_2samp`): the largest gap between the two empirical CDFs, in [0, 1]. It needs no bins,
so it sees a shift that stays inside one of PSI's bins (values rescaled within the lowest decile).
The statistic is thresholded, not its p-value: with thousands of rows every small, harmless shift
is "significant".
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from expectations.validation import MAX_EXAMPLES, ValidationOutcome

logger = logging.getLogger(__name__)

SMOOTHING = 0.5
DEFAULT_BINS = 10


def population_stability_index(training_counts: np.ndarray, serving_counts: np.ndarray) -> float:
    """PSI between two histograms over the same bins (counts, smoothed into shares)."""
    training_share = _smoothed_shares(np.asarray(training_counts, dtype=float))
    serving_share = _smoothed_shares(np.asarray(serving_counts, dtype=float))
    return float(np.sum((serving_share - training_share) * np.log(serving_share / training_share)))


def ks_statistic(training: pd.Series | np.ndarray, serving: pd.Series | np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic of two non-empty samples (nulls dropped first)."""
    return float(ks_2samp(np.asarray(training, dtype=float), np.asarray(serving, dtype=float)).statistic)


def compare_feature_distributions(
    training: pd.DataFrame,
    serving: pd.DataFrame,
    numeric_features: Sequence[str] = (),
    categorical_features: Sequence[str] = (),
    max_psi: float = 0.2,
    max_null_rate_gap: float = 0.05,
    bins: int = DEFAULT_BINS,
    max_ks: float | None = None,
    require_values: bool = True,
) -> ValidationOutcome:
    """Compare each feature's serving distribution with training's; fail features that shifted.

    A feature fails when its PSI exceeds `max_psi`, its null-rate gap exceeds `max_null_rate_gap`,
    (given `max_ks`, numeric features) its KS statistic exceeds `max_ks`, or either frame lacks it
    or (`require_values`) has no non-null values of it; without `require_values` an all-null side
    is judged by its null-rate gap alone. `statistics` holds every feature's PSI and null-rate gap
    (and KS); each PSI failure's `unexpected_examples` lists the bins that moved most.
    """
    thresholds = _Thresholds(max_psi, max_null_rate_gap, bins, max_ks, require_values)
    psi_by_feature: dict[str, float | None] = {}
    ks_by_feature: dict[str, float] = {}
    null_gap_by_feature: dict[str, float | None] = {}
    failures: list[dict[str, Any]] = []
    features = [(name, "numeric") for name in numeric_features]
    features += [(name, "categorical") for name in categorical_features]
    for feature, kind in features:
        judged = _judge_feature(feature, kind, training, serving, thresholds)
        psi_by_feature[feature], null_gap_by_feature[feature] = judged.psi, judged.null_rate_gap
        if judged.ks is not None:
            ks_by_feature[feature] = judged.ks
        failures += judged.failures

    statistics = {
        "training_rows": len(training),
        "serving_rows": len(serving),
        "features_checked": len(features),
        "features_failing": len({failure["column"] for failure in failures}),
        "psi": psi_by_feature,
        "null_rate_gap": null_gap_by_feature,
        **({"ks": ks_by_feature} if max_ks is not None else {}),
    }
    if failures:
        logger.warning("training-serving skew in %s", sorted({f["column"] for f in failures}))
    return ValidationOutcome("training_serving_skew", not failures, statistics, failures)


@dataclass(frozen=True)
class _Thresholds:
    max_psi: float
    max_null_rate_gap: float
    bins: int
    max_ks: float | None
    require_values: bool


@dataclass
class _FeatureJudgement:
    psi: float | None = None
    null_rate_gap: float | None = None
    ks: float | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)


def _judge_feature(feature: str, kind: str, training: pd.DataFrame, serving: pd.DataFrame,
                   thresholds: _Thresholds) -> _FeatureJudgement:
    """One feature's null-rate gap, KS (numeric, when asked) and PSI, and what they fail."""
    judged = _FeatureJudgement()
    missing = [label for label, frame in (("training", training), ("serving", serving))
               if feature not in frame.columns]
    if missing:
        judged.failures.append(_failure("feature_present", feature, {}, f"missing from {missing}", []))
        return judged
    training_values, serving_values = training[feature], serving[feature]
    null_gap = abs(_null_rate(serving_values) - _null_rate(training_values))
    judged.null_rate_gap = round(null_gap, 4)
    if null_gap > thresholds.max_null_rate_gap:
        observed = (
            f"null rate {_null_rate(training_values):.3f} in training, "
            f"{_null_rate(serving_values):.3f} in serving"
        )
        judged.failures.append(
            _failure("null_rate_gap", feature, {"max_value": thresholds.max_null_rate_gap}, observed, [])
        )
    training_values, serving_values = training_values.dropna(), serving_values.dropna()
    if training_values.empty or serving_values.empty:
        empty = "training" if training_values.empty else "serving"
        if thresholds.require_values:
            judged.failures.append(
                _failure("population_stability_index", feature, {"max_value": thresholds.max_psi},
                         f"no non-null values in {empty}", [])
            )
        return judged
    if kind == "numeric":
        labels, training_counts, serving_counts = _numeric_histograms(training_values, serving_values, thresholds.bins)
    else:
        labels, training_counts, serving_counts = _categorical_histograms(training_values, serving_values)
    if kind == "numeric" and thresholds.max_ks is not None:
        ks = ks_statistic(training_values, serving_values)
        judged.ks = round(ks, 4)
        if ks > thresholds.max_ks:
            judged.failures.append(_failure("kolmogorov_smirnov", feature, {"max_value": thresholds.max_ks},
                                            round(ks, 4), _quantile_gaps(training_values, serving_values)))
    psi = population_stability_index(training_counts, serving_counts)
    judged.psi = round(psi, 4)
    if psi > thresholds.max_psi:
        judged.failures.append(_failure("population_stability_index", feature, {"max_value": thresholds.max_psi},
                                        round(psi, 4), _moved_bins(labels, training_counts, serving_counts)))
    return judged


def _smoothed_shares(counts: np.ndarray) -> np.ndarray:
    return (counts + SMOOTHING) / (counts.sum() + SMOOTHING * len(counts))


def _null_rate(values: pd.Series) -> float:
    return float(values.isna().mean()) if len(values) else 0.0


def _numeric_histograms(
    training: pd.Series, serving: pd.Series, bins: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Counts per bin, bins bounded by training's inner quantiles (ties collapse bins)."""
    training_array = training.to_numpy(dtype=float)
    serving_array = serving.to_numpy(dtype=float)
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.unique(np.quantile(training_array, quantiles))
    # side="right": a value equal to an edge belongs to the bin that starts at that edge.
    training_counts = np.bincount(np.searchsorted(edges, training_array, side="right"),
                                  minlength=len(edges) + 1)
    serving_counts = np.bincount(np.searchsorted(edges, serving_array, side="right"),
                                 minlength=len(edges) + 1)
    bounds = [-np.inf, *edges, np.inf]
    labels = [f"[{low:.4g}, {high:.4g})" for low, high in itertools.pairwise(bounds)]
    return labels, training_counts, serving_counts


def _categorical_histograms(
    training: pd.Series, serving: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    training_counts = training.astype(str).value_counts()
    serving_counts = serving.astype(str).value_counts()
    categories = sorted(set(training_counts.index) | set(serving_counts.index))
    return (
        categories,
        training_counts.reindex(categories, fill_value=0).to_numpy(),
        serving_counts.reindex(categories, fill_value=0).to_numpy(),
    )


def _moved_bins(
    labels: list[str], training_counts: np.ndarray, serving_counts: np.ndarray
) -> list[str]:
    """The bins whose share moved most, as 'bin: training% → serving%' (largest first)."""
    training_share = training_counts / max(training_counts.sum(), 1)
    serving_share = serving_counts / max(serving_counts.sum(), 1)
    order = np.argsort(-np.abs(serving_share - training_share))[:MAX_EXAMPLES]
    return [
        f"{labels[i]}: {100 * training_share[i]:.1f}% → {100 * serving_share[i]:.1f}%"
        for i in order
        if training_share[i] != serving_share[i]
    ]


def _quantile_gaps(training: pd.Series, serving: pd.Series) -> list[str]:
    """Where the two samples part, as 'pNN: training → serving' at the quartiles and median."""
    levels = (0.25, 0.5, 0.75)
    training_at = np.quantile(training.to_numpy(dtype=float), levels)
    serving_at = np.quantile(serving.to_numpy(dtype=float), levels)
    return [f"p{round(100 * level)}: {low:.4g} → {high:.4g}"
            for level, low, high in zip(levels, training_at, serving_at, strict=True)]


def _failure(
    expectation: str, feature: str, expected: dict[str, Any], observed: Any, examples: list[str]
) -> dict[str, Any]:
    return {
        "expectation": expectation,
        "column": feature,
        "expected": expected,
        "observed": observed,
        "unexpected_examples": examples,
    }
