"""What a ranking benchmark report is built from (`Outcome`), and its JSON: what `--results-json`
writes and `--from-results` reads back."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluation.tuning import TuningResult

from ranking_protocol import Scored


@dataclass
class Outcome:
    """Everything the report and the MLflow run are built from: what `--results-json` writes and
    `--from-results` reads (our ranker's bundle is not kept; its latency and diagrams are)."""

    setup: dict  # what ran on which data: the report's header and the MLflow params
    tunings: dict[str, TuningResult]
    results: list[Scored]
    touches: list[dict]


def write_results(outcome: Outcome, path: Path) -> None:
    """`outcome` as JSON: per model and seed the holdout report and per-user components, the
    tuning trials, the holdout touches and our reliability diagrams (base64 PNG)."""
    payload = {
        "setup": outcome.setup,
        "tunings": {model: {"best_params": tuning.best_params, "best_value": tuning.best_value,
                            "rounds": tuning.rounds, "widened": tuning.widened, "trials": trial_records(tuning.trials)}
                    for model, tuning in outcome.tunings.items()},
        "results": [{"model": scored.model, "seeds": scored.seeds, "params": scored.params,
                     "train_seconds": scored.train_seconds, "reports": scored.reports,
                     "components": [components.reset_index().to_dict(orient="list")
                                    for components in scored.components],
                     "diagrams": {head: base64.b64encode(png).decode() for head, png in scored.diagrams.items()}}
                    for scored in outcome.results],
        "touches": outcome.touches,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, default=_plain) + "\n")


def read_results(path: Path) -> Outcome:
    payload = json.loads(path.read_text())
    tunings = {model: TuningResult(tuning["best_params"], tuning["best_value"], pd.DataFrame(tuning["trials"]),
                                   tuning["widened"], tuning["rounds"])
               for model, tuning in payload["tunings"].items()}
    results = [Scored(scored["model"], scored["seeds"], scored["reports"],
                      [pd.DataFrame(columns).set_index("user_id") for columns in scored["components"]],
                      scored["params"], scored["train_seconds"],
                      diagrams={head: base64.b64decode(png) for head, png in scored["diagrams"].items()})
               for scored in payload["results"]]
    return Outcome(payload["setup"], tunings, results, payload["touches"])


# What every part of one benchmark must share to be reported as one run.
SHARED_SETUP = ("dataset", "rows", "holdout_rows", "holdout_users", "seeds", "trials", "max_widenings",
                "selection_metric", "resamples", "click_factors")


def merge_outcomes(outcomes: list[Outcome], ours: str) -> Outcome:
    """Parts of one benchmark run side by side (each `--models` a subset, e.g. one process per
    model on a machine with many cores) as one outcome: refused when the parts differ in data or
    protocol (SHARED_SETUP) or name a model twice. Our ranker's part supplies the scoring latency;
    the wall time is the slowest part's (they ran at the same time)."""
    if len(outcomes) == 1:
        return outcomes[0]
    first = outcomes[0].setup
    for outcome in outcomes[1:]:
        differing = [key for key in SHARED_SETUP if outcome.setup.get(key) != first.get(key)]
        if differing:
            raise SystemExit(f"these results are not parts of one run: they differ in {differing}")
    models = [name for outcome in outcomes for name in outcome.setup["models"]]
    repeated = sorted({name for name in models if models.count(name) > 1})
    if repeated:
        raise SystemExit(f"models {repeated} appear in more than one results file")
    with_ours = [outcome for outcome in outcomes if ours in outcome.setup["models"]]
    if not with_ours:
        raise SystemExit(f"no results file holds '{ours}', which every comparison is paired against")
    setup = {**with_ours[0].setup, "models": [ours, *(name for name in models if name != ours)],
             "wall_seconds": max(outcome.setup["wall_seconds"] for outcome in outcomes),
             "parts": len(outcomes)}
    order = setup["models"]  # then rows no part was asked for (the ceilings of simulated data), as they came
    results = sorted((scored for outcome in outcomes for scored in outcome.results),
                     key=lambda scored: order.index(scored.model) if scored.model in order else len(order))
    tunings = {model: tuning for outcome in outcomes for model, tuning in outcome.tunings.items()}
    touches = [touch for outcome in outcomes for touch in outcome.touches]
    return Outcome(setup, tunings, results, touches)


def trial_records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict(orient="records")  # Python scalars; a diverged trial's inf stays inf


def _plain(value):
    """JSON for the numpy scalars reports and components hold."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to the results JSON")
