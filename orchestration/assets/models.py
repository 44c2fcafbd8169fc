"""Models layer: train, evaluate on the temporal holdout, log to MLflow, register a version.

Each asset logs one MLflow run (params, metrics, the bundle as a registered model version, the
Dagster run id and the data snapshot it saw). Promotion to `champion` is the deployment layer's
decision, not the trainer's: see `orchestration/assets/deployment.py`.
"""


import base64
from dataclasses import asdict

import duckdb
import mlflow
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from feature_repo.feature_columns import ranker_inputs
from feature_repo.store import feature_store
from models.evaluation.holdout_task import HOLDOUT_KS
from models.evaluation.protocol import TemporalSplit, evaluate, inner_product_recommend
from models.index import INDEX_FILE, VideoIndex
from models.popularity import PopularityRecommender
from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.train import holdout_metrics, train_ranker
from models.registry import CANDIDATE_GENERATOR, POPULARITY, RANKER, RETRIEVAL_SOURCES, VIDEO_INDEX, log_bundle
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.config import RetrievalConfig
from models.retrieval.train import train_candidate_generator
from models.segment_popularity import DEMOGRAPHIC_COLUMNS, SegmentConfig, SegmentPopularity, choose_prior_strength
from models.sources import MultiSourceRetriever
from orchestration.assets.features import (
    feast_registry,
    ranking_frame_path,
    ranking_training_frame,
    retrieval_frame_path,
    retrieval_training_frame,
)
from orchestration.assets.transform import mart_asset_key
from orchestration.champions import load_champion, rescore, rescored_metadata
from orchestration.model_runs import (
    build_holdout_queries,
    fresh_dir,
    holdout_queries_path,
    holdout_start,
    holdout_task,
    metric_table,
    prefixed_metrics,
    record_registration,
    registration,
    registration_metadata,
    run_tags,
)
from orchestration.resources import MlflowResource, VidrecResource
from orchestration.warm_starts import starting_point, train_from
from vidrec.marts import Mart, mart_path

MODELS_GROUP = "models"
RECALL_AT_K_FOR_INDEX = 100


@asset(group_name=MODELS_GROUP, deps=[mart_asset_key(Mart.WATCH_INTERACTIONS), feast_registry], kinds={"feast"})
def holdout_queries(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
    """Each holdout test user's retrieval query as they stood strictly before the cut, read once
    through the `retrieval_user_features` service and stored for every model asset's holdout
    evaluation (the point-in-time read costs seconds; four assets evaluate on it)."""
    settings = vidrec.settings()
    task = build_holdout_queries(settings)
    path = holdout_queries_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    task.queries.to_parquet(path)
    context.log.info("holdout queries: %d test users as of %s", len(task.queries), task.split.cutoff)
    return MaterializeResult(metadata={"test_users": len(task.queries), "holdout_start": str(holdout_start(settings)),
                                       "path": str(path)})


# every asset that asks `holdout_task` evaluates on the stored `holdout_queries`
@asset(
    group_name=MODELS_GROUP,
    deps=[mart_asset_key(Mart.WATCH_INTERACTIONS), mart_asset_key(Mart.VIDEO_CATALOG),
          mart_asset_key(Mart.USER_FEATURES_DAILY), holdout_queries],
    kinds={"python", "mlflow"},
)
def popularity_model(context: AssetExecutionContext, vidrec: VidrecResource,
                     mlflow_tracking: MlflowResource) -> MaterializeResult:
    """Most-watched-recently videos: the baseline to beat and the unknown-user fallback, globally
    and per demographic segment (what a new user with a profile but no history is shown).

    The segments' shrinkage toward global popularity is chosen on a validation cut inside train.
    Both are scored on the holdout; the segment ranking as if every test user were new (known only
    by demographics), so `holdout_segment_*` beside `holdout_*` says what segments buy a new user."""
    settings = vidrec.settings()
    interactions = pd.read_parquet(mart_path(settings.marts_dir, Mart.WATCH_INTERACTIONS))
    train = interactions[interactions["split"] == "train"]
    model = PopularityRecommender().fit(train)
    demographics = user_demographics(settings)
    catalog_size = len(pd.read_parquet(mart_path(settings.marts_dir, Mart.VIDEO_CATALOG), columns=["video_id"]))
    strength, validation = choose_prior_strength(train, demographics, catalog_size)
    context.log.info("segment prior strength %s chosen on validation (NDCG@10 by strength: %s)", strength, validation)
    model.with_segments(SegmentPopularity.fit(train, demographics, SegmentConfig(prior_strength=strength)))
    task = holdout_task(settings)
    by_user = demographics.set_index("user_id")[list(DEMOGRAPHIC_COLUMNS)].to_dict("index")

    def recommend(user_ids, k, exclude):
        return [[video for video, _ in model.recommend(k, exclude.get(user, set()))] for user in user_ids]

    def recommend_by_segment(user_ids, k, exclude):
        return [[video for video, _ in model.recommend_for(by_user.get(user, {}), k, exclude.get(user, set()))[0]]
                for user in user_ids]

    evaluation = evaluate(recommend, task.split, catalog_size, ks=HOLDOUT_KS)
    by_segment = evaluate(recommend_by_segment, task.split, catalog_size, ks=HOLDOUT_KS)
    metrics = {**prefixed_metrics(evaluation.averages(), "holdout"),
               **prefixed_metrics(by_segment.averages(), "holdout_segment"),
               "segments": float(len(model.segments.rankings)), "segment_prior_strength": strength,
               **{f"validation_segment_ndcg_at_10_m{int(m)}": value for m, value in validation.items()}}
    bundle_dir = fresh_dir(settings.artifacts_dir / "popularity")
    model.save(bundle_dir / "popularity.json")
    with mlflow_tracking.start_run("popularity_model", run_tags(context, settings)):
        mlflow.log_params(asdict(model.config))
        mlflow.log_metrics(metrics)
        ref = log_bundle(POPULARITY, bundle_dir, metrics)
    return MaterializeResult(
        metadata=record_registration(settings, context.asset_key, {**metrics, **registration_metadata(ref)}))


def user_demographics(settings) -> pd.DataFrame:
    """Each user's latest demographics (user_id and DEMOGRAPHIC_COLUMNS) from the daily user mart."""
    columns = ", ".join(DEMOGRAPHIC_COLUMNS)
    path = mart_path(settings.marts_dir, Mart.USER_FEATURES_DAILY)
    return duckdb.sql(
        f"select user_id, {columns} from read_parquet('{path}') "
        "qualify row_number() over (partition by user_id order by event_timestamp desc) = 1"
    ).df()


@asset(
    group_name=MODELS_GROUP,
    deps=[retrieval_training_frame, popularity_model, holdout_queries, mart_asset_key(Mart.VIDEO_CATALOG),
          mart_asset_key(Mart.USER_WATCH_HISTORY)],
    kinds={"pytorch", "mlflow"},
)
def candidate_generator(context: AssetExecutionContext, vidrec: VidrecResource,
                        mlflow_tracking: MlflowResource) -> MaterializeResult:
    """The retrieval model (Covington et al.): user tower over history, searches, demographics."""
    settings = vidrec.settings()
    examples = pd.read_parquet(retrieval_frame_path(settings))
    catalog = pd.read_parquet(mart_path(settings.marts_dir, Mart.VIDEO_CATALOG))
    config = RetrievalConfig(history_length=settings.history_length, show_progress=False)
    mlflow_tracking.configure()
    champion = load_champion(CANDIDATE_GENERATOR, RetrievalBundle.load)
    start = starting_point(settings, CANDIDATE_GENERATOR, champion)
    bundle, started_from = train_from(
        start, lambda champion: train_candidate_generator(examples, catalog, config, warm_start=champion))
    config = bundle.config  # a warm start trains its own epochs

    task = holdout_task(settings)
    model_metrics = _holdout_scores(bundle, task)
    rescored = rescore(champion, lambda old: prefixed_metrics(_holdout_scores(old, task), "holdout")[
        CANDIDATE_GENERATOR.selection_metric])
    # The baseline was scored on the same task by popularity_model; its metrics sit beside ours.
    popularity = registration(settings, popularity_model.key)
    popularity_metrics = {
        name.removeprefix("holdout_").replace("_at_", "@"): float(value)
        for name, value in popularity.items() if name.startswith("holdout_")
    }
    metrics = {
        **prefixed_metrics(model_metrics, "holdout"),
        **prefixed_metrics(popularity_metrics, "popularity_holdout"),
        **prefixed_metrics(bundle.metrics, "training"),
    }
    bundle_dir = fresh_dir(settings.artifacts_dir / "candidate_generator")
    bundle.save(bundle_dir)
    with mlflow_tracking.start_run("candidate_generator", run_tags(context, settings)):
        mlflow.log_params({key: str(value) for key, value in asdict(config).items()})
        mlflow.set_tag("warm_start", started_from)
        mlflow.log_metrics(metrics)
        table = metric_table({"candidate_generator": model_metrics, "popularity": popularity_metrics},
                              ["recall@10", "recall@50", "recall@100", "ndcg@10", "mrr"])
        mlflow.log_text(table, "holdout_metrics.md")
        ref = log_bundle(CANDIDATE_GENERATOR, bundle_dir, metrics)
    recorded = record_registration(settings, context.asset_key, {
        **registration_metadata(ref),
        "holdout_users": int(model_metrics["num_users"]),
        "holdout_recall_at_50": metrics["holdout_recall_at_50"],
        "holdout_ndcg_at_10": metrics["holdout_ndcg_at_10"],
        "warm_start": started_from,
        **rescored_metadata(rescored),
    })
    return MaterializeResult(metadata={**recorded, "holdout_metrics": MetadataValue.md(table)})


def _holdout_scores(bundle: RetrievalBundle, task) -> dict[str, float]:
    """A candidate generator's metrics on the holdout task, over the videos it embeds."""
    video_ids, video_vectors = bundle.video_embeddings()
    recommend = inner_product_recommend(
        task.queries["user_id"], bundle.user_embeddings(task.queries), video_ids, video_vectors
    )
    return evaluate(recommend, task.split, len(video_ids), ks=HOLDOUT_KS).averages()


@asset(group_name=MODELS_GROUP, deps=[candidate_generator], kinds={"faiss", "mlflow"})
def video_index(context: AssetExecutionContext, vidrec: VidrecResource,
                mlflow_tracking: MlflowResource) -> MaterializeResult:
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
    generator = registration(settings, candidate_generator.key)
    generator_version = str(generator["mlflow_version"])
    ndcg = float(generator["holdout_ndcg_at_10"])
    bundle_dir = fresh_dir(settings.artifacts_dir / "video_index")
    index.save(bundle_dir / INDEX_FILE)
    metrics = {f"recall_at_{RECALL_AT_K_FOR_INDEX}_vs_exact": recall, "videos": float(len(video_ids)),
               "holdout_ndcg_at_10": ndcg}
    with mlflow_tracking.start_run("video_index", run_tags(context, settings)):
        mlflow.log_params({"index_type": index_type, "dimension": vectors.shape[1]})
        mlflow.log_metrics(metrics)
        ref = log_bundle(VIDEO_INDEX, bundle_dir, metrics, tags={"candidate_generator_version": generator_version})
    return MaterializeResult(
        metadata=record_registration(settings, context.asset_key, {
            **registration_metadata(ref),
            "index_type": index_type,
            "videos": len(video_ids),
            f"recall_at_{RECALL_AT_K_FOR_INDEX}_vs_exact": recall,
            "candidate_generator_version": generator_version,
        })
    )


@asset(group_name=MODELS_GROUP, deps=[ranking_training_frame], kinds={"pytorch", "mlflow"})
def ranking_model(context: AssetExecutionContext, vidrec: VidrecResource,
                  mlflow_tracking: MlflowResource) -> MaterializeResult:
    """The multi-task ranker over Feast features: watch-time-weighted LR plus calibrated heads.

    Logs every head's calibration method, ECE before/after and reliability diagram with the run.
    """
    settings = vidrec.settings()
    frame = pd.read_parquet(ranking_frame_path(settings))
    inputs = ranker_inputs(feature_store(settings))
    config = RankerConfig(
        categorical_features=list(inputs.categorical), numeric_features=list(inputs.numeric),
        bag_features=list(inputs.lists), show_progress=False,
    )
    mlflow_tracking.configure()
    champion = load_champion(RANKER, RankerBundle.load)
    start = starting_point(settings, RANKER, champion)
    bundle, started_from = train_from(start, lambda champion: train_ranker(frame, config, warm_start=champion))
    holdout_rows = frame[frame["split"] == "holdout"]
    rescored = rescore(champion, lambda old: holdout_metrics(old, holdout_rows)[RANKER.selection_metric])
    metrics = {name: float(value) for name, value in bundle.metrics.items() if np.isscalar(value)}
    bundle_dir = fresh_dir(settings.artifacts_dir / "ranker")
    bundle.save(bundle_dir)
    report = bundle.calibration_report()
    diagrams = bundle.write_reliability_diagrams(fresh_dir(settings.artifacts_dir / "ranker_reliability"))
    with mlflow_tracking.start_run("ranking_model", run_tags(context, settings)):
        mlflow.log_params({key: str(value) for key, value in asdict(config).items()})
        mlflow.set_tag("warm_start", started_from)
        mlflow.log_params({f"calibration_{head}_method": entry["method"] for head, entry in report.items()})
        mlflow.log_metrics(metrics)
        for path in diagrams.values():
            mlflow.log_artifact(str(path), "reliability")
        ref = log_bundle(RANKER, bundle_dir, metrics)
    reliability = {
        f"reliability_{head}": MetadataValue.md(
            f"![{head}](data:image/png;base64,{base64.b64encode(entry['diagram_png']).decode()})"
        )
        for head, entry in report.items()
        if entry.get("diagram_png")
    }
    recorded = record_registration(settings, context.asset_key,
                                   {**registration_metadata(ref), **metrics, "rows": len(frame),
                                    "warm_start": started_from, **rescored_metadata(rescored)})
    return MaterializeResult(metadata={**recorded, **reliability})


def _event_logs(settings) -> dict[str, pd.DataFrame]:
    """The deduplicated, typed event marts the retrieval sources are fitted on."""
    marts = settings.marts_dir
    return {
        "watches": pd.read_parquet(mart_path(marts, Mart.WATCH_EVENTS), columns=["user_id", "video_id", "watch_time"]),
        "impressions": pd.read_parquet(mart_path(marts, Mart.IMPRESSION_EVENTS),
                                       columns=["video_id", "impression_time"]),
        "subscriptions": pd.read_parquet(mart_path(marts, Mart.SUBSCRIPTION_EVENTS),
                                         columns=["user_id", "creator_id", "subscribed_time"]),
    }


def _fit_sources(logs: dict[str, pd.DataFrame], catalog: pd.DataFrame, now: pd.Timestamp) -> MultiSourceRetriever:
    """Fit every non-ANN source on what happened strictly before `now`."""
    impressions = logs["impressions"]
    shown = impressions[impressions["impression_time"] < now]["video_id"].value_counts()
    return MultiSourceRetriever().fit(
        watches=logs["watches"],
        catalog=catalog,
        subscriptions=logs["subscriptions"],
        impression_counts=shown.rename("impressions").rename_axis("video_id").reset_index(),
        now=now,
    )


def _recall_of_lists(lists: dict[int, list[int]], split: TemporalSplit, catalog_size: int, k: int) -> float:
    """Recall@k of lists already retrieved per test user, scored by the protocol like any method."""
    evaluation = evaluate(lambda user_ids, _, exclude: [lists.get(user, []) for user in user_ids],
                          split, catalog_size, ks=(k,))
    return evaluation.metrics[f"recall@{k}"]


@asset(
    group_name=MODELS_GROUP,
    deps=[*(mart_asset_key(mart) for mart in (Mart.WATCH_EVENTS, Mart.IMPRESSION_EVENTS, Mart.SUBSCRIPTION_EVENTS,
                                              Mart.VIDEO_CATALOG, Mart.USER_WATCH_HISTORY)),
          holdout_queries],
    kinds={"python", "mlflow"},
)
def retrieval_sources(context: AssetExecutionContext, vidrec: VidrecResource,
                      mlflow_tracking: MlflowResource) -> MaterializeResult:
    """The non-ANN retrieval sources: co-watch, subscriptions, trending, fresh, exploration.

    Evaluated fitted at the holdout cut: each source's recall on the holdout at its quota, and the
    recall of their union without ANN (ANN's own quality is the candidate generator's metrics).
    Then refitted on all data up to the latest watch, which is what serving gets: trending and
    fresh lists are only useful when they are current.
    """
    settings = vidrec.settings()
    logs = _event_logs(settings)
    catalog = pd.read_parquet(mart_path(settings.marts_dir, Mart.VIDEO_CATALOG))
    task = holdout_task(settings)
    evaluated = _fit_sources(logs, catalog, holdout_start(settings))
    seen_before_cut = task.split.seen()
    recalls = {}
    union = {}
    for user, history in zip(task.queries["user_id"], task.queries["history_video_ids"]):
        seen = seen_before_cut.get(int(user), set())
        history = [int(video) for video in history]
        for name, ranked in evaluated.source_lists(int(user), history, seen | set(history)).items():
            recalls.setdefault(name, {})[int(user)] = [video for video, _ in ranked]
        union[int(user)] = [candidate.video_id for candidate in evaluated.retrieve(int(user), history, seen)]
    quotas = evaluated.config.quotas()
    union_size = max(len(videos) for videos in union.values())
    lists_and_k = {name: (lists, quotas[name]) for name, lists in recalls.items()}
    lists_and_k["union"] = (union, union_size)
    metrics = {
        f"holdout_{name}_recall": _recall_of_lists(lists, task.split, len(catalog), k)
        for name, (lists, k) in lists_and_k.items()
    }

    served = _fit_sources(logs, catalog, logs["watches"]["watch_time"].max() + pd.Timedelta(microseconds=1))
    bundle_dir = fresh_dir(settings.artifacts_dir / "retrieval_sources")
    served.save(bundle_dir)
    with mlflow_tracking.start_run("retrieval_sources", run_tags(context, settings)):
        mlflow.log_params({"quotas": str(quotas), "served_now": str(served.now)})
        mlflow.log_metrics(metrics)
        ref = log_bundle(RETRIEVAL_SOURCES, bundle_dir, metrics)
    table = "| source | quota | holdout recall |\n|---|---|---|\n" + "".join(
        f"| {name} | {quotas.get(name, union_size)} | {metrics[f'holdout_{name}_recall']:.4f} |\n"
        for name in [*recalls, "union"]
    )
    recorded = record_registration(settings, context.asset_key, {**registration_metadata(ref), **served.summary()})
    return MaterializeResult(metadata={**recorded, "holdout_recall": MetadataValue.md(table)})
