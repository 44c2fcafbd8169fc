"""User-level bootstrap intervals, for one method and for the paired difference of two.

Every offline figure vidrec reports is an average over units (test users for retrieval, users or
requests for ranking) of a per-unit quantity, possibly weighted. Resampling those units with
replacement and recomputing the figure gives its sampling spread; the percentile interval of the
resamples is what tables print next to the point estimate.

Figures are ratios of sums, so one statistic covers every metric:

    statistic = Σ_units numerator / Σ_units denominator

- a plain per-user mean (Recall@50): numerator = the user's value, denominator = 1;
- GAUC: numerator = group weight × group AUC, denominator = group weight;
- the watch-time-weighted pairwise loss: numerator = wrongly ordered pair weight, denominator = all
  pair weight of the group.

"A beats B" is claimed only when the **paired** interval of the difference excludes 0: both methods
are scored on the same resampled units in each replicate, so the user-to-user spread that both
share cancels (an unpaired comparison of two overlapping intervals is far too conservative, and two
separate intervals that merely do not overlap is not the right test either).

Stochastic methods are run with several seeds; their per-unit values are averaged over seeds before
resampling (`mean_over_seeds`), so the interval is for the seed-averaged method, and the spread
across seeds is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
_CHUNK = 256  # replicates drawn at once: (chunk, units) counts stay small for any unit count


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    confidence: float = DEFAULT_CONFIDENCE
    units: int = 0  # how many units (users, groups) were resampled

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def format(self, digits: int = 4) -> str:
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}estimate": self.estimate, f"{prefix}low": self.low, f"{prefix}high": self.high}


def _as_units(numerators, denominators) -> tuple[np.ndarray, np.ndarray]:
    numerators = np.asarray(numerators, dtype=np.float64).ravel()
    if denominators is None:
        denominators = np.ones_like(numerators)
    denominators = np.asarray(denominators, dtype=np.float64).ravel()
    if numerators.size == 0:
        raise ValueError("no units to bootstrap: the per-unit arrays are empty")
    if numerators.shape != denominators.shape:
        raise ValueError(f"numerators has {numerators.size} units but denominators has {denominators.size}")
    if not (np.all(np.isfinite(numerators)) and np.all(np.isfinite(denominators))):
        raise ValueError("per-unit values must be finite (a NaN usually means a unit the metric cannot score)")
    if np.any(denominators < 0) or denominators.sum() <= 0:
        raise ValueError("denominators must be non-negative with a positive sum")
    return numerators, denominators


def _replicate_counts(units: int, resamples: int, seed: int):
    """Yield (chunk, units) multinomial resampling counts, `resamples` rows in all."""
    rng = np.random.default_rng(seed)
    probabilities = np.full(units, 1.0 / units)
    for start in range(0, resamples, _CHUNK):
        yield rng.multinomial(units, probabilities, size=min(_CHUNK, resamples - start)).astype(np.float64)


def _percentiles(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    tail = (1.0 - confidence) / 2.0
    finite = replicates[np.isfinite(replicates)]
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


def _ratio(numerators: np.ndarray, denominators: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts @ numerators) / (counts @ denominators)


def bootstrap_interval(
    numerators: Sequence[float] | np.ndarray,
    denominators: Sequence[float] | np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Σ numerator / Σ denominator over units, with its percentile interval (units resampled)."""
    numerators, denominators = _as_units(numerators, denominators)
    replicates = np.concatenate([
        _ratio(numerators, denominators, counts) for counts in _replicate_counts(numerators.size, resamples, seed)
    ])
    low, high = _percentiles(replicates, confidence)
    estimate = float(numerators.sum() / denominators.sum())
    return Interval(estimate, low, high, confidence, numerators.size)


def paired_difference(
    numerators_a: Sequence[float] | np.ndarray,
    numerators_b: Sequence[float] | np.ndarray,
    denominators_a: Sequence[float] | np.ndarray | None = None,
    denominators_b: Sequence[float] | np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Statistic(A) − statistic(B) over the same units, both recomputed on each resample.

    Unit i of A and unit i of B must be the same user (or group); align them before calling."""
    numerators_a, denominators_a = _as_units(numerators_a, denominators_a)
    numerators_b, denominators_b = _as_units(numerators_b, denominators_b)
    if numerators_a.size != numerators_b.size:
        raise ValueError(f"paired units differ in number: A has {numerators_a.size}, B has {numerators_b.size}")
    replicates = np.concatenate([
        _ratio(numerators_a, denominators_a, counts) - _ratio(numerators_b, denominators_b, counts)
        for counts in _replicate_counts(numerators_a.size, resamples, seed)
    ])
    low, high = _percentiles(replicates, confidence)
    estimate = float(numerators_a.sum() / denominators_a.sum() - numerators_b.sum() / denominators_b.sum())
    return Interval(estimate, low, high, confidence, numerators_a.size)


def two_sample_difference(
    numerators_a: Sequence[float] | np.ndarray,
    numerators_b: Sequence[float] | np.ndarray,
    denominators_a: Sequence[float] | np.ndarray | None = None,
    denominators_b: Sequence[float] | np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Statistic(A) − statistic(B) for two independent samples (an A/B test's arms hold different
    users), each resampled on its own; `units` of the result is the two sizes together."""
    numerators_a, denominators_a = _as_units(numerators_a, denominators_a)
    numerators_b, denominators_b = _as_units(numerators_b, denominators_b)
    for name, size in (("A", numerators_a.size), ("B", numerators_b.size)):
        if size < 2:
            raise ValueError(f"sample {name} has {size} unit(s): a bootstrap needs at least 2")
    # Two streams from one seed: each arm's resampling is independent of the other's size.
    seed_a, seed_b = np.random.SeedSequence(seed).spawn(2)
    replicates = np.concatenate([
        _ratio(numerators_a, denominators_a, counts_a) - _ratio(numerators_b, denominators_b, counts_b)
        for counts_a, counts_b in zip(_replicate_counts(numerators_a.size, resamples, seed_a),
                                      _replicate_counts(numerators_b.size, resamples, seed_b), strict=True)
    ])
    low, high = _percentiles(replicates, confidence)
    estimate = float(numerators_a.sum() / denominators_a.sum() - numerators_b.sum() / denominators_b.sum())
    return Interval(estimate, low, high, confidence, numerators_a.size + numerators_b.size)


def mean_over_seeds(per_seed_values: Sequence[Sequence[float] | np.ndarray]) -> np.ndarray:
    """Per-unit values averaged over seeds: rows are seeds, columns the same units in each."""
    stacked = np.asarray([np.asarray(values, dtype=np.float64).ravel() for values in per_seed_values])
    if stacked.ndim != 2 or stacked.shape[0] == 0:
        raise ValueError("mean_over_seeds needs at least one seed's per-unit values")
    return stacked.mean(axis=0)
