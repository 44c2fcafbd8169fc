"""Candidate generator vs. retrieval baselines under one protocol (models/evaluation/protocol.py).

    .venv/bin/python bench/retrieval.py --dataset simulated            # the simulator's default world
    .venv/bin/python bench/retrieval.py --dataset ml-100k              # ../shared/data/ml-100k, read in place
    .venv/bin/python bench/retrieval.py --data-dir VIDREC_HOME/raw     # any `vidrec simulate` / `vidrec import` output
      [--split {global,per-user}] [--trials 12] [--seeds 5] [--methods NAME ...] [--device cuda]
      [--query-at {cutoff,last-interaction}] [--holdout {test,validation}]
      [--results-dir DIR] [--report-from DIR] [--mlflow-uri URI | --no-mlflow]

The split is a global time cut-off by default (test = first interactions in the last
`--test-fraction` of time, for users with history before it); validation is the same cut inside
the train period. `--split per-user` (each user's last fraction) leaks the future, and the report's
first line says so.

Every method, ours included, is tuned by the same Optuna search (`models.evaluation.tuning.py`):
`--trials` trials per round on validation `--tuning-metric`, a winner on a range edge widens it and
searches again (at most `--max-widenings` times). The chosen configuration is then fitted on train
once per seed (`--seeds`, stochastic methods only) and scored on test and on the cold-start slice
(test videos nobody interacted with before the cut, ranked among never-seen videos only): test
is read once per chosen configuration, and the MLflow run lists those reads (`test_reads.json`).
Each metric is printed with a user-level bootstrap 95% interval of the seed-averaged per-user
values, and every method's paired difference from the candidate generator with its interval:
"beats" in a table means that interval excludes 0.

Every method is asked at the split's cut-off (`TemporalSplit.query_time`), as production asks at
request time: any "now" a method measures from (a recent-popularity window, the freshness logit,
an example's age) is the cut, the same for all. `--query-at last-interaction` asks each user as of
their own last train interaction instead, for every method (how tables before 2026-12-05 were
measured). `--holdout validation` scores the validation split (tuning on the same cut inside its
train period) and never reads test: for deciding a change before the one test read.

What each method sees (equal access: the same interactions with their times):
- most_popular: distinct users per video in a tuned recent window (a freshness signal);
- item_knn, ease: the item-item model on the binary matrix, queried with a tuned recency decay on
  the user's history (the newest watch weighs 1, the i-th newest decay^i);
- als, bpr: matrix factorisation (implicit);
- sasrec: a causal self-attention model over each user's ordered history (sequence and recency);
- candidate_generator: our two-tower model with recency-weighted history, the watched videos'
  content, demographics, searches and the freshness logit.

Methods can run in separate processes: `--methods ease --results-dir DIR` stores that method's
run; `--report-from DIR` builds the table from every stored run of the dataset.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's ALS runs badly over a BLAS thread pool

import numpy as np
import pandas as pd
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from models.baselines import ALS, BPR, EASE, ItemKNN, MostPopular, SASRec
from models.baselines.candidate_generator import CandidateGeneratorRecommender
from models.baselines.harness import (
    HarnessSettings,
    MethodRun,
    MethodSpec,
    prepare_splits,
    run_harness,
    summary_table,
    test_reads,
)
from models.baselines.multi_source import MultiSourceUnion
from models.evaluation import datasets
from models.evaluation.datasets import RetrievalDataset
from models.evaluation.tuning import Choice, FloatRange, IntRange
from models.retrieval.config import RetrievalConfig

EXPERIMENT = "vidrec-benchmarks"
REFERENCE = "candidate_generator"
TABLE_METRICS = ("recall@50", "recall@100", "ndcg@10")
COLD_METRICS = ("recall@10", "ndcg@10")  # few new videos: recall@100 is trivially 1 among them
RECENCY_DECAY = FloatRange(0.7, 1.0, hard_high=1.0)  # 1.0 = the order-free binary history

# The freshness logit (video age at the query's reference time) is on: it is part of our model.
# Epochs are tuned here, every one of them run on every train row (no early stopping).
CANDIDATE_GENERATOR_BASE = RetrievalConfig(show_progress=False, video_age_logit=True, early_stopping_patience=None)


def affinity_metrics(dataset: RetrievalDataset):
    """Ground-truth metrics from the simulator's true affinity (None for other data):

    - `true_p@10`: share of a user's top-10 in that user's true top 10% of the catalog (random: 0.10);
    - `true_aff@10`: mean true affinity of the top-10 minus the user's catalog mean (random: 0).
    """
    if dataset.true_affinity is None:
        return None
    catalog_ids = dataset.catalog_ids
    position = pd.Index(catalog_ids)

    def compute(recommendations: dict[int, list[int]]) -> dict[str, float]:
        users = np.fromiter(recommendations, dtype=np.int64)
        affinity = dataset.true_affinity(users, catalog_ids)  # (users, catalog)
        threshold = np.quantile(affinity, 0.9, axis=1)
        precision, lift = [], []
        for row, user in enumerate(users):
            columns = position.get_indexer(recommendations[int(user)][:10])
            top = affinity[row, columns[columns >= 0]]
            precision.append(float((top > threshold[row]).sum()) / 10.0)
            lift.append(float(top.mean() - affinity[row].mean()) if len(top) else 0.0)
        return {"true_p@10": float(np.mean(precision)), "true_aff@10": float(np.mean(lift))}

    return compute


def method_specs(dataset: RetrievalDataset, device: str, quick: bool) -> list[MethodSpec]:
    """Every method with its search space; ranges start where earlier runs found the optimum and
    widen themselves when the winner sits on an edge."""

    def candidate_generator(seed: int = 0, **params) -> CandidateGeneratorRecommender:
        config = replace(CANDIDATE_GENERATOR_BASE, seed=seed, device=device, **params)
        return CandidateGeneratorRecommender(dataset.catalog, config, dataset.demographics, dataset.searches)

    def multi_source_union(seed: int = 0, **params) -> MultiSourceUnion:
        return MultiSourceUnion(candidate_generator(seed, **params), dataset.catalog, dataset.subscriptions,
                                dataset.impressions)

    def sasrec(seed: int = 0, **params) -> SASRec:
        return SASRec(seed=seed, device=device, **params)

    if quick:
        return [
            MethodSpec("most_popular", MostPopular, {"recency_window_days": FloatRange(1.0, 30.0, log=True)}),
            MethodSpec("ease", EASE, {"l2": FloatRange(10.0, 1000.0, log=True), "recency_decay": RECENCY_DECAY}),
            MethodSpec("sasrec", lambda seed=0, **p: sasrec(seed, epochs=2, **p), {}, seeded=True),
            MethodSpec(REFERENCE, lambda seed=0, **p: candidate_generator(seed, epochs=1, **p), {}, seeded=True),
        ]
    return [
        MethodSpec("most_popular", MostPopular, {"recency_window_days": FloatRange(0.1, 60.0, log=True)}),
        MethodSpec("item_knn", ItemKNN, {"neighbours": IntRange(10, 500, log=True), "recency_decay": RECENCY_DECAY}),
        MethodSpec("ease", EASE, {"l2": FloatRange(10.0, 3000.0, log=True), "recency_decay": RECENCY_DECAY}),
        MethodSpec("als", ALS, {
            "factors": IntRange(16, 256, log=True), "regularization": FloatRange(1e-3, 10.0, log=True),
            "alpha": FloatRange(0.5, 50.0, log=True), "iterations": IntRange(5, 40),
        }, seeded=True),
        MethodSpec("bpr", BPR, {
            "factors": IntRange(16, 256, log=True), "learning_rate": FloatRange(1e-3, 0.1, log=True),
            "regularization": FloatRange(1e-4, 0.1, log=True), "iterations": IntRange(20, 300, log=True),
        }, seeded=True),
        MethodSpec("sasrec", sasrec, {
            "hidden_dim": Choice((32, 64, 128)), "num_layers": IntRange(1, 3), "dropout": FloatRange(0.0, 0.5),
            "epochs": IntRange(5, 60, log=True), "learning_rate": FloatRange(1e-3, 1e-2, log=True),
        }, seeded=True),
        MethodSpec(REFERENCE, candidate_generator, {
            "epochs": IntRange(2, 12), "learning_rate": FloatRange(1e-3, 1e-2, log=True),
            "feature_embedding_dim": Choice((16, 32)), "weight_decay": FloatRange(1e-8, 1e-4, log=True),
        }, seeded=True),
        MethodSpec("multi_source_union", multi_source_union, params_from=REFERENCE, seeded=True),
    ]


DEFAULT_METHODS = ("most_popular", "item_knn", "ease", "als", "bpr", "sasrec", REFERENCE)


def without_recommendations(run: MethodRun) -> MethodRun:
    """The run as stored: the ranked lists are dropped (the report needs per-user values only)."""
    return replace(run, evaluations={slice: [replace(evaluation, recommendations={}) for evaluation in evaluations]
                                     for slice, evaluations in run.evaluations.items()})


def load_dataset(args: argparse.Namespace) -> RetrievalDataset:
    if args.data_dir is not None:
        return datasets.from_raw_logs(args.data_dir.resolve())
    if args.dataset == "ml-100k":
        return datasets.ml100k(args.ml100k_dir.resolve())
    return datasets.simulated()


def _cell(value: float, low: float, high: float) -> str:
    return f"{value:.4f} [{low:.4f}, {high:.4f}]"


def markdown_table(table: pd.DataFrame, metrics, reference: str | None) -> str:
    """Each metric with its interval; then the paired difference from `reference` per metric."""
    compared = reference is not None
    header = ["method", "seeds", *metrics, *(f"ours − method, {metric}" for metric in metrics if compared)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    verdicts = {"reference better": "**ours better**", "reference worse": "**ours worse**"}
    for method, row in table.iterrows():
        cells = [method, str(int(row["seeds"]))]
        cells += [_cell(row[m], row[f"{m} low"], row[f"{m} high"]) for m in metrics]
        if compared and method == reference:
            cells += ["—"] * len(metrics)
        elif compared:
            cells += [f"{_cell(row[f'{m} Δ'], row[f'{m} Δ low'], row[f'{m} Δ high'])} "
                      f"{verdicts.get(row[f'{m} verdict'], 'no difference')}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def extra_table(runs: dict[str, MethodRun]) -> str:
    """Metrics without per-user values (ground truth, coverage): mean ± sd over seeds."""
    names = [name for name in runs[next(iter(runs))].evaluations["all"][0].metrics
             if name.startswith(("true_", "coverage@"))]
    lines = ["| method | " + " | ".join(names) + " | fit s | tune s | trials |", "|---" * (len(names) + 4) + "|"]
    for method, run in runs.items():
        cells = [f"{np.mean(run.seed_values(n)):.4f} ± {np.std(run.seed_values(n)):.4f}" for n in names]
        trials = len(run.tuning.trials) if run.tuning is not None else 0
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {np.mean(run.fit_seconds):.1f} | {run.tune_seconds:.0f} | {trials} |")
    return "\n".join(lines)


def split_header(name: str, num_interactions: int, catalog_size: int, split: dict, settings: HarnessSettings) -> str:
    """What the table was measured on, from `TemporalSplit.describe()`; a leaking split says so first."""
    cutoff = f"cut-off {split['cutoff']}" if split["kind"] == "global" else "each user's last fraction"
    asked = ("each user at their last train interaction" if settings.query_at == "last_interaction"
             or split["query_time"] is None else "every user at the cut-off")
    lines = [
        f"dataset {name}: {num_interactions} interactions, catalog {catalog_size}; split {split['kind']} "
        f"({cutoff}): {split['train_interactions']} train first interactions; test {split['test_users']} users, "
        f"{split['test_interactions']} interactions; cold-start slice {split['cold_test_users']} users, "
        f"{split['cold_test_interactions']} interactions on {split['cold_items']} new videos; tuned on validation "
        f"{settings.tuning_metric} with {settings.trials} Optuna trials per round (≤ {settings.max_widenings} "
        f"widenings); stochastic methods × {len(settings.seeds)} seeds; intervals: user-level bootstrap 95%; "
        f"methods asked {asked}",
    ]
    if settings.holdout == "validation":
        lines.insert(0, "VALIDATION HOLDOUT: scored on the validation split (tuned on the same cut inside its train "
                        "period); test was not read.")
    if split["leaks_future"]:
        lines.insert(0, "WARNING: the per-user split leaks the future (train holds interactions later than other "
                        "users' test interactions); use --split global for numbers that predict production.")
    return "\n".join(lines)


def report(dataset: RetrievalDataset, runs: dict[str, MethodRun], split, settings: HarnessSettings) -> str:
    reference = REFERENCE if REFERENCE in runs else None
    parts = [split_header(dataset.name, len(dataset.interactions), len(dataset.catalog_ids), split.describe(),
                          settings),
             "", "### All test users", "",
             markdown_table(summary_table(runs, TABLE_METRICS, reference), TABLE_METRICS, reference), ""]
    if "cold_start" in settings.slices:
        parts += ["### Cold-start slice (videos first seen after the cut)", "",
                  markdown_table(summary_table(runs, COLD_METRICS, reference, slice="cold_start"), COLD_METRICS,
                                 reference), ""]
    parts += ["### Seed spread, ground truth, cost", "", extra_table(runs), "",
              "tuned hyper-parameters (chosen on validation):"]
    for name, run in runs.items():
        widened = f" (widened: {'; '.join(run.tuning.widened)})" if run.tuning and run.tuning.widened else ""
        parts.append(f"- {name}: {json.dumps(run.params)}{widened}")
    return "\n".join(parts)


def log_to_mlflow(uri: str, dataset: RetrievalDataset, settings: HarnessSettings, runs, split, text: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"retrieval-{dataset.name}") as run:
        mlflow.log_params({"bench": "retrieval", "dataset": dataset.name, "split": settings.split_kind,
                           "query_at": settings.query_at, "holdout": settings.holdout,
                           "tuning_metric": settings.tuning_metric, "trials_per_round": settings.trials,
                           "seeds": len(settings.seeds)})
        mlflow.log_params({f"split.{key}": str(value) for key, value in split.describe().items()})
        for name, method_run in runs.items():
            mlflow.log_param(f"{name}.params", json.dumps(method_run.params)[:500])
            for metric in TABLE_METRICS:
                mlflow.log_metric(f"{name}.{metric.replace('@', '_at_')}",
                                  float(np.mean(method_run.seed_values(metric))))
        reads = test_reads(runs.values())
        if settings.holdout == "validation":
            mlflow.log_text(json.dumps(reads, indent=2), "validation_reads.json")
            mlflow.set_tag("test_read_by", "")
        else:
            mlflow.log_text(json.dumps(reads, indent=2), "test_reads.json")
            mlflow.set_tag("test_read_by", ", ".join(runs))
        mlflow.log_text(text, "retrieval_table.md")
        return run.info.run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["simulated", "ml-100k"], default="simulated")
    parser.add_argument("--data-dir", type=Path, help="a raw-log directory (VIDREC_HOME/raw) instead of --dataset")
    parser.add_argument("--ml100k-dir", type=Path, default=REPO_ROOT / "../shared/data/ml-100k")
    parser.add_argument("--split", choices=["global", "per-user"], default="global",
                        help="global time cut-off (default) or each user's last fraction (leaks the future)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--query-at", choices=["cutoff", "last-interaction"], default="cutoff",
                        help="when every method asks: at the cut-off (default, as production) or at each user's "
                             "last train interaction")
    parser.add_argument("--holdout", choices=["test", "validation"], default="test",
                        help="validation: score the validation split, tune inside its train period, never read test")
    parser.add_argument("--tuning-metric", default="recall@50")
    parser.add_argument("--trials", type=int, default=12, help="Optuna trials per round, the same for every method")
    parser.add_argument("--max-widenings", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5, help="seeds per stochastic method (0 .. N-1)")
    parser.add_argument("--methods", nargs="*", help=f"default: {' '.join(DEFAULT_METHODS)} (also: multi_source_union)")
    parser.add_argument("--quick", action="store_true", help="tiny searches and 1 epoch (smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--device", default="cpu", help="torch device for the neural methods (cuda on a GPU machine)")
    parser.add_argument("--results-dir", type=Path, help="store each method's run here (one file per method)")
    parser.add_argument("--report-from", type=Path, help="build the report from the runs stored in this directory")
    parser.add_argument("--mlflow-uri", help="default: VidrecSettings().mlflow_tracking_uri")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("models.retrieval.train", "models.sources", "models.evaluation.tuning"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    dataset = load_dataset(args)
    settings = HarnessSettings(test_fraction=args.test_fraction, split_kind=args.split.replace("-", "_"),
                               tuning_metric=args.tuning_metric, trials=args.trials,
                               max_widenings=args.max_widenings, seeds=tuple(range(args.seeds)),
                               query_at=args.query_at.replace("-", "_"), holdout=args.holdout)
    if args.report_from is not None:
        split, _ = prepare_splits(dataset.interactions, settings)
        runs = {path.stem: pickle.loads(path.read_bytes())
                for path in sorted((args.report_from / dataset.name).glob("*.pkl"))}
        runs = {name: runs[name] for name in [*DEFAULT_METHODS, "multi_source_union"] if name in runs}
    else:
        specs = {spec.name: spec for spec in method_specs(dataset, args.device, args.quick)}
        names = args.methods or [name for name in DEFAULT_METHODS if name in specs]
        unknown = [name for name in names if name not in specs]
        if unknown:
            raise SystemExit(f"unknown method(s) {unknown}; expected some of {list(specs)}")

        def store(run: MethodRun) -> None:
            target = args.results_dir / dataset.name / f"{run.name}.pkl"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(pickle.dumps(without_recommendations(run)))

        try:
            result = run_harness(dataset.interactions, [specs[name] for name in names], len(dataset.catalog_ids),
                                 settings, affinity_metrics(dataset), on_run=store if args.results_dir else None)
        except ValueError as error:  # e.g. a method listed without the one whose parameters it takes
            raise SystemExit(str(error)) from error
        runs, split = result.runs, result.split
    if not runs:
        raise SystemExit("no method runs to report")
    text = report(dataset, runs, split, settings) + f"\n\nwall time {time.perf_counter() - started:.0f} s"
    print(text)
    if not args.no_mlflow:
        from vidrec.settings import VidrecSettings

        uri = args.mlflow_uri or VidrecSettings().mlflow_tracking_uri
        print(f"MLflow run {log_to_mlflow(uri, dataset, settings, runs, split, text)} at {uri}")


if __name__ == "__main__":
    main()
