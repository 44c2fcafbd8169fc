"""Which ranker architecture to benchmark, decided on the validation rows alone.

bench/ranking.py reads the holdout once per chosen configuration; choosing *which* ranker to put
there must not read it too. This study drops the holdout rows as soon as the frame is built (the
train-click features of the remaining rows come from train clicks only, as in the benchmark), so
nothing it prints can depend on them. Every ranker variant and every baseline gets the benchmark's
own search (bench/ranking_protocol.py::tune_model: the same Optuna budget and the same
`--selection-metric`, by default the watch-time-weighted validation log loss; `gauc` and
`pairwise_loss` pick trials by a ranking metric instead); the chosen configuration is fit with `--seeds` seeds
and its final score ranked on the validation rows: GAUC and the watch-time-weighted pairwise loss
with user-bootstrap intervals, paired against each baseline (bench/ranking_tables.py::summarise).

One caveat: our ranker calibrates its like and skip heads on these same validation rows, and its
final score mixes them in, so its validation GAUC is slightly in-sample. `gauc_logit` (the
watch-time logit alone, which nothing fits on validation) is printed beside it to check.

Runs as separate processes (one per model) that write results, then one that reads them all:

    PYTHONPATH=. python3 bench/ranking_variants.py --frame-dir EXPORT --models "ranker wide" \\
        --device cuda --results-json variants/wide.json
    PYTHONPATH=. python3 bench/ranking_variants.py --combine variants/*.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.evaluation.bootstrap import DEFAULT_RESAMPLES
from models.evaluation.tuning import SearchSpace
from models.ranking.config import RankerConfig
from models.ranking.evaluate import ranking_report, user_components
from models.ranking.train import split_calibration_rows

from ranking_data import exported_frame
from ranking_features import benchmark_frame
from ranking_models import (
    DEFAULT_SELECTION,
    MODELS,
    OURS,
    POPULARITY,
    RANKER_LISTWISE_SPACE,
    RANKER_SHAPE_SPACE,
    RANKER_TRAINING_SPACE,
    SEARCH_SPACES,
    SELECTION_METRICS,
)
from ranking_protocol import Scored, Splits, tune_model
from ranking_results import Outcome, read_results, write_results
from ranking_tables import selection_label, selection_of, summarise

# name → (config changes, search space). Each was tuned by the same 10-trial search; the one
# chosen (docs/benchmarks.md) is what bench/ranking.py now tunes as "ranker": RANKER_TRAINING_SPACE
# and RANKER_SHAPE_SPACE together. "ranker fixed shape" is the ranker as benchmarked before
# (its run of 2026-12-04 labelled it "ranker").
VARIANTS: dict[str, tuple[dict, SearchSpace]] = {
    "ranker fixed shape": ({}, RANKER_TRAINING_SPACE),
    "ranker wide": ({"wide": True}, RANKER_TRAINING_SPACE),
    "ranker cross": ({"cross_layers": 2}, RANKER_TRAINING_SPACE),
    "ranker wide+cross": ({"wide": True, "cross_layers": 2}, RANKER_TRAINING_SPACE),
    "ranker auxiliary heads 0.25": ({"task_weights": {"click": 0.25, "like": 0.25, "skip": 0.25}},
                                    RANKER_TRAINING_SPACE),
    "ranker tuned shape": ({}, {**RANKER_TRAINING_SPACE, **RANKER_SHAPE_SPACE}),
    # the tuned shape plus an in-request listwise term on the watch-time logit (its weight searched
    # from 0, pointwise only, upward): models/ranking/listwise.py
    "ranker listwise": ({}, {**RANKER_TRAINING_SPACE, **RANKER_SHAPE_SPACE, **RANKER_LISTWISE_SPACE}),
}
BASELINES = ("logistic regression", "HistGradientBoosting", POPULARITY)


def validation_splits(frame: pd.DataFrame, config: RankerConfig) -> Splits:
    """The benchmark's fit and validation rows; the holdout is not kept (scoring reads validation)."""
    train = frame[frame["split"] == "train"]
    fit, validation = split_calibration_rows(train, config.calibration_share)
    if fit.empty or validation.empty:
        raise SystemExit(f"need fit and validation rows; have {len(fit)} fit, {len(validation)} validation")
    return Splits(train, fit, validation, holdout=validation.iloc[:0])


def study(name: str, splits: Splits, config: RankerConfig, seeds: list[int], trials: int,
          max_widenings: int, params: dict | None = None,
          selection: str = DEFAULT_SELECTION) -> tuple[object | None, Scored]:
    """Tune `name` on validation by `selection` (or take `params` as chosen: an ablation of one
    choice), then score the choice on validation once per seed."""
    validation = splits.validation
    if name == POPULARITY:
        final = validation["candidate_train_clickers"].to_numpy(np.float64)
        report = ranking_report(validation, final)
        return None, Scored(name, [0], [report], [user_components(validation, final)], {}, [0.0])
    spec = MODELS[OURS] if name in VARIANTS else MODELS[name]
    changes, space = VARIANTS[name] if name in VARIANTS else ({}, SEARCH_SPACES[name])
    variant_config = replace(config, **changes)
    tuning = None if params is not None else tune_model(spec, splits, variant_config, trials, max_widenings, space,
                                                        selection)
    chosen = params if tuning is None else tuning.best_params
    rows = splits.train if spec.fits_on_train_split else splits.fit
    scored = Scored(name, [], [], [], chosen, [])
    for seed in (seeds if spec.stochastic else seeds[:1]):
        started = time.perf_counter()
        fitted = spec.fit(rows, variant_config, chosen, seed)
        scored.train_seconds.append(time.perf_counter() - started)
        final = fitted.final_score(validation)
        report = ranking_report(validation, final)
        report["gauc_logit"] = ranking_report(validation, fitted.logits(validation))["gauc_clicked"]
        scored.seeds.append(seed)
        scored.reports.append(report)
        scored.components.append(user_components(validation, final))
    return tuning, scored


def combine(paths: list[Path], resamples: int) -> str:
    """Every variant's validation GAUC and pairwise loss, each paired against every baseline."""
    outcomes = [read_results(path) for path in paths]
    selections = sorted({selection_of(outcome.setup) for outcome in outcomes})
    if len(selections) > 1:
        raise SystemExit(f"these results were tuned by different selection metrics {selections}; "
                         "combine one metric's results at a time")
    if len({bool(outcome.setup.get("click_factors")) for outcome in outcomes}) > 1:
        raise SystemExit("some of these results had the click factors and some did not; "
                         "combine one set of inputs at a time")
    results = {scored.model: scored for outcome in outcomes for scored in outcome.results}
    tunings = {model: tuning for outcome in outcomes for model, tuning in outcome.tunings.items()}
    baselines = [results[name] for name in BASELINES if name in results]
    variants = [scored for name, scored in results.items() if name not in BASELINES]
    lines = [f"| model | validation {selection_label(selections[0])} (selection) | GAUC [95% CI] | "
             "GAUC of the logit | pairwise loss ↓ [95% CI] | "
             + " | ".join(f"vs {scored.model}: GAUC, pairwise loss" for scored in baselines) + " | chosen |",
             "|---|---|---|---|---|" + "---|" * len(baselines) + "---|"]
    for scored in [*variants, *baselines]:
        ours = replace(scored, model=OURS)
        summaries = summarise([ours, *(b for b in baselines if b.model != scored.model)], resamples)
        own = summaries[OURS]
        paired = [f"{summaries[b.model].gauc_advantage.format()}, {summaries[b.model].loss_advantage.format()}"
                  if b.model in summaries and b.model != scored.model else "—" for b in baselines]
        selected = f"{tunings[scored.model].best_value:.5f}" if scored.model in tunings else "—"
        logit = [report["gauc_logit"] for report in scored.reports if "gauc_logit" in report]
        logit_text = f"{statistics.mean(logit):.4f}" if logit else "—"
        chosen = ", ".join(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
                           for key, value in scored.params.items())
        lines.append(f"| {scored.model} | {selected} | {own.gauc.format()} | {logit_text} | "
                     f"{own.pairwise_loss.format()} | " + " | ".join(paired) + f" | {chosen} |")
    return "\n".join(lines)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--frame-dir", type=Path, help="what `bench/ranking.py --export` wrote")
    mode.add_argument("--combine", type=Path, nargs="+", metavar="JSON", help="results files to report together")
    parser.add_argument("--models", default=",".join([*VARIANTS, *BASELINES]),
                        help=f"comma-separated; known: {', '.join([*VARIANTS, *BASELINES])}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--max-widenings", type=int, default=1)
    parser.add_argument("--selection-metric", choices=list(SELECTION_METRICS), default=DEFAULT_SELECTION,
                        help="the validation metric every model's search picks its trial by")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--results-json", type=Path, help="where a study run writes its results")
    parser.add_argument("--params", type=json.loads, metavar="JSON",
                        help="hyper-parameters to score as chosen, untuned (one ranker variant; an ablation)")
    parser.add_argument("--label", help="the name results are reported under (default: the model's)")
    parser.add_argument("--click-factors", action=argparse.BooleanOptionalAction, default=True,
                        help="give every model the per-day click factors (bench/ranking_features.py); on by "
                             "default since 2026-12-06: HGB and LR use them (docs/benchmarks.md)")
    args = parser.parse_args()
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in args.models if name not in VARIANTS and name not in BASELINES]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {[*VARIANTS, *BASELINES]}")
    if args.frame_dir and not args.results_json:
        parser.error("a study run needs --results-json")
    if (args.params is not None or args.label) and (len(args.models) != 1 or args.models[0] not in VARIANTS):
        parser.error("--params and --label apply to exactly one ranker variant in --models")
    return args


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("models.ranking.train").setLevel(logging.ERROR)
    if args.combine:
        print(combine(args.combine, args.resamples))
        return
    torch.set_num_threads(args.threads)
    frame, inputs = exported_frame(args.frame_dir)
    frame = frame[frame["split"] == "train"]  # the holdout goes before anything is fit or scored
    frame, config = benchmark_frame(frame, inputs, args.click_factors)
    config = replace(config, device=args.device)
    splits = validation_splits(frame, config)
    seeds = list(range(args.seeds))
    tunings, results = {}, []
    for name in args.models:
        tuning, scored = study(name, splits, config, seeds, args.trials, args.max_widenings, args.params,
                               args.selection_metric)
        scored.model = name = args.label or name
        if tuning is not None:
            tunings[name] = tuning
        results.append(scored)
        print(f"{name}: validation GAUC per seed {[round(r['gauc_clicked'], 4) for r in scored.reports]}", flush=True)
    setup = {"source": str(args.frame_dir), "validation_rows": len(splits.validation), "seeds": seeds,
             "trials": args.trials, "max_widenings": args.max_widenings, "selection_metric": args.selection_metric,
             "models": args.models, "click_factors": args.click_factors}
    write_results(Outcome(setup, tunings, results, touches=[]), args.results_json)


if __name__ == "__main__":
    main()
