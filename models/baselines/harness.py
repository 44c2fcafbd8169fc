"""Tune every method on the validation split, refit it on the whole train split, score it on test.

Each method is a `MethodSpec`: a name, a builder taking keyword hyper-parameters and a grid of
them, or `params_from` = an earlier method whose tuned parameters it reuses (the multi-source
union takes the candidate generator's, so the ANN inside it is the model measured alone). Tuning picks the grid point with the best `tuning_metric` on the validation split (carved
from train exactly as test is carved from all data); ties keep the earlier grid point. The
returned table has one row per method and the protocol's metric columns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from models.baselines.base import Recommender
from models.evaluation.protocol import (
    TemporalSplit,
    evaluate,
    temporal_split,
    validation_split,
)

logger = logging.getLogger(__name__)


@dataclass
class MethodSpec:
    name: str
    build: Callable[..., Recommender]
    grid: Sequence[dict] = field(default_factory=lambda: [{}])
    params_from: str | None = None  # reuse this earlier method's tuned parameters instead of a grid


@dataclass
class HarnessResult:
    table: pd.DataFrame  # methods × metrics (test split), plus fit_seconds and tune_seconds
    params: dict[str, dict]  # tuned hyper-parameters per method
    validation: dict[str, pd.DataFrame]  # per method: grid point → validation metrics
    split: TemporalSplit


def tune(
    spec: MethodSpec, validation: TemporalSplit, catalog_size: int, tuning_metric: str,
    extra_metrics: Callable | None = None,
) -> tuple[dict, pd.DataFrame]:
    rows = []
    for params in spec.grid:
        started = time.perf_counter()
        method = spec.build(**params).fit(validation.train)
        scores = evaluate(method.recommend, validation, catalog_size, extra_metrics)
        rows.append({"params": params, **scores, "seconds": time.perf_counter() - started})
        logger.info("%s %s: validation %s = %.4f", spec.name, params, tuning_metric, scores[tuning_metric])
    frame = pd.DataFrame(rows)
    best = int(frame[tuning_metric].to_numpy().argmax())
    return dict(spec.grid[best]), frame


def run_harness(
    interactions: pd.DataFrame,
    methods: Sequence[MethodSpec],
    catalog_size: int,
    test_fraction: float = 0.2,
    cutoff=None,
    tuning_metric: str = "recall@50",
    extra_metrics: Callable | None = None,
) -> HarnessResult:
    split = temporal_split(interactions, test_fraction, cutoff)
    validation = validation_split(split, test_fraction, cutoff)
    rows, params, validation_tables = {}, {}, {}
    for spec in methods:
        started = time.perf_counter()
        if spec.params_from is not None:
            if spec.params_from not in params:
                raise ValueError(f"{spec.name} takes the parameters of {spec.params_from!r}, which must run "
                                 f"before it; methods so far: {list(params)}")
            params[spec.name] = dict(params[spec.params_from])
        elif len(spec.grid) > 1:
            params[spec.name], validation_tables[spec.name] = tune(
                spec, validation, catalog_size, tuning_metric, extra_metrics
            )
        else:
            params[spec.name] = dict(spec.grid[0])
        tune_seconds = time.perf_counter() - started
        started = time.perf_counter()
        method = spec.build(**params[spec.name]).fit(split.train)
        fit_seconds = time.perf_counter() - started
        rows[spec.name] = {
            **evaluate(method.recommend, split, catalog_size, extra_metrics),
            "fit_seconds": fit_seconds,
            "tune_seconds": tune_seconds,
        }
        logger.info("%s (%s): test %s", spec.name, params[spec.name], rows[spec.name])
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    return HarnessResult(table=table, params=params, validation=validation_tables, split=split)
