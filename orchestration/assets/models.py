"""Models layer: train, evaluate on the temporal holdout, log to MLflow, register a version.

Each asset logs one MLflow run (params, metrics, the bundle as a registered model version, the
Dagster run id and the data snapshot it saw). Promotion to `champion` is the deployment layer's
decision, not the trainer's: see `orchestration/assets/deployment.py`.
"""


import hashlib
import shutil
from dataclasses import asdict
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from feature_repo.feature_columns import REQUEST_CATEGORICAL_FEATURES, service_feature_columns
from feature_repo.store import feature_store
from models.evaluation.temporal_holdout import (
    DEFAULT_KS,
    HoldoutTask,
    build_holdout_task,
    evaluate_embeddings,
    evaluate_ranked_lists,
)
from models.index import INDEX_FILE, VideoIndex
from models.popularity import PopularityRecommender
from models.ranking.config import RankerConfig
from models.ranking.train import train_ranker
from models.registry import CANDIDATE_GENERATOR, POPULARITY, RANKER, VIDEO_INDEX, RegisteredArtifact, log_bundle
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.config import RetrievalConfig
from models.retrieval.train import train_candidate_generator
from orchestration.assets.features import (
    RANKER_SERVICE,
    ranking_frame_path,
    ranking_training_frame,
    retrieval_frame_path,
    retrieval_training_frame,
)
from orchestration.resources import MlflowResource, VidrecResource
from vidrec.settings import VidrecSettings

MODELS_GROUP = "models"
RECALL_AT_K_FOR_INDEX = 100


def holdout_start(settings: VidrecSettings) -> pd.Timestamp:
    """The temporal cut dbt computed (int_event_window), so Python and SQL agree on one split."""
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        return pd.Timestamp(connection.execute("select holdout_start from int_event_window").fetchone()[0])


def data_snapshot(settings: VidrecSettings) -> str:
    """An id of the raw data a model saw: a hash of the raw manifest plus the holdout cut."""
    manifest = (settings.raw_dir / "_manifest.json").read_bytes()
    digest = hashlib.sha256(manifest + str(holdout_start(settings)).encode()).hexdigest()
    return digest[:16]


def run_tags(context: AssetExecutionContext, settings: VidrecSettings) -> dict[str, str]:
    return {
        "dagster_run_id": context.run.run_id,
        "dagster_asset": context.asset_key.to_user_string(),
        "data_snapshot": data_snapshot(settings),
        "holdout_start": str(holdout_start(settings)),
    }


def holdout_task(settings: VidrecSettings) -> HoldoutTask:
    marts = settings.marts_dir
    return build_holdout_task(
        interactions=pd.read_parquet(marts / "watch_interactions.parquet"),
        history=pd.read_parquet(marts / "user_watch_history.parquet"),
        profiles=pd.read_parquet(
            marts / "user_features_daily.parquet",
            columns=["user_id", "event_timestamp", "country", "device", "age_bucket", "gender"],
        ),
        holdout_start=holdout_start(settings),
    )


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{name.replace('@', '_at_')}": float(value) for name, value in metrics.items()}


def _metric_table(rows: dict[str, dict[str, float]], keys: list[str]) -> str:
    header = "| method | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys) + "\n"
    body = "".join(
        f"| {method} | " + " | ".join(f"{values.get(key, float('nan')):.4f}" for key in keys) + " |\n"
        for method, values in rows.items()
    )
    return header + body


def _registration_metadata(ref) -> dict[str, object]:
    return {
        "mlflow_model": ref.name,
        "mlflow_version": ref.version,
        "mlflow_run_id": ref.run_id,
        "selection_metric": ref.metric_value,
    }


@asset(group_name=MODELS_GROUP, deps=[AssetKey("watch_interactions")], kinds={"python", "mlflow"})
def popularity_model(context: AssetExecutionContext, vidrec: VidrecResource, mlflow_tracking: MlflowResource) -> MaterializeResult:
    """Most-watched-recently videos: the baseline to beat and the unknown-user fallback."""
    settings = vidrec.settings()
    interactions = pd.read_parquet(settings.marts_dir / "watch_interactions.parquet")
    train = interactions[interactions["split"] == "train"]
    model = PopularityRecommender().fit(train)
    task = holdout_task(settings)
    metrics = _prefixed(evaluate_ranked_lists(task, lambda user, seen, k: [v for v, _ in model.recommend(k, seen)], DEFAULT_KS), "holdout")
    bundle_dir = _fresh_dir(settings.artifacts_dir / "popularity")
    model.save(bundle_dir / "popularity.json")
    with mlflow_tracking.start_run("popularity_model", run_tags(context, settings)):
        mlflow.log_params(asdict(model.config))
        mlflow.log_metrics(metrics)
        ref = log_bundle(POPULARITY, bundle_dir, metrics)
    return MaterializeResult(metadata={**metrics, **_registration_metadata(ref)})


@asset(
    group_name=MODELS_GROUP,
    deps=[retrieval_training_frame, AssetKey("video_catalog"), AssetKey("watch_interactions"), AssetKey("user_watch_history")],
    kinds={"pytorch", "mlflow"},
)
def candidate_generator(context: AssetExecutionContext, vidrec: VidrecResource, mlflow_tracking: MlflowResource) -> MaterializeResult:
    """The retrieval model (Covington et al.): user tower over history, searches, demographics."""
    settings = vidrec.settings()
    examples = pd.read_parquet(retrieval_frame_path(settings))
    catalog = pd.read_parquet(settings.marts_dir / "video_catalog.parquet")
    config = RetrievalConfig(history_length=settings.history_length, show_progress=False)
    bundle = train_candidate_generator(examples, catalog, config)

    task = holdout_task(settings)
    video_ids, video_vectors = bundle.video_embeddings()
    model_metrics = evaluate_embeddings(task, bundle.user_embeddings(task.queries), video_ids, video_vectors)
    interactions = pd.read_parquet(settings.marts_dir / "watch_interactions.parquet")
    popularity = PopularityRecommender().fit(interactions[interactions["split"] == "train"])
    popularity_metrics = evaluate_ranked_lists(task, lambda user, seen, k: [v for v, _ in popularity.recommend(k, seen)])
    metrics = {
        **_prefixed(model_metrics, "holdout"),
        **_prefixed(popularity_metrics, "popularity_holdout"),
        **_prefixed(bundle.metrics, "training"),
    }
    bundle_dir = _fresh_dir(settings.artifacts_dir / "candidate_generator")
    bundle.save(bundle_dir)
    with mlflow_tracking.start_run("candidate_generator", run_tags(context, settings)):
        mlflow.log_params({key: str(value) for key, value in asdict(config).items()})
        mlflow.log_metrics(metrics)
        table = _metric_table({"candidate_generator": model_metrics, "popularity": popularity_metrics},
                              ["recall@10", "recall@50", "recall@100", "ndcg@10", "mrr"])
        mlflow.log_text(table, "holdout_metrics.md")
        ref = log_bundle(CANDIDATE_GENERATOR, bundle_dir, metrics)
    return MaterializeResult(
        metadata={
            **_registration_metadata(ref),
            "holdout_users": int(model_metrics["num_users"]),
            "holdout_metrics": MetadataValue.md(table),
            "holdout_recall_at_50": metrics["holdout_recall_at_50"],
            "holdout_ndcg_at_10": metrics["holdout_ndcg_at_10"],
        }
    )


@asset(group_name=MODELS_GROUP, deps=[candidate_generator], kinds={"faiss", "mlflow"})
def video_index(context: AssetExecutionContext, vidrec: VidrecResource, mlflow_tracking: MlflowResource) -> MaterializeResult:
    """faiss index over every catalog video's embedding, paired with the candidate generator."""
    settings = vidrec.settings()
    bundle = RetrievalBundle.load(settings.artifacts_dir / "candidate_generator")
    video_ids, vectors = bundle.video_embeddings()
    index = VideoIndex().build(video_ids, vectors)
    index_type = "exact (IndexFlatIP)" if index.is_exact else "HNSW"
    task = holdout_task(settings)
    queries = bundle.user_embeddings(task.queries) if len(task.queries) else vectors[:100]
    recall = index.recall_against_exact(queries, RECALL_AT_K_FOR_INDEX)
    # The index is only as good as the model whose embeddings it holds: it carries that model's
    # version and selection metric so the pair is promoted together.
    generator = latest_metadata(context, candidate_generator.key)
    generator_version = str(generator["mlflow_version"])
    ndcg = float(generator["holdout_ndcg_at_10"])
    bundle_dir = _fresh_dir(settings.artifacts_dir / "video_index")
    index.save(bundle_dir / INDEX_FILE)
    metrics = {f"recall_at_{RECALL_AT_K_FOR_INDEX}_vs_exact": recall, "videos": float(len(video_ids)),
               "holdout_ndcg_at_10": ndcg}
    with mlflow_tracking.start_run("video_index", run_tags(context, settings)):
        mlflow.log_params({"index_type": index_type, "dimension": vectors.shape[1]})
        mlflow.log_metrics(metrics)
        ref = log_bundle(VIDEO_INDEX, bundle_dir, metrics, tags={"candidate_generator_version": generator_version})
    return MaterializeResult(
        metadata={
            **_registration_metadata(ref),
            "index_type": index_type,
            "videos": len(video_ids),
            f"recall_at_{RECALL_AT_K_FOR_INDEX}_vs_exact": recall,
            "candidate_generator_version": generator_version,
        }
    )


@asset(group_name=MODELS_GROUP, deps=[ranking_training_frame], kinds={"pytorch", "mlflow"})
def ranking_model(context: AssetExecutionContext, vidrec: VidrecResource, mlflow_tracking: MlflowResource) -> MaterializeResult:
    """The ranker: an MLP over Feast features with watch-time-weighted logistic loss."""
    settings = vidrec.settings()
    frame = pd.read_parquet(ranking_frame_path(settings))
    columns = service_feature_columns(feature_store(settings), RANKER_SERVICE)
    config = RankerConfig(
        categorical_features=[*columns.categorical, *REQUEST_CATEGORICAL_FEATURES],
        numeric_features=list(columns.numeric),
        show_progress=False,
    )
    bundle = train_ranker(frame, config)
    metrics = {name: float(value) for name, value in bundle.metrics.items() if np.isscalar(value)}
    bundle_dir = _fresh_dir(settings.artifacts_dir / "ranker")
    bundle.save(bundle_dir)
    with mlflow_tracking.start_run("ranking_model", run_tags(context, settings)):
        mlflow.log_params({key: str(value) for key, value in asdict(config).items()})
        mlflow.log_metrics(metrics)
        ref = log_bundle(RANKER, bundle_dir, metrics)
    return MaterializeResult(metadata={**_registration_metadata(ref), **metrics, "rows": len(frame)})


MODEL_ASSETS: dict[str, tuple[AssetKey, RegisteredArtifact]] = {
    "candidate_generator": (candidate_generator.key, CANDIDATE_GENERATOR),
    "video_index": (video_index.key, VIDEO_INDEX),
    "ranker": (ranking_model.key, RANKER),
    "popularity": (popularity_model.key, POPULARITY),
}


def latest_metadata(context: AssetExecutionContext, key: AssetKey) -> dict[str, object]:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        raise LookupError(f"{key.to_user_string()} has never been materialized")
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}
