"""One search for every method: Optuna's TPE sampler, the same trial budget, edges widened.

A benchmark table is only fair when every method, ours included, was tuned the same way: the same
sampler, the same number of trials on the same validation split. Hand-made grids fail that test in
two ways this module prevents: they get more attention for the favoured model, and their winners
sit on a grid edge (the best value may lie outside). Here a best trial whose value of a numeric
parameter lies at the edge of its range (within `EDGE_SHARE` of the range, on the parameter's own
scale) widens that edge and searches again with the same per-round budget, seeded with the best
point so far, up to `max_widenings` times. Hard limits (a decay cannot exceed 1, a count must stay
positive) are never crossed, and an edge at a hard limit is not widened.

Every method therefore spends `trials_per_round × rounds` trials, where `rounds` ≤ 1 +
`max_widenings` and is reported with the result, so a reader sees who needed extra rounds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import optuna
import pandas as pd

logger = logging.getLogger(__name__)

EDGE_SHARE = 0.05  # a best value within 5% of the range from a bound counts as "on the edge"


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False
    hard_low: float | None = None  # never search below / above these, however often we widen
    hard_high: float | None = None


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False
    hard_low: int | None = 1
    hard_high: int | None = None


@dataclass(frozen=True)
class Choice:
    options: tuple


Dimension = FloatRange | IntRange | Choice
SearchSpace = Mapping[str, Dimension]


@dataclass
class TuningResult:
    best_params: dict
    best_value: float
    trials: pd.DataFrame  # round, trial, value, seconds, one column per parameter
    widened: list[str] = field(default_factory=list)  # "name: high 2000 → 20000" per widening
    rounds: int = 1


def _check_space(space: SearchSpace) -> None:
    for name, dimension in space.items():
        if isinstance(dimension, (FloatRange, IntRange)):
            if not dimension.low < dimension.high:
                raise ValueError(f"search range of {name!r} is empty: low {dimension.low} ≥ high {dimension.high}")
            if dimension.log and dimension.low <= 0:
                raise ValueError(f"log-scale range of {name!r} must be positive, got low {dimension.low}")
        elif isinstance(dimension, Choice):
            if not dimension.options:
                raise ValueError(f"choice {name!r} has no options")
        else:
            raise TypeError(f"{name!r}: expected FloatRange, IntRange or Choice, got {type(dimension).__name__}")


def _suggest(trial: optuna.Trial, space: SearchSpace) -> dict:
    params = {}
    for name, dimension in space.items():
        if isinstance(dimension, FloatRange):
            params[name] = trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)
        elif isinstance(dimension, IntRange):
            params[name] = trial.suggest_int(name, dimension.low, dimension.high, log=dimension.log)
        else:
            params[name] = trial.suggest_categorical(name, list(dimension.options))
    return params


def _position(value: float, dimension: FloatRange | IntRange) -> float:
    """Where `value` lies in the range, 0 at low and 1 at high, on the dimension's own scale."""
    scale = math.log if dimension.log else (lambda x: x)
    return (scale(value) - scale(dimension.low)) / (scale(dimension.high) - scale(dimension.low))


def _widen(name: str, dimension: FloatRange | IntRange, value: float) -> tuple[Dimension, str] | None:
    """The range with the edge `value` sits on pushed out by one range width (a factor on a log
    scale), clipped at the hard limit; None when the value is inside or the edge is a hard limit."""
    position = _position(value, dimension)
    if EDGE_SHARE < position < 1.0 - EDGE_SHARE:
        return None
    at_low = position <= EDGE_SHARE
    if dimension.log:
        ratio = dimension.high / dimension.low
        new_low, new_high = (
            (dimension.low / ratio, dimension.high) if at_low else (dimension.low, dimension.high * ratio)
        )
    else:
        width = dimension.high - dimension.low
        new_low, new_high = (
            (dimension.low - width, dimension.high) if at_low else (dimension.low, dimension.high + width)
        )
    if dimension.hard_low is not None:
        new_low = max(new_low, dimension.hard_low)
    if dimension.hard_high is not None:
        new_high = min(new_high, dimension.hard_high)
    if isinstance(dimension, IntRange):
        new_low, new_high = math.floor(new_low), math.ceil(new_high)  # both return int
    if (new_low, new_high) == (dimension.low, dimension.high):
        return None  # already at the hard limit
    edge = "low" if position <= EDGE_SHARE else "high"
    old, new = (dimension.low, new_low) if edge == "low" else (dimension.high, new_high)
    return replace(dimension, low=new_low, high=new_high), f"{name}: {edge} {old:g} → {new:g}"


def tune(
    objective: Callable[[dict], float],
    space: SearchSpace,
    trials_per_round: int,
    max_widenings: int = 2,
    seed: int = 0,
    direction: str = "maximize",
) -> TuningResult:
    """Search `space` for the params maximising (or minimising) `objective(params)`.

    An empty space evaluates the objective once with no parameters (nothing to tune)."""
    if trials_per_round < 1:
        raise ValueError(f"trials_per_round must be at least 1, got {trials_per_round}")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    _check_space(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = dict(space)
    rows: list[dict] = []
    widened: list[str] = []
    best_params: dict | None = None
    best_value = -math.inf if direction == "maximize" else math.inf
    better = (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)
    for round_index in range(1 + max_widenings):
        study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed + round_index))
        if best_params is not None:
            study.enqueue_trial(best_params)  # carries the incumbent into the wider space (one of the budget)
        budget = trials_per_round if space else 1

        def run(trial: optuna.Trial, round_index: int = round_index) -> float:
            params = _suggest(trial, space)
            started = time.perf_counter()
            value = float(objective(params))
            rows.append({"round": round_index, "trial": len(rows), "value": value,
                         "seconds": time.perf_counter() - started, **params})
            logger.info("trial %d %s → %.4f", len(rows) - 1, params, value)
            return value

        study.optimize(run, n_trials=budget)
        if best_params is None or better(study.best_value, best_value):
            best_params, best_value = dict(study.best_params), float(study.best_value)
        changes = []
        for name, dimension in space.items():
            if isinstance(dimension, (FloatRange, IntRange)):
                wider = _widen(name, dimension, best_params[name])
                if wider is not None:
                    space[name], note = wider
                    changes.append(f"{note} (after round {round_index + 1})")
        if not changes or round_index == max_widenings:
            return TuningResult(best_params, best_value, pd.DataFrame(rows), widened, round_index + 1)
        widened.extend(changes)
    raise AssertionError("unreachable: the last round returns")
