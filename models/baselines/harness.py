"""Tune every method the same way on validation, score the chosen configuration on test with
several seeds, and compare methods with paired user-level bootstrap intervals.

The rules this module enforces, so a benchmark table can be trusted:

- **One split, leak-free by default**: a global time cut (models/evaluation/protocol.py); the
  validation split is the same cut inside the train period, so tuning never sees test time.
- **Equal tuning**: every method with hyper-parameters, ours included, is searched by
  `models.evaluation.tuning.tune` (Optuna TPE) with the same trial budget per round on the same
  validation split and the same metric, widening edges its winner sits on. Stochastic methods
  (`seeded=True`) are tuned with seed `settings.seeds[0]`.
- **One query time for every method**: each method is fitted with the split's query time
  (`TemporalSplit.query_time`: the cut-off of the global split, as production asks at request
  time), so any "now" a method measures from is the same for all. `query_at="last_interaction"`
  asks each user as of their own last train interaction instead, for every method alike (kept to
  compare with tables measured that way).
- **Validation-only runs**: `holdout="validation"` scores on the validation split and tunes on
  the same cut inside its train period, so a change can be measured with seeds and intervals
  without reading test.
- **Test read once per chosen configuration**: after tuning, the chosen configuration is fitted on
  the whole train split once per seed and scored on test (and on its cold-start slice); nothing
  is chosen after that. `HarnessResult.test_reads` lists every (method, configuration, seeds) that
  touched test, for the MLflow run to record.
- **Variance**: stochastic methods run with every seed in `settings.seeds` (≥ 5 by default);
  per-user values are averaged over seeds, and every metric gets a user-level bootstrap 95%
  interval. "A beats B" means the paired-bootstrap interval of A − B excludes 0
  (models/evaluation/bootstrap.py).

`run_method` runs one method alone and returns a picklable `MethodRun`, so the benchmark can run
methods in separate processes and `summary_table` can put them together afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.baselines.base import Recommender
from models.evaluation.bootstrap import bootstrap_interval, mean_over_seeds, paired_difference
from models.evaluation.protocol import Evaluation, TemporalSplit, evaluate, temporal_split, validation_split
from models.evaluation.tuning import SearchSpace, TuningResult, tune

logger = logging.getLogger(__name__)

ExtraMetrics = Callable[[dict[int, list[int]]], dict[str, float]]


@dataclass
class MethodSpec:
    name: str
    build: Callable[..., Recommender]  # keyword hyper-parameters, plus `seed` when seeded
    space: SearchSpace = field(default_factory=dict)  # empty: nothing to tune
    seeded: bool = False  # stochastic: tuned with the first seed, scored with every seed
    params_from: str | None = None  # reuse this method's tuned parameters instead of a search of its own


@dataclass(frozen=True)
class HarnessSettings:
    test_fraction: float = 0.2  # share of interactions after the cut (global) or of each user's (per-user)
    split_kind: str = "global"  # "global" (default, leak-free) or "per_user" (leaks the future; comparison only)
    cutoff: Any = None  # global split: the time T; None = the (1 - test_fraction) quantile of interaction times
    tuning_metric: str = "recall@50"
    trials: int = 12  # Optuna trials per tuning round, the same for every method
    max_widenings: int = 2  # extra rounds when a winner sits on a search-range edge
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    slices: tuple[str, ...] = ("all", "cold_start")
    query_at: str = "cutoff"  # one of QUERY_AT: when every method asks (see the module docstring)
    holdout: str = "test"  # one of HOLDOUTS: "validation" scores validation and never reads test

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds is empty; stochastic methods need at least one seed")
        if self.query_at not in QUERY_AT:
            raise ValueError(f"query_at must be one of {QUERY_AT}, got {self.query_at!r}")
        if self.holdout not in HOLDOUTS:
            raise ValueError(f"holdout must be one of {HOLDOUTS}, got {self.holdout!r}")


QUERY_AT = ("cutoff", "last_interaction")
HOLDOUTS = ("test", "validation")


def query_time(split: TemporalSplit, settings: HarnessSettings):
    """The time every method is asked at on `split`: its query time (the cut-off of a global
    split), or None (each user as of their last train interaction) when settings ask for that."""
    return split.query_time if settings.query_at == "cutoff" else None


@dataclass
class MethodRun:
    """One method's tuning and its test scores, one `Evaluation` per seed and slice."""

    name: str
    params: dict
    seeds: tuple[int, ...]
    evaluations: dict[str, list[Evaluation]]  # slice → per seed
    tuning: TuningResult | None = None
    tune_seconds: float = 0.0
    fit_seconds: list[float] = field(default_factory=list)

    def per_user(self, metric: str, slice: str = "all") -> pd.Series:
        """The metric per test user, averaged over seeds (index user_id)."""
        frames = [evaluation.per_user[metric] for evaluation in self.evaluations[slice]]
        return pd.Series(mean_over_seeds(frames), index=frames[0].index, name=metric)

    def seed_values(self, metric: str, slice: str = "all") -> list[float]:
        return [float(evaluation.metrics[metric]) for evaluation in self.evaluations[slice]]


@dataclass
class HarnessResult:
    runs: dict[str, MethodRun]
    split: TemporalSplit
    validation: TemporalSplit
    test_reads: list[dict]  # method, params, seeds, slices: every configuration that touched test


def prepare_splits(interactions: pd.DataFrame, settings: HarnessSettings) -> tuple[TemporalSplit, TemporalSplit]:
    """(the split scored, the split tuned on): (test, validation), or with holdout="validation"
    (validation, the same cut inside validation's train period), which never touches test."""
    split = temporal_split(interactions, settings.test_fraction, settings.cutoff, kind=settings.split_kind)
    if settings.holdout == "validation":
        split = validation_split(split)
    return split, validation_split(split)


def _build(spec: MethodSpec, params: Mapping, seed: int) -> Recommender:
    return spec.build(**params, seed=seed) if spec.seeded else spec.build(**params)


def tune_method(
    spec: MethodSpec, validation: TemporalSplit, catalog_size: int, settings: HarnessSettings,
    extra_metrics: ExtraMetrics | None = None,
) -> TuningResult:
    """The search on validation (fit on its train, score its test), never touching the test split."""

    def objective(params: dict) -> float:
        method = _build(spec, params, settings.seeds[0]).fit(validation.train, query_time(validation, settings))
        return evaluate(method.recommend, validation, catalog_size, extra_metrics).metrics[settings.tuning_metric]

    return tune(objective, spec.space, settings.trials, settings.max_widenings, seed=settings.seeds[0])


def run_method(
    spec: MethodSpec,
    split: TemporalSplit,
    validation: TemporalSplit,
    catalog_size: int,
    settings: HarnessSettings,
    extra_metrics: ExtraMetrics | None = None,
    params: dict | None = None,
) -> MethodRun:
    """Tune `spec` (unless `params` are given), then score it on test once per seed."""
    started = time.perf_counter()
    tuning = None
    if params is None:
        tuning = tune_method(spec, validation, catalog_size, settings, extra_metrics)
        params = tuning.best_params
    tune_seconds = time.perf_counter() - started
    seeds = settings.seeds if spec.seeded else settings.seeds[:1]
    # A split without new videos in its test period has no cold-start slice to score.
    slices = [slice for slice in settings.slices if slice != "cold_start" or split.cold_items]
    evaluations: dict[str, list[Evaluation]] = {slice: [] for slice in slices}
    fit_seconds = []
    for seed in seeds:
        started = time.perf_counter()
        method = _build(spec, params, seed).fit(split.train, query_time(split, settings))
        fit_seconds.append(time.perf_counter() - started)
        for slice in slices:
            extra = extra_metrics if slice == "all" else None
            evaluations[slice].append(evaluate(method.recommend, split, catalog_size, extra, slice=slice))
        logger.info("%s %s seed %d: test %s", spec.name, params, seed,
                    {name: round(value, 4) for name, value in evaluations["all"][-1].metrics.items()})
    return MethodRun(spec.name, dict(params), tuple(seeds), evaluations, tuning, tune_seconds, fit_seconds)


def run_harness(
    interactions: pd.DataFrame,
    methods: Sequence[MethodSpec],
    catalog_size: int,
    settings: HarnessSettings = HarnessSettings(),
    extra_metrics: ExtraMetrics | None = None,
    on_run: Callable[[MethodRun], None] | None = None,
) -> HarnessResult:
    """Every method in one process, in order (a `params_from` method after the one it borrows from);
    `on_run` gets each method's run as soon as it is done (the bench stores it there)."""
    split, validation = prepare_splits(interactions, settings)
    runs: dict[str, MethodRun] = {}
    for spec in methods:
        borrowed = None
        if spec.params_from is not None:
            if spec.params_from not in runs:
                raise ValueError(f"{spec.name} takes the parameters of {spec.params_from!r}, which must run "
                                 f"before it; methods so far: {list(runs)}")
            borrowed = runs[spec.params_from].params
        runs[spec.name] = run_method(spec, split, validation, catalog_size, settings, extra_metrics, borrowed)
        if on_run is not None:
            on_run(runs[spec.name])
    return HarnessResult(runs, split, validation, test_reads(runs.values()))


def test_reads(runs) -> list[dict]:
    return [{"method": run.name, "params": run.params, "seeds": list(run.seeds), "slices": list(run.evaluations)}
            for run in runs]


def summary_table(
    runs: Mapping[str, MethodRun], metrics: Sequence[str], reference: str | None = None, slice: str = "all",
    resamples: int = 2000,
) -> pd.DataFrame:
    """One row per method: each metric's seed-averaged estimate with its 95% interval, the spread
    over seeds, and the paired difference `reference − method` (columns "<metric> Δ", "Δ low",
    "Δ high") with its verdict: "reference better" when the interval lies above 0."""
    rows = []
    reference_run = runs.get(reference) if reference else None
    for name, run in runs.items():
        if slice not in run.evaluations:
            continue
        row: dict = {"method": name, "seeds": len(run.seeds),
                     "users": len(run.evaluations[slice][0].per_user)}
        for metric in metrics:
            values = run.per_user(metric, slice)
            interval = bootstrap_interval(values.to_numpy(), resamples=resamples)
            row[metric] = interval.estimate
            row[f"{metric} low"], row[f"{metric} high"] = interval.low, interval.high
            row[f"{metric} seed sd"] = float(np.std(run.seed_values(metric, slice))) if len(run.seeds) > 1 else 0.0
            if reference_run is not None and name != reference:
                ours = reference_run.per_user(metric, slice)
                theirs = values.reindex(ours.index, fill_value=0.0)
                difference = paired_difference(ours.to_numpy(), theirs.to_numpy(), resamples=resamples)
                row[f"{metric} Δ"] = difference.estimate
                row[f"{metric} Δ low"], row[f"{metric} Δ high"] = difference.low, difference.high
                row[f"{metric} verdict"] = (
                    "reference better" if difference.low > 0
                    else "reference worse" if difference.high < 0
                    else "no difference"
                )
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")
