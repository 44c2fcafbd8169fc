"""How the ranking benchmark runs the models: tune each on the validation rows, then score its
chosen configuration on the holdout once per seed, listing every holdout touch; and how fast our
ranker's bundle scores."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from models.evaluation.ranking_metrics import reliability_bins
from models.evaluation.tuning import SearchSpace, TuningResult, tune
from models.ranking.config import RankerConfig
from models.ranking.evaluate import base_rates, ranking_report, user_components
from models.ranking.labels import example_weights, head_labels
from models.ranking.train import split_calibration_rows

from ranking_models import DEFAULT_SELECTION, MODELS, POPULARITY, SEARCH_SPACES, SELECTION_METRICS, ModelSpec


@dataclass
class Scored:
    """One model's holdout results: per seed the report and the per-user components."""

    model: str
    seeds: list[int]
    reports: list[dict[str, float]]
    components: list[pd.DataFrame]
    params: dict
    train_seconds: list[float]
    bundle: object | None = None  # ours, first seed: for latency and reliability diagrams
    diagrams: dict[str, bytes] = field(default_factory=dict)  # head → PNG, raw vs calibrated, first seed


@dataclass
class Splits:
    train: pd.DataFrame  # split == 'train'
    fit: pd.DataFrame  # train less its last calibration_share by time
    validation: pd.DataFrame
    holdout: pd.DataFrame


def make_splits(frame: pd.DataFrame, config: RankerConfig) -> Splits:
    train = frame[frame["split"] == "train"]
    fit, validation = split_calibration_rows(train, config.calibration_share)
    holdout = frame[frame["split"] == "holdout"]
    if train.empty or validation.empty or holdout.empty:
        raise SystemExit(f"the ranking frame needs train, validation and holdout rows; have {len(fit)} fit, "
                         f"{len(validation)} validation, {len(holdout)} holdout")
    return Splits(train, fit, validation, holdout)


def tune_model(spec: ModelSpec, splits: Splits, config: RankerConfig, trials: int, max_widenings: int,
               space: SearchSpace | None = None, selection: str = DEFAULT_SELECTION) -> TuningResult:
    """The shared search over `space` (default `SEARCH_SPACES[spec.name]`) for the best
    `SELECTION_METRICS[selection]` on the validation rows, each trial a fit with seed 0."""
    rows = splits.train if spec.fits_on_train_split else splits.fit
    metric = SELECTION_METRICS[selection]
    worst = math.inf if metric.direction == "minimize" else -math.inf

    def value_of(params: dict) -> float:
        value = metric.value(splits.validation, spec.fit(rows, config, params, 0))
        return value if math.isfinite(value) else worst  # a diverged fit loses; it does not fail the study

    space = SEARCH_SPACES[spec.name] if space is None else space
    return tune(value_of, space, trials, max_widenings, seed=0, direction=metric.direction)


def score_model(spec: ModelSpec, params: dict, splits: Splits, config: RankerConfig, seeds: Sequence[int],
                constant_rates: dict[str, float], touches: list[dict]) -> Scored:
    """Fit the chosen configuration once per seed and score the holdout once with each."""
    rows = splits.train if spec.fits_on_train_split else splits.fit
    scored = Scored(spec.name, [], [], [], params, [])
    for seed in (seeds if spec.stochastic else seeds[:1]):
        started = time.perf_counter()
        fitted = spec.fit(rows, config, params, seed)
        scored.train_seconds.append(time.perf_counter() - started)
        touches.append(touch(spec.name, seed if spec.stochastic else "deterministic", params))
        final = fitted.final_score(splits.holdout)
        probabilities = fitted.probabilities(splits.holdout) if fitted.probabilities else None
        scored.seeds.append(seed)
        scored.reports.append(ranking_report(splits.holdout, final, probabilities, config.calibration_bins,
                                             constant_rates))
        scored.components.append(user_components(splits.holdout, final))
        if scored.bundle is None and fitted.bundle is not None:
            scored.bundle = fitted.bundle
            scored.diagrams = reliability_diagrams(fitted.bundle, splits.holdout)
    return scored


def touch(model: str, seed: int | str, params: dict) -> dict:
    """One holdout read: which configuration, and when (UTC), for the MLflow run and the results."""
    return {"model": model, "seed": seed, "params": params,
            "at": datetime.now(UTC).isoformat(timespec="seconds")}


def reliability_diagrams(bundle, holdout: pd.DataFrame) -> dict[str, bytes]:
    """Head → PNG of the holdout reliability diagram, raw sigmoid vs calibrated."""
    from models.calibration import reliability_diagram_png

    logits = bundle.all_logits(holdout)
    values = bundle.head_values(holdout)
    labels = head_labels(holdout, bundle.config)
    weights = example_weights(holdout)
    bins = bundle.config.calibration_bins
    diagrams = {}
    for head in bundle.calibrators:
        before = reliability_bins(labels[head][0], 1.0 / (1.0 + np.exp(-logits[head])), weights, bins)
        after = reliability_bins(labels[head][0], values[head], weights, bins)
        diagrams[head] = reliability_diagram_png(before, after, f"{head} (holdout)")
    return diagrams


def score_fixed(name: str, holdout: pd.DataFrame, scores: np.ndarray, touches: list[dict]) -> Scored:
    """A scorer with nothing to fit (popularity, the ceilings): its holdout report, read once."""
    touches.append(touch(name, "deterministic", {}))
    return Scored(name, [0], [ranking_report(holdout, scores)], [user_components(holdout, scores)], {}, [0.0])


def score_popularity(splits: Splits, touches: list[dict]) -> Scored:
    return score_fixed(POPULARITY, splits.holdout, splits.holdout["candidate_train_clickers"].to_numpy(np.float64),
                       touches)


def run(frame: pd.DataFrame, config: RankerConfig, models: Sequence[str], seeds: Sequence[int], trials: int,
        max_widenings: int, selection: str = DEFAULT_SELECTION,
        ) -> tuple[dict[str, TuningResult], list[Scored], list[dict]]:
    """Tune every model on validation by the same `selection` metric, then score each chosen
    configuration on the holdout once per seed. Returns the tunings, the holdout results and the
    list of holdout touches."""
    splits = make_splits(frame, config)
    constant_rates = base_rates(splits.train, config)
    tunings, results, touches = {}, [], []
    for name in models:
        if name == POPULARITY:
            results.append(score_popularity(splits, touches))
            continue
        spec = MODELS[name]
        tunings[name] = tune_model(spec, splits, config, trials, max_widenings, selection=selection)
        results.append(score_model(spec, tunings[name].best_params, splits, config, seeds, constant_rates, touches))
    return tunings, results, touches


def score_latency_ms(bundle, frame: pd.DataFrame, calls: int = 200) -> float:
    """Median wall time of `bundle.score` on `frame` (preprocessing included), after a warm-up."""
    bundle.score(frame)
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        bundle.score(frame)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)
