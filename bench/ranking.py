"""Ranker benchmark: our multi-task ranker vs logistic regression, HistGradientBoosting and a
popularity scorer on any dataset the pipeline has run over, with tuning of equal effort, several
seeds, user-level bootstrap intervals and calibration read against base rates.

Commands (each dataset in its own VIDREC_HOME; `vidrec pipeline` builds the ranking frame there):

    # simulated data
    VIDREC_HOME=/tmp/sim .venv/bin/vidrec simulate
    VIDREC_HOME=/tmp/sim .venv/bin/vidrec pipeline
    .venv/bin/python bench/ranking.py --home /tmp/sim --dataset simulated
    # MovieLens 100k (or any raw-log directory `vidrec import ...` writes)
    VIDREC_HOME=/tmp/ml100k .venv/bin/vidrec import movielens /work/shared/data/ml-100k
    VIDREC_HOME=/tmp/ml100k .venv/bin/vidrec pipeline
    .venv/bin/python bench/ranking.py --home /tmp/ml100k --dataset ml-100k
    # a quick smoke run
    .venv/bin/python bench/ranking.py --home /tmp/sim --trials 3 --seeds 2 --no-mlflow

`--home` defaults to VIDREC_HOME; `--dataset` is only the label results are logged under.

On a GPU machine without the pipeline's stack. `--export DIR` (run where the pipeline ran) writes
the home's ranking frame and the ranker's input lists (what the `ranker_features` feature service
provides) to DIR/ranking_frame.parquet and DIR/ranker_inputs.json, and exits. `--frame-dir DIR`
benchmarks from those two files alone: that path imports no Feast, Dagster, dbt or MLflow, so
torch, numpy, pandas, scipy, scikit-learn, pyarrow, optuna and pydantic(-settings) suffice.
`--device cuda` trains our ranker on the GPU (the baselines are scikit-learn, on the CPU);
`--results-json` keeps everything the report is built from, and `--from-results` rebuilds the
report from it where MLflow is, and logs it:

    .venv/bin/python bench/ranking.py --home /tmp/sim --export /tmp/sim_export
    # there, from the repository root (no install: PYTHONPATH finds models/ and vidrec/)
    PYTHONPATH=. python3 bench/ranking.py --frame-dir /tmp/sim_export --dataset simulated \
        --device cuda --no-mlflow --results-json /tmp/ranking_simulated.json
    # back here
    .venv/bin/python bench/ranking.py --from-results /tmp/ranking_simulated.json

Data. The pipeline's ranking frame (`<home>/artifacts/ranking_training_frame.parquet`: every
click, the whole holdout and a weighted sample of the other non-clicks, features joined through
Feast's `ranker_features` service as of each impression's request start). Rows `split == 'train'`
are cut by time: the last 10 % are the validation rows (our ranker calibrates on them; no model
fits on them), the rest the fit rows. Every model fits on the fit rows with the same
watch-time-weighted objective (positives weigh their watch seconds), is tuned on validation, and
is scored on `split == 'holdout'` (the pipeline's temporal holdout).

What each model sees (`ranker_inputs` of the feature service, plus `TRAIN_CLICK_FEATURES` and
the click factors; the fitters are in bench/ranking_models.py):
- the ranker: every categorical (embedded; the candidate's id and the last watched video share a
  table), every numeric (quantile-normalised), the recent-watch bag (averaged embeddings and
  their dot product with the candidate's), and the train-click features;
- logistic regression: the categoricals one-hot, the same normalised numerics, each bag as a
  normalised multi-hot, and the train-click features;
- HistGradientBoosting: the categoricals as vocabulary codes (native splits up to 255 values),
  the numerics' CDF and missing flag, and the train-click features; no bag (a tree has no use
  for a set of ids: `history_cowatch_*` is its summary of the bag against the candidate);
- popularity: `candidate_train_clickers` alone.
Every model also gets the click factors as numerics (`--no-click-factors` leaves them out): a
per-day PureSVD of the train clicks known before the row's day, the user's and the candidate's
16-wide factors and their dot product (bench/ranking_features.py::`click_factor_features`). The
factors are the baselines' form of what the ranker's embeddings learn (who clicked what); HGB
gains from them on both datasets and LR on simulated data, the ranker on neither.
On simulated data (a home `vidrec simulate` wrote, or its export) three ceiling rows follow the
models: the holdout scored by the simulator's ground truth (bench/ranking_ceiling.py: expected
watch seconds, the same without the latent style term, and true affinity). They are fit on
nothing and compared with nothing: they say how much of what is knowable the models reach.
The train-click features (bench/ranking_features.py::`train_click_features`) come from the
frame's train-split clicks only, and a click counts only for rows on days after it settled (its
request start + 1 hour): how many users clicked the candidate, and how often the candidate was
clicked by users who clicked the videos in this user's recent-watch bag (count, and share).

Tuning. Every tuned model gets the project's one search (models/evaluation/tuning.py: Optuna's
TPE, seeded) for the best validation value of one `--selection-metric`, the same for every model:
`log_loss` (the default: the watch-time-weighted log loss of the watch-time log-odds), `gauc` or
`pairwise_loss` (of the final score, as the holdout tables report them; for our ranker that score
includes its heads calibrated on the same validation rows). Each trial is a fit with seed 0, over
the model's space in bench/ranking_models.py
(ours: epochs, weight decay and learning rate, and its shape, dropout and DCN-v2 cross layers;
HGB: rate, leaves, L2, leaf size; LR: C): `--trials` trials per round; a best point near an edge of
its range that is not a hard limit widens that edge, and another round of `--trials` trials runs
from the best point so far, at most `--max-widenings` times per model. The tuning table says how
many rounds each model took and which edges moved.

Seeds and intervals. The chosen configuration of every stochastic model (ranker, HGB) is fit
with `--seeds` seeds and scores the holdout once per seed; LR (lbfgs) and popularity are
deterministic and run once. GAUC and the pairwise loss are ratios of per-user sums
(models/ranking/evaluate.py::user_components); each user's numerator is averaged over seeds
(denominators do not depend on the model), so the point estimate is the mean over seeds of the
per-seed metric and the interval is for the seed-averaged model. Users are resampled
(`--resamples`, percentile 95 % intervals, models/evaluation/bootstrap.py); every comparison
with our ranker is paired (the same resampled users for both), and "beats" means the paired
interval of the difference excludes 0. The spread over seeds is printed beside.

The holdout is touched only by the chosen configuration of each model, once per seed; the MLflow
run (experiment `vidrec-benchmarks`) lists them (`holdout_configurations.json`, tag
`holdout_touches`) with when they happened (each touch's UTC time; tag `holdout_read_at`), and so
do the `--results-json` file (`touches`) and the report's last line.

Code. This module parses the arguments and runs (or rebuilds) a benchmark; each job beside it,
in bench/, has a module of its own:
- ranking_data.py: the ranking frame and ranker inputs from a home, `--export` and `--frame-dir`;
- ranking_features.py: the train-click features, and the frame and ranker config the run uses;
- ranking_models.py: the models (`ModelSpec`, their fitters), search spaces, validation loss;
- ranking_protocol.py: tuning on validation, then the holdout once per seed; scoring latency;
- ranking_tables.py: the bootstrap intervals and the report's Markdown tables;
- ranking_results.py: what a report is built from (`Outcome`) and its `--results-json` file;
- ranking_mlflow.py: the MLflow run;
- ranking_ceiling.py (also a script): the ground-truth ceiling rows of simulated data;
- ranking_variants.py (a script of its own): which ranker variant to benchmark, chosen on the
  validation rows with the holdout dropped.
They import each other as top-level modules: `python bench/ranking.py` puts bench/ first on
sys.path.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from models.evaluation.bootstrap import DEFAULT_RESAMPLES
from models.ranking.train import training_device
from vidrec.settings import VidrecSettings

from ranking_ceiling import score_ceilings
from ranking_data import (
    FRAME_FILE,
    INPUTS_FILE,
    export_frame,
    exported_frame,
    exported_ground_truth,
    home_ground_truth,
    pipeline_frame_path,
    pipeline_inputs,
)
from ranking_features import benchmark_frame
from ranking_mlflow import log_to_mlflow
from ranking_models import DEFAULT_MODELS, DEFAULT_SELECTION, MODELS, OURS, POPULARITY, SELECTION_METRICS
from ranking_protocol import run, score_latency_ms
from ranking_results import Outcome, merge_outcomes, read_results, write_results
from ranking_tables import report_footer, report_header, report_of, summarise


def benchmark(args: argparse.Namespace) -> Outcome:
    torch.set_num_threads(args.threads)
    if args.frame_dir:
        frame, inputs = exported_frame(args.frame_dir)
        source, ground_truth = str(args.frame_dir), exported_ground_truth(args.frame_dir)
    else:
        settings = _settings(args.home)
        frame, inputs = pd.read_parquet(pipeline_frame_path(settings, args.frame)), pipeline_inputs(settings)
        source, ground_truth = str(settings.home), home_ground_truth(settings)
    frame, config = benchmark_frame(frame, inputs, args.click_factors)
    config = replace(config, device=args.device)
    holdout = frame[frame["split"] == "holdout"]
    setup = {"dataset": args.dataset, "source": source, "rows": len(frame), "holdout_rows": len(holdout),
             "holdout_users": int(holdout["user_id"].nunique()), "seeds": list(range(args.seeds)),
             "trials": args.trials, "max_widenings": args.max_widenings, "selection_metric": args.selection_metric,
             "resamples": args.resamples or DEFAULT_RESAMPLES, "models": args.models, "threads": args.threads,
             "device": args.device, "ground_truth": str(ground_truth) if ground_truth else None,
             "click_factors": args.click_factors}
    print(report_header(setup))
    if args.seeds < 5:
        print(f"note: {args.seeds} seeds; reported numbers need at least 5")

    started = time.perf_counter()
    tunings, results, touches = run(frame, config, args.models, setup["seeds"], args.trials, args.max_widenings,
                                    args.selection_metric)
    ours = next((scored for scored in results if scored.model == OURS), None)
    if ours is not None and ground_truth is not None:  # one part of a run scores the ceilings
        results += score_ceilings(holdout, ground_truth, touches)
    if ours is not None:  # a part without our ranker (merged later by --from-results) has no latency
        sample = frame.sample(min(500, len(frame)), random_state=0).drop(
            columns=["clicked", "watch_seconds", "liked", "shared", "disliked", "position", "split"], errors="ignore")
        setup.update(latency_rows=len(sample), latency_ms=score_latency_ms(ours.bundle, sample))
    setup.update(wall_seconds=time.perf_counter() - started)
    return Outcome(setup, tunings, results, touches)


def _settings(home: Path | None) -> VidrecSettings:
    return VidrecSettings(home=home) if home else VidrecSettings()


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--home", type=Path, help="a VIDREC_HOME where `vidrec pipeline` ran (default: VIDREC_HOME)")
    parser.add_argument("--dataset", default="simulated", help="the label results are logged under (data: --home)")
    parser.add_argument("--frame", type=Path, help="ranking frame Parquet; default <home>/artifacts/...")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--export", type=Path, metavar="DIR",
                      help=f"write the home's ranking frame and ranker inputs to DIR/{FRAME_FILE} and "
                           f"DIR/{INPUTS_FILE}, then exit")
    mode.add_argument("--frame-dir", type=Path, metavar="DIR",
                      help="benchmark on what --export wrote to DIR instead of a home (needs no Feast)")
    mode.add_argument("--from-results", type=Path, nargs="+", metavar="PATH",
                      help="rebuild the report (and MLflow run) from --results-json files, one or the parts "
                           "of one run; nothing is trained")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated, '{OURS}' first; known: {', '.join([*MODELS, POPULARITY])}. "
                             f"A part of a run (e.g. one process per model) may leave '{OURS}' out when it "
                             "writes --results-json without a report; --from-results merges the parts")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per stochastic model (≥ 5 for reported numbers)")
    parser.add_argument("--trials", type=int, default=12, help="Optuna trials per model and search round")
    parser.add_argument("--max-widenings", type=int, default=2, help="edge widenings per model, at most")
    parser.add_argument("--selection-metric", choices=list(SELECTION_METRICS), default=DEFAULT_SELECTION,
                        help="the validation metric every model's search picks its trial by (the same for all)")
    parser.add_argument("--resamples", type=int, default=None,
                        help=f"bootstrap resamples of users (default {DEFAULT_RESAMPLES}; "
                             "with --from-results, the file's)")
    parser.add_argument("--click-factors", action=argparse.BooleanOptionalAction, default=True,
                        help="give every model the per-day click factors (bench/ranking_features.py); on by "
                             "default since 2026-12-06: HGB and LR use them (docs/benchmarks.md)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the latency budget assumes ≤ 2)")
    parser.add_argument("--device", default="cpu", help="where our ranker trains: cpu, cuda, cuda:1, ...")
    parser.add_argument("--results-json", type=Path, metavar="PATH",
                        help="also write what the report is built from (per-user components, tunings) to PATH")
    parser.add_argument("--mlflow-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in args.models if name not in MODELS and name != POPULARITY]
    args.part = OURS not in args.models
    if args.part and not (args.results_json and args.no_mlflow):
        parser.error(f"--models without '{OURS}' is a part of a run: it needs --results-json and --no-mlflow "
                     "(merge the parts with --from-results)")
    if unknown or not args.models or (not args.part and args.models[0] != OURS):
        parser.error(f"--models must start with '{OURS}' and name known models; got {args.models}")
    if args.seeds < 1 or args.trials < 1 or args.max_widenings < 0:
        parser.error("--seeds and --trials must be at least 1, --max-widenings at least 0")
    if args.frame_dir and (args.home or args.frame):
        parser.error("--frame-dir reads the exported frame; it takes no --home or --frame")
    if not (args.export or args.from_results):
        try:
            training_device(args.device)
        except ValueError as error:
            parser.error(f"--device: {error}")
    return args


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    # tuning trains ours on the train split alone: its "no holdout rows" warning is expected
    logging.getLogger("models.ranking.train").setLevel(logging.ERROR)
    if args.export:
        export_frame(_settings(args.home), args.frame, args.export)
        print(f"wrote {args.export / FRAME_FILE} and {args.export / INPUTS_FILE}")
        return
    if args.from_results:
        outcome = merge_outcomes([read_results(path) for path in args.from_results], OURS)
        outcome.setup["resamples"] = args.resamples or outcome.setup["resamples"]
        print(report_header(outcome.setup))
    else:
        outcome = benchmark(args)
    if not args.from_results and args.part:
        write_results(outcome, args.results_json)
        print(f"part of a run ({', '.join(args.models)}): {args.results_json}; "
              f"merge it with the part holding '{OURS}' by --from-results")
        return
    summaries = summarise(outcome.results, outcome.setup["resamples"])
    report = report_of(outcome, summaries)
    print(report)
    print(f"\n{report_footer(outcome.setup, outcome.touches)}")
    if args.results_json:
        write_results(outcome, args.results_json)
        print(f"results: {args.results_json}")
    if not args.no_mlflow:
        log_to_mlflow(args.mlflow_uri, _settings(args.home), outcome, summaries, report)


if __name__ == "__main__":
    main()
