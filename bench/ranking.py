"""Ranker benchmark: our multi-task ranker vs logistic regression and HistGradientBoosting on the
same features, under the frame's temporal split, with calibration and scoring latency.

    .venv/bin/python bench/ranking.py --dataset simulated [--frame PATH]
    .venv/bin/python bench/ranking.py --dataset ml-100k [--data-dir /work/shared/data/ml-100k]

`simulated` reads `<VIDREC_HOME>/artifacts/ranking_training_frame.parquet` (a pipeline run).
`ml-100k` builds a ranking frame from MovieLens 100k (see `movielens_ranking_frame`): the
impressions are SYNTHETIC (sampled unwatched movies next to each rating). Every model is scored on
`split == 'holdout'`; baselines are trained on all 'train' rows with the same watch-time-weighted
objective as our watch_time head (positives weigh their watch seconds), so the comparison is of
model capacity, not of objective. Prints a Markdown table and logs it to MLflow (experiment
`vidrec-benchmarks`).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.ranking.config import RankerConfig
from models.ranking.evaluate import ranking_report
from models.ranking.labels import watch_time_labels
from models.ranking.preprocessing import FeaturePreprocessor
from models.ranking.train import train_ranker
from vidrec.settings import VidrecSettings

SIMULATED_CATEGORICAL = ["surface", "country", "device", "age_bucket", "gender", "category", "creator_id", "video_id"]
SIMULATED_NUMERIC = ["watch_count_28d", "watch_seconds_28d", "mean_watch_fraction_28d", "like_count_28d",
                     "active_days_28d", "user_impressions_7d", "user_clicks_7d", "duration_seconds",
                     "video_age_days", "impressions_7d", "clicks_7d", "ctr_7d", "watches_7d", "watch_seconds_7d",
                     "mean_watch_fraction_7d", "like_rate_7d", "watch_count_total"]
MOVIELENS_CATEGORICAL = ["video_id", "category", "age_bucket", "gender", "occupation"]
MOVIELENS_NUMERIC = ["user_ratings_so_far", "user_mean_rating_so_far", "user_category_share_so_far",
                     "item_ratings_so_far", "item_mean_rating_so_far", "video_age_days"]
MOVIE_SECONDS = 6000.0  # ml-100k has no runtimes: every movie "lasts" 100 minutes
WATCH_FRACTION_BY_RATING = {1: 0.1, 2: 0.3, 3: 0.55, 4: 0.8, 5: 1.0}
GENRES = ["unknown", "action", "adventure", "animation", "children", "comedy", "crime", "documentary", "drama",
          "fantasy", "film_noir", "horror", "musical", "mystery", "romance", "sci_fi", "thriller", "war", "western"]
COLUMNS = [("gauc_clicked", "GAUC"), ("auc_clicked", "AUC click"), ("auc_watch_weighted", "AUC watch-w."),
           ("pairwise_loss_watch_weighted", "pairwise loss ↓"), ("ndcg_at_10_watch_seconds", "NDCG@10"),
           ("ece_click", "ECE click"), ("ece_like", "ECE like"), ("ece_skip", "ECE skip"),
           ("train_seconds", "train s")]


# --- ml-100k ------------------------------------------------------------------------------------

def _count_and_sum_before(keys: np.ndarray, values: np.ndarray, group: np.ndarray, times: np.ndarray,
                          group_scale: int) -> tuple[np.ndarray, np.ndarray]:
    """For each query (group, time): how many rows of `group` happened strictly before `time`, and
    the sum of their `values`. `keys` = group × group_scale + time of the history rows."""
    order = np.argsort(keys, kind="stable")
    sorted_keys, cumulative = keys[order], np.concatenate([[0.0], np.cumsum(values[order])])
    start = np.searchsorted(sorted_keys, group * group_scale, side="left")
    stop = np.searchsorted(sorted_keys, group * group_scale + times, side="left")
    return (stop - start).astype(np.float64), cumulative[stop] - cumulative[start]


def movielens_ranking_frame(data_dir: Path, negatives_per_rating: int = 4, holdout_share: float = 0.2,
                            seed: int = 0, max_sampling_rounds: int = 30) -> pd.DataFrame:
    """A ranking frame from MovieLens 100k, leak-free by construction.

    Impressions are derived: each rating event is one request holding the rated movie (clicked)
    and `negatives_per_rating` distinct movies the user never rated, drawn from earlier rating
    events (so proportionally to popularity so far, among movies already rated by someone);
    rejected draws are redrawn (up to `max_sampling_rounds`), so slates have a fixed size. Labels: a rating
    is a click; watch_seconds = WATCH_FRACTION_BY_RATING[rating] × 6000 s (1★ → 10 %, a skip);
    liked = rating ≥ 4. Features use only ratings strictly before the event's timestamp: the
    user's count and mean rating so far, the share of those in the movie's genre, the movie's
    count and mean rating so far, days since release, the movie's first genre, and the user's
    demographics. Split: events in the last `holdout_share` of time are 'holdout'.
    """
    rng = np.random.default_rng(seed)
    ratings = pd.read_csv(data_dir / "u.data", sep="\t", names=["user_id", "video_id", "rating", "timestamp"])
    ratings = ratings.sort_values(["timestamp", "user_id", "video_id"], kind="stable").reset_index(drop=True)
    users = pd.read_csv(data_dir / "u.user", sep="|", names=["user_id", "age", "gender", "occupation", "zip"])
    items = pd.read_csv(data_dir / "u.item", sep="|", encoding="latin-1", header=None,
                        names=["video_id", "title", "release", "video_release", "url", *GENRES])
    genre_flags = items[GENRES].to_numpy()
    items["category"] = np.array(GENRES)[np.where(genre_flags.any(axis=1), genre_flags.argmax(axis=1), 0)]
    items["release_seconds"] = pd.to_datetime(items["release"], format="%d-%b-%Y").astype("int64") // 10**9

    # Impressions: the rated movie plus sampled unrated ones from earlier events. Rejected draws
    # (already rated by the user, or a repeat) are redrawn, so every slate holds
    # 1 + negatives_per_rating movies and the click rate stays 1 / (1 + negatives_per_rating)
    # over time instead of drifting with users' rating counts.
    rated = set((ratings["user_id"] * 10_000 + ratings["video_id"]).tolist())
    user_of_event = ratings["user_id"].to_numpy()
    item_of_event = ratings["video_id"].to_numpy()
    pending = np.repeat(np.arange(1, len(ratings)), negatives_per_rating)  # one entry per missing negative
    chosen: list[pd.DataFrame] = []
    taken: set[int] = set()
    for _ in range(max_sampling_rounds):
        if pending.size == 0:
            break
        candidate = item_of_event[(rng.random(pending.size) * pending).astype(np.int64)]
        draws = pd.DataFrame({"event": pending, "video_id": candidate})
        pair = draws["event"].to_numpy() * 10_000 + candidate
        valid = ~pd.Series(user_of_event[pending] * 10_000 + candidate).isin(rated).to_numpy()
        valid &= ~pd.Series(pair).isin(taken).to_numpy() & ~pd.Series(pair).duplicated().to_numpy()
        chosen.append(draws[valid])
        taken.update(pair[valid].tolist())
        pending = pending[~valid]
    negatives = pd.concat(chosen, ignore_index=True)
    positives = pd.DataFrame({"event": np.arange(len(ratings)), "video_id": ratings["video_id"].to_numpy()})
    frame = pd.concat([positives.assign(clicked=True), negatives.assign(clicked=False)], ignore_index=True)
    frame = frame.join(ratings[["user_id", "timestamp"]], on="event")
    frame["rating"] = np.where(frame["clicked"], ratings["rating"].to_numpy()[frame["event"]], 0)
    frame = frame.merge(users[["user_id", "age", "gender", "occupation"]], on="user_id", how="left")
    frame = frame.merge(items[["video_id", "category", "release_seconds"]], on="video_id", how="left")

    # Point-in-time features (strictly earlier ratings only).
    scale = 10**10
    history = ratings.merge(items[["video_id", "category"]], on="video_id")
    times = frame["timestamp"].to_numpy()
    user_count, user_sum = _count_and_sum_before(
        history["user_id"].to_numpy() * scale + history["timestamp"].to_numpy(), history["rating"].to_numpy(float),
        frame["user_id"].to_numpy(), times, scale)
    item_count, item_sum = _count_and_sum_before(
        history["video_id"].to_numpy() * scale + history["timestamp"].to_numpy(), history["rating"].to_numpy(float),
        frame["video_id"].to_numpy(), times, scale)
    genre_code = {genre: code for code, genre in enumerate(GENRES)}
    user_genre = lambda table: table["user_id"].to_numpy() * 100 + table["category"].map(genre_code).to_numpy()
    genre_count, _ = _count_and_sum_before(
        user_genre(history) * scale + history["timestamp"].to_numpy(), np.ones(len(history)),
        user_genre(frame), times, scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["user_ratings_so_far"] = user_count
        frame["user_mean_rating_so_far"] = np.where(user_count > 0, user_sum / user_count, np.nan)
        frame["user_category_share_so_far"] = np.where(user_count > 0, genre_count / user_count, np.nan)
        frame["item_ratings_so_far"] = item_count
        frame["item_mean_rating_so_far"] = np.where(item_count > 0, item_sum / item_count, np.nan)
    frame["video_age_days"] = (times - frame["release_seconds"].to_numpy(float)) / 86_400
    frame["age_bucket"] = pd.cut(frame["age"], [0, 17, 24, 34, 44, 54, 200],
                                 labels=["<18", "18-24", "25-34", "35-44", "45-54", "55+"]).astype(str)

    # Labels, request structure, split.
    frame["watch_seconds"] = frame["rating"].map(WATCH_FRACTION_BY_RATING).fillna(0.0) * MOVIE_SECONDS
    frame["duration_seconds"] = MOVIE_SECONDS  # label-side only (the skip definition), not a feature
    frame["liked"] = frame["rating"] >= 4
    frame["request_id"] = frame["event"].astype(str)
    frame["position"] = rng.integers(0, negatives_per_rating + 1, len(frame))  # no position effect here
    frame["surface"] = "home"
    frame["event_timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    frame["example_weight"] = 1.0
    cutoff = np.quantile(ratings["timestamp"], 1 - holdout_share)
    frame["split"] = np.where(frame["timestamp"] >= cutoff, "holdout", "train")
    return frame.sort_values(["event_timestamp", "request_id"], kind="stable").reset_index(drop=True)


# --- baselines ----------------------------------------------------------------------------------

def _design(preprocessor: FeaturePreprocessor, frame: pd.DataFrame):
    inputs = preprocessor.transform(frame)
    return inputs.categorical.numpy(), inputs.numeric.numpy()


def logistic_regression_scores(train: pd.DataFrame, holdout: pd.DataFrame, config: RankerConfig) -> np.ndarray:
    """Watch-time-weighted LR on one-hot categoricals + the quantile-normalised numerics (x̃, x̃²,
    √x̃, missing) our ranker sees; returns holdout log-odds."""
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
        return sparse.hstack([one_hot, sparse.csr_matrix(numeric)]).tocsr()

    labels, weights = watch_time_labels(train)
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(matrix(train), labels.astype(int), sample_weight=weights / weights.mean())
    return model.decision_function(matrix(holdout))


def gradient_boosting_scores(train: pd.DataFrame, holdout: pd.DataFrame, config: RankerConfig) -> np.ndarray:
    """Watch-time-weighted HistGradientBoosting on vocabulary indices (native categorical splits
    for vocabularies ≤ 255, ordinal codes above) + the numerics' CDF x̃ and missing flag."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    preprocessor = FeaturePreprocessor.fit(train, config)
    is_categorical = [size <= 255 for size in preprocessor.vocabulary_sizes.values()]

    def matrix(frame):
        categorical, numeric = _design(preprocessor, frame)
        return np.hstack([categorical, numeric[:, 0::4], numeric[:, 3::4]])

    labels, weights = watch_time_labels(train)
    mask = is_categorical + [False] * (2 * len(preprocessor.numeric))
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, categorical_features=np.array(mask),
                                           early_stopping=True, validation_fraction=0.1, random_state=0)
    model.fit(matrix(train), labels.astype(int), sample_weight=weights / weights.mean())
    return model.decision_function(matrix(holdout))


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


def run(frame: pd.DataFrame, config: RankerConfig) -> tuple[dict[str, dict[str, float]], dict]:
    train, holdout = frame[frame["split"] == "train"], frame[frame["split"] == "holdout"]
    results: dict[str, dict[str, float]] = {}
    bundles = {}
    variants = {
        "ranker shared-bottom": config,
        "ranker MMoE": replace(config, architecture="mmoe"),
        "ranker equal-weight LR (ablation)": replace(config, watch_time_weighted=False),
    }
    for name, variant in variants.items():
        bundle = train_ranker(frame, variant)
        results[name] = {key.removeprefix("holdout_"): value for key, value in bundle.metrics.items()}
        bundles[name] = bundle
    for name, fit in (("logistic regression", logistic_regression_scores),
                      ("HistGradientBoosting", gradient_boosting_scores)):
        started = time.perf_counter()
        scores = fit(train, holdout, config)
        results[name] = {**ranking_report(holdout, scores), "train_seconds": time.perf_counter() - started}
    return results, bundles


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
    parser.add_argument("--dataset", choices=["simulated", "ml-100k"], default="simulated")
    parser.add_argument("--frame", type=Path, help="ranking frame Parquet (simulated); default under VIDREC_HOME")
    parser.add_argument("--data-dir", type=Path, default=Path("/work/shared/data/ml-100k"))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="the rankers' seed (baselines are deterministic)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the latency budget assumes ≤ 2)")
    parser.add_argument("--mlflow-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    settings = VidrecSettings()

    if args.dataset == "simulated":
        path = args.frame or settings.home / "artifacts" / "ranking_training_frame.parquet"
        frame = pd.read_parquet(path)
        config = RankerConfig(categorical_features=SIMULATED_CATEGORICAL, numeric_features=SIMULATED_NUMERIC,
                              show_progress=False)
        source = str(path)
    else:
        frame = movielens_ranking_frame(args.data_dir)
        config = RankerConfig(categorical_features=MOVIELENS_CATEGORICAL, numeric_features=MOVIELENS_NUMERIC,
                              position_column=None, bias_surface_feature=None, show_progress=False)
        source = f"{args.data_dir} (impressions derived: rated movie + sampled unrated movies per rating)"
    config = replace(config, seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    print(f"dataset: {args.dataset} from {source}; {len(frame)} rows, "
          f"{(frame['split'] == 'holdout').sum()} holdout; torch threads {args.threads}")

    results, bundles = run(frame, config)
    sample = frame.sample(500, random_state=0).drop(
        columns=["clicked", "watch_seconds", "liked", "shared", "disliked", "position", "split"], errors="ignore")
    latency = score_latency_ms(bundles["ranker shared-bottom"], sample)
    latency_mmoe = score_latency_ms(bundles["ranker MMoE"], sample)
    table = markdown_table(results)
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
            mlflow.log_params({"dataset": args.dataset, "source": source[:250], "epochs": config.epochs,
                               "threads": args.threads, "seed": args.seed})
            for name, metrics in results.items():
                slug = name.split(" (")[0].replace(" ", "_").replace("-", "_")
                mlflow.log_metrics({f"{slug}.{key}": value for key, value in metrics.items() if np.isfinite(value)})
            mlflow.log_metrics({"score_500_rows_ms": latency, "score_500_rows_ms_mmoe": latency_mmoe})
            mlflow.log_text(table + "\n\n" + calibration_table + "\n", "ranking_benchmark.md")
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
