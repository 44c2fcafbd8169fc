"""Ranker benchmark: our multi-task ranker vs logistic regression and HistGradientBoosting on the
same features, under the frame's temporal split, with calibration and scoring latency.

    # the default simulated data: a finished `vidrec pipeline` in VIDREC_HOME (default .vidrec)
    .venv/bin/python bench/ranking.py --dataset simulated
    # MovieLens 100k: import it into its own home and run the pipeline there first
    VIDREC_HOME=/tmp/ml100k .venv/bin/vidrec import movielens /work/shared/data/ml-100k
    VIDREC_HOME=/tmp/ml100k .venv/bin/vidrec pipeline
    VIDREC_HOME=/tmp/ml100k .venv/bin/python bench/ranking.py --dataset ml-100k

Both datasets are read the way the pipeline's ranking_model asset reads them: the ranking
training frame the pipeline built through Feast (`<home>/artifacts/ranking_training_frame.parquet`,
every click, the whole holdout and a weighted sample of the other non-clicks) with the feature
lists of the `ranker_features`
service (`feature_repo.feature_columns.ranker_inputs`), cross features from the
`candidate_engagement` on-demand view included. For MovieLens the impressions are SYNTHETIC: the
importer samples 4 unrated movies next to each rating. Every model is scored on
`split == 'holdout'` (the pipeline's temporal holdout); baselines are trained on the rows our
ranker fits on ('train' less the last 10% by time, which our ranker keeps for calibration), with
the same watch-time-weighted objective as our watch_time head (positives weigh their watch
seconds), so the comparison is of model capacity, not of data or objective. Each model's
hyper-parameters are chosen from a small grid by that objective on the held-back 10% (validation),
never on the holdout. Prints the tuning and result tables and logs them to MLflow (experiment
`vidrec-benchmarks`).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from feature_repo.feature_columns import ranker_inputs
from feature_repo.store import feature_store
from models.ranking.config import RankerConfig
from models.ranking.evaluate import ranking_report
from models.evaluation.ranking_metrics import log_loss
from models.ranking.labels import watch_time_labels
from models.ranking.preprocessing import FeaturePreprocessor
from models.ranking.train import split_calibration_rows, train_ranker
from vidrec.settings import VidrecSettings

Scorer = Callable[[pd.DataFrame], np.ndarray]  # a fitted model: frame → log-odds per row

# Hyper-parameters tried per model; each model keeps the point with the lowest validation_loss on
# the validation rows (the last 10 % of train by time: our ranker's calibration rows, which no
# model fits on). Ours: epochs × weight decay (longer training needs the decay: without it the
# id embeddings overfit within a few epochs).
RANKER_GRID = ({"epochs": 3, "weight_decay": 0.0}, {"epochs": 24, "weight_decay": 1e-3},
               {"epochs": 36, "weight_decay": 1e-3}, {"epochs": 48, "weight_decay": 1e-3})
LOGISTIC_REGRESSION_GRID = ({"inverse_regularization": 0.1}, {"inverse_regularization": 1.0},
                            {"inverse_regularization": 10.0})
GRADIENT_BOOSTING_GRID = ({"learning_rate": 0.1, "max_leaf_nodes": 31}, {"learning_rate": 0.05, "max_leaf_nodes": 15},
                          {"learning_rate": 0.1, "max_leaf_nodes": 63})

COLUMNS = [("gauc_clicked", "GAUC"), ("auc_clicked", "AUC click"), ("auc_watch_weighted", "AUC watch-w."),
           ("pairwise_loss_watch_weighted", "pairwise loss ↓"), ("ndcg_at_10_watch_seconds", "NDCG@10"),
           ("ece_click", "ECE click"), ("ece_like", "ECE like"), ("ece_skip", "ECE skip"),
           ("train_seconds", "train s")]


def pipeline_frame(settings: VidrecSettings, frame_path: Path | None = None) -> tuple[pd.DataFrame, RankerConfig]:
    """The pipeline's ranking frame of `settings.home` and the ranker config the pipeline trains."""
    path = frame_path or settings.artifacts_dir / "ranking_training_frame.parquet"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `vidrec pipeline` with VIDREC_HOME={settings.home} first")
    inputs = ranker_inputs(feature_store(settings))
    config = RankerConfig(categorical_features=list(inputs.categorical), numeric_features=list(inputs.numeric),
                          bag_features=list(inputs.lists), show_progress=False)
    return pd.read_parquet(path), config


# --- baselines ----------------------------------------------------------------------------------

def _design(preprocessor: FeaturePreprocessor, frame: pd.DataFrame):
    inputs = preprocessor.transform(frame)
    return inputs.categorical.numpy(), inputs.numeric.numpy()


def fit_logistic_regression(train: pd.DataFrame, config: RankerConfig, inverse_regularization: float = 1.0) -> Scorer:
    """Watch-time-weighted LR on one-hot categoricals + the quantile-normalised numerics (x̃, x̃²,
    √x̃, missing) our ranker sees + each bag as a normalised multi-hot; scores are log-odds."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    preprocessor = FeaturePreprocessor.fit(train, config)
    sizes = np.array(list(preprocessor.vocabulary_sizes.values()))
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def matrix(frame):
        categorical, numeric = _design(preprocessor, frame)
        rows = np.repeat(np.arange(len(frame)), categorical.shape[1])
        one_hot = sparse.csr_matrix((np.ones(rows.size), (rows, (categorical + offsets).ravel())),
                                    shape=(len(frame), int(sizes.sum())))
        return sparse.hstack([one_hot, sparse.csr_matrix(numeric), *_bag_matrices(preprocessor, frame)]).tocsr()

    labels, weights = watch_time_labels(train)
    model = LogisticRegression(C=inverse_regularization, max_iter=2000)
    model.fit(matrix(train), labels.astype(int), sample_weight=weights / weights.mean())
    return lambda frame: model.decision_function(matrix(frame))


def _bag_matrices(preprocessor: FeaturePreprocessor, frame: pd.DataFrame) -> list:
    """Per bag feature, a row-normalised multi-hot matrix over its vocabulary: LR's view of the
    bag the ranker averages embeddings of (known ids only, as the ranker sees them)."""
    from scipy import sparse

    bags = preprocessor.transform(frame).bags
    if bags is None:
        return []
    matrices = []
    for column, size in enumerate(preprocessor.bag_vocabulary_sizes.values()):
        ids = bags[:, column].numpy()
        rows, positions = np.nonzero(ids)
        counts = np.maximum((ids > 0).sum(axis=1), 1)
        matrices.append(sparse.csr_matrix((1.0 / counts[rows], (rows, ids[rows, positions])), shape=(len(frame), size)))
    return matrices


def fit_gradient_boosting(train: pd.DataFrame, config: RankerConfig, learning_rate: float = 0.1,
                          max_leaf_nodes: int = 31) -> Scorer:
    """Watch-time-weighted HistGradientBoosting on vocabulary indices (native categorical splits
    for vocabularies ≤ 255, ordinal codes above) + the numerics' CDF x̃ and missing flag; scores
    are log-odds. Bag features (the recent watches) are left out: a tree has no use for a
    variable-length set of ids short of hand-made summaries, which is the gap embeddings close."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    preprocessor = FeaturePreprocessor.fit(train, config)
    is_categorical = [size <= 255 for size in preprocessor.vocabulary_sizes.values()]

    def matrix(frame):
        categorical, numeric = _design(preprocessor, frame)
        return np.hstack([categorical, numeric[:, 0::4], numeric[:, 3::4]])

    labels, weights = watch_time_labels(train)
    mask = is_categorical + [False] * (2 * len(preprocessor.numeric))
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                                           categorical_features=np.array(mask), early_stopping=True,
                                           validation_fraction=0.1, random_state=0)
    model.fit(matrix(train), labels.astype(int), sample_weight=weights / weights.mean())
    return lambda frame: model.decision_function(matrix(frame))


def validation_loss(frame: pd.DataFrame, logits: np.ndarray) -> float:
    """The watch-time-weighted log loss (every model's training objective) on `frame`: what
    hyper-parameters are chosen by, for our ranker and the baselines alike."""
    clicked, weights = watch_time_labels(frame)
    return log_loss(clicked, 1.0 / (1.0 + np.exp(-logits)), sample_weight=weights)


# --- the benchmark ------------------------------------------------------------------------------

def score_latency_ms(bundle, frame: pd.DataFrame, calls: int = 200) -> float:
    """Median wall time of `bundle.score` on `frame` (preprocessing included), after a warm-up."""
    bundle.score(frame)
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        bundle.score(frame)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def run(frame: pd.DataFrame, config: RankerConfig) -> tuple[dict[str, dict[str, float]], dict, list[dict]]:
    """Every model learns from the same rows ('train' less its last `calibration_share` by time)
    and has its hyper-parameters chosen on those last rows (validation; our ranker also fits its
    calibrators there). Returns holdout metrics per model, our bundles, and every grid point tried
    with its validation loss."""
    train, validation = split_calibration_rows(frame[frame["split"] == "train"], config.calibration_share)
    holdout = frame[frame["split"] == "holdout"]
    results: dict[str, dict[str, float]] = {}
    bundles = {}
    tried: list[dict] = []

    def choose(model: str, grid, fit):
        best = None
        for point in grid:
            started = time.perf_counter()
            fitted = fit(point)
            seconds = time.perf_counter() - started
            loss = validation_loss(validation, fitted[1](validation))
            tried.append({"model": model, **point, "validation_loss": loss, "train_seconds": seconds})
            if best is None or loss < best[0]:
                best = (loss, point, fitted, seconds)
        return best

    def ranker(point):
        bundle = train_ranker(frame, replace(config, **point))
        return bundle, bundle.logits

    _, ranker_point, (bundle, _), _ = choose("ranker shared-bottom", RANKER_GRID, ranker)
    chosen = replace(config, **ranker_point)
    bundles["ranker shared-bottom"] = bundle
    bundles["ranker MMoE"] = train_ranker(frame, replace(chosen, architecture="mmoe"))
    bundles["ranker equal-weight LR (ablation)"] = train_ranker(frame, replace(chosen, watch_time_weighted=False))
    for name, trained in bundles.items():
        results[name] = {key.removeprefix("holdout_"): value for key, value in trained.metrics.items()}
    for name, grid, fit in (("logistic regression", LOGISTIC_REGRESSION_GRID, fit_logistic_regression),
                            ("HistGradientBoosting", GRADIENT_BOOSTING_GRID, fit_gradient_boosting)):
        _, _, (_, scorer), seconds = choose(name, grid, lambda point, fit=fit: (None, fit(train, config, **point)))
        results[name] = {**ranking_report(holdout, scorer(holdout)), "train_seconds": seconds}
    return results, bundles, tried


def tuning_table(tried: list[dict]) -> str:
    lines = ["| model | hyper-parameters | validation loss | train s |", "|---|---|---|---|"]
    best = {}
    for row in tried:
        if row["model"] not in best or row["validation_loss"] < best[row["model"]]:
            best[row["model"]] = row["validation_loss"]
    for row in tried:
        point = ", ".join(f"{key} {value}" for key, value in row.items()
                          if key not in ("model", "validation_loss", "train_seconds"))
        mark = " (chosen)" if row["validation_loss"] == best[row["model"]] else ""
        lines.append(f"| {row['model']} | {point}{mark} | {row['validation_loss']:.5f} | {row['train_seconds']:.0f} |")
    return "\n".join(lines)


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| model | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for name, metrics in results.items():
        cells = [f"{metrics[key]:.4f}" if key in metrics and key != "train_seconds" else
                 (f"{metrics[key]:.0f}" if key in metrics else "—") for key, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["simulated", "ml-100k"], default="simulated",
                        help="the name the results are logged under; the data is VIDREC_HOME's pipeline run")
    parser.add_argument("--frame", type=Path, help="ranking frame Parquet; default <VIDREC_HOME>/artifacts/...")
    parser.add_argument("--seed", type=int, default=0, help="the rankers' seed (baselines are deterministic)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the latency budget assumes ≤ 2)")
    parser.add_argument("--mlflow-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    settings = VidrecSettings()
    frame, config = pipeline_frame(settings, args.frame)
    source = f"{settings.home} (pipeline ranking frame)"
    if args.dataset == "ml-100k":
        source += "; impressions derived: rated movie + 4 sampled unrated movies per rating"
    config = replace(config, seed=args.seed)
    print(f"dataset: {args.dataset} from {source}; {len(frame)} rows, "
          f"{(frame['split'] == 'holdout').sum()} holdout; torch threads {args.threads}")

    results, bundles, tried = run(frame, config)
    sample = frame.sample(500, random_state=0).drop(
        columns=["clicked", "watch_seconds", "liked", "shared", "disliked", "position", "split"], errors="ignore")
    latency = score_latency_ms(bundles["ranker shared-bottom"], sample)
    latency_mmoe = score_latency_ms(bundles["ranker MMoE"], sample)
    table = markdown_table(results)
    tuning = tuning_table(tried)
    print(tuning)
    print(table)
    calibration_lines = ["| model | head | method | ECE before | ECE after |", "|---|---|---|---|---|"]
    for name, bundle in bundles.items():
        for head, entry in bundle.calibration.items():
            calibration_lines.append(f"| {name} | {head} | {entry.get('method')} | "
                                     f"{entry.get('ece_before', float('nan')):.4f} | {entry.get('ece_after', float('nan')):.4f} |")
    calibration_table = "\n".join(calibration_lines)
    print(calibration_table)
    print(f"bundle.score on 500 rows, median of 200 calls: shared-bottom {latency:.2f} ms, MMoE {latency_mmoe:.2f} ms")

    if not args.no_mlflow:
        import mlflow

        mlflow.set_tracking_uri(args.mlflow_uri or settings.mlflow_tracking_uri)
        mlflow.set_experiment(experiment_id=_experiment_id("vidrec-benchmarks", _artifact_location(args.mlflow_uri, settings)))
        with mlflow.start_run(run_name=f"ranking-{args.dataset}"):
            mlflow.log_params({"dataset": args.dataset, "source": source[:250],
                               "threads": args.threads, "seed": args.seed})
            for name, metrics in results.items():
                slug = name.split(" (")[0].replace(" ", "_").replace("-", "_")
                mlflow.log_metrics({f"{slug}.{key}": value for key, value in metrics.items() if np.isfinite(value)})
            mlflow.log_metrics({"score_500_rows_ms": latency, "score_500_rows_ms_mmoe": latency_mmoe})
            mlflow.log_text(table + "\n\n" + calibration_table + "\n\n" + tuning + "\n", "ranking_benchmark.md")
            for head, entry in bundles["ranker shared-bottom"].calibration_report().items():
                if "diagram_png" in entry:
                    mlflow.log_image(_png_to_array(entry["diagram_png"]), f"reliability_{head}.png")


def _artifact_location(mlflow_uri: str | None, settings: VidrecSettings) -> str | None:
    """The settings' artifact store; beside the database for `--mlflow-uri sqlite:///…/x.db`
    (never MLflow's default ./mlruns in the working directory)."""
    if mlflow_uri is None:
        return settings.mlflow_artifact_location
    if mlflow_uri.startswith("sqlite:///"):
        return (Path(mlflow_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return None


def _experiment_id(name: str, artifact_location: str | None) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def _png_to_array(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


if __name__ == "__main__":
    main()
