"""Skew on served features: did the ranker see, at request time, what the offline store says it
should have seen at that instant?

Input: two frames over the same rows (one per served item of the served-feature log), the values
the ranker was fed and the values a point-in-time join recomputed for the same keys and time,
both in the log's stored form (numbers as floats, ids and categories as strings, bags as lists of
strings; serving.served_log.feature_files). Per feature, a row matches when

* numeric: both missing, or |served − offline| ≤ abs_tolerance + rel_tolerance · |offline|;
* categorical: equal, or both missing;
* list (a bag such as the watch history): the same elements in the same order; missing and
  empty are the same bag (the ranker reads both as no elements).

A feature fails when more than `max_mismatch_rate` of its rows differ. The statistics name every
feature's mismatch rate, worst first; each failure carries example rows (keys, served, offline),
so a unit error reads as "served 12.5, offline 750" in the UI. Unlike PSI, this compares row by
row: a feature computed in other units fails even where its distribution looks plausible.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from expectations.validation import MAX_EXAMPLES, ValidationOutcome

logger = logging.getLogger(__name__)

SUITE = "served_features_match_offline"
KINDS = ("numeric", "categorical", "list")


def compare_served_features(
    served: pd.DataFrame,
    offline: pd.DataFrame,
    kinds: Mapping[str, str],
    key_columns: Sequence[str] = (),
    abs_tolerance: float = 1e-6,
    rel_tolerance: float = 1e-4,
    max_mismatch_rate: float = 0.01,
) -> ValidationOutcome:
    """Row-by-row comparison of `kinds`' features (name → "numeric", "categorical" or "list");
    `served` and `offline` hold the same rows in the same order. `key_columns` of `served` name a
    row in the examples."""
    if len(served) != len(offline):
        raise ValueError(f"served and offline must hold the same rows; got {len(served)} and {len(offline)}")
    unknown = {name: kind for name, kind in kinds.items() if kind not in KINDS}
    if unknown:
        raise ValueError(f"unknown feature kinds {unknown}; expected one of {KINDS}")
    served, offline = served.reset_index(drop=True), offline.reset_index(drop=True)
    rates: dict[str, float] = {}
    failures: list[dict[str, Any]] = []
    for feature, kind in kinds.items():
        missing = [side for side, frame in (("served", served), ("offline", offline)) if feature not in frame.columns]
        if missing:
            failures.append(_failure(feature, "feature_present", {}, f"missing from {missing}", []))
            continue
        matches = _matches(served[feature], offline[feature], kind, abs_tolerance, rel_tolerance)
        rate = float(1.0 - matches.mean()) if len(matches) else 0.0
        rates[feature] = round(rate, 4)
        if rate > max_mismatch_rate:
            failures.append(_failure(feature, "mismatch_rate", {"max_value": max_mismatch_rate}, round(rate, 4),
                                     _examples(served, offline, feature, ~matches, key_columns)))
    worst = sorted(rates, key=lambda name: -rates[name])
    statistics = {
        "rows": len(served),
        "features_checked": len(kinds),
        "features_failing": len({failure["column"] for failure in failures}),
        "mismatch_rate": {name: rates[name] for name in worst},
        "worst_features": [name for name in worst if rates[name] > 0][:MAX_EXAMPLES],
    }
    if failures:
        logger.warning("served features differ from the offline store in %s", sorted({f["column"] for f in failures}))
    return ValidationOutcome(SUITE, not failures, statistics, failures)


def _matches(served: pd.Series, offline: pd.Series, kind: str, abs_tolerance: float,
             rel_tolerance: float) -> np.ndarray:
    if kind == "numeric":
        left = pd.to_numeric(served, errors="coerce").to_numpy(dtype=float)
        right = pd.to_numeric(offline, errors="coerce").to_numpy(dtype=float)
        both_missing = np.isnan(left) & np.isnan(right)
        with np.errstate(invalid="ignore"):
            close = np.abs(left - right) <= abs_tolerance + rel_tolerance * np.abs(right)
        return both_missing | close
    if kind == "categorical":
        return np.array([(_missing(a) and _missing(b)) or (not _missing(a) and not _missing(b) and a == b)
                         for a, b in zip(served, offline, strict=True)], dtype=bool)
    return np.array([_bag(a) == _bag(b) for a, b in zip(served, offline, strict=True)], dtype=bool)


def _missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _bag(value: object) -> list:
    """A bag as a list (missing: empty); numpy arrays, as Parquet reads lists back, included."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return list(value)


def _examples(served: pd.DataFrame, offline: pd.DataFrame, feature: str, mismatched: np.ndarray,
              key_columns: Sequence[str]) -> list[str]:
    rows = np.flatnonzero(mismatched)[:MAX_EXAMPLES]
    examples = []
    for row in rows:
        keys = ", ".join(f"{name} {served.at[row, name]}" for name in key_columns if name in served.columns)
        examples.append(f"{keys}: served {_shown(served.at[row, feature])}, offline {_shown(offline.at[row, feature])}")
    return examples


def _shown(value: object) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def _failure(feature: str, expectation: str, expected: dict[str, Any], observed: Any,
             examples: list[str]) -> dict[str, Any]:
    return {"expectation": expectation, "column": feature, "expected": expected, "observed": observed,
            "unexpected_examples": examples}
