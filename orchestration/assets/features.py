"""Features layer: the Feast registry, the online store, and point-in-time training frames.

Training frames come only from `get_historical_features` through the same feature service that
serving reads with `get_online_features`: one feature definition for both paths.
"""


import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset
from feast import FeatureStore

from feature_repo.engagement import REQUEST_TIME
from feature_repo.feature_columns import RANKER_SERVICE, ranker_inputs
from feature_repo.on_demand import unix_seconds
from feature_repo.services import RETRIEVAL_USER_FEATURES
from feature_repo.store import apply_feature_definitions, feature_store
from feature_repo.training_frames import historical_features
from models.retrieval.features import HISTORY_SEARCH_TOKENS, HISTORY_VIDEO_IDS
from models.retrieval.query import historical_queries, query_column_types
from orchestration.assets.transform import mart_asset_key
from orchestration.incremental_frames import FrameInputs, Reuse, frame_inputs, incremental_features
from orchestration.incremental_online import (
    LoadRecord,
    day_sources,
    online_store_identity,
    plan_online_load,
    views_never_loaded,
    write_load_record,
)
from orchestration.incremental_online import record_path as online_record_path
from orchestration.resources import VidrecResource, dbt_vars
from vidrec.marts import FEATURE_MARTS, Mart, mart_path
from vidrec.settings import VidrecSettings

FEATURES_GROUP = "features"
# What identifies a ranking example (one impression): the dbt test on int_impression_outcomes holds it unique.
RANKING_EXAMPLE_KEYS = ["request_id", "video_id"]


def ranking_frame_path(settings: VidrecSettings):
    return settings.artifacts_dir / "ranking_training_frame.parquet"


def retrieval_frame_path(settings: VidrecSettings):
    return settings.artifacts_dir / "retrieval_training_frame.parquet"


def ranking_frame_cache_dir(settings: VidrecSettings) -> Path:
    """The last ranking frame's feature values and what they were computed from (incremental frames)."""
    return settings.artifacts_dir / "ranking_frame_cache"


def _utc(series: pd.Series) -> pd.Series:
    series = pd.to_datetime(series)
    return series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")


@asset(
    group_name=FEATURES_GROUP,
    deps=[mart_asset_key(mart) for mart in FEATURE_MARTS],
    kinds={"feast"},
)
def feast_registry(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
    """Entities, feature views and feature services applied to the Feast registry (idempotent)."""
    store = apply_feature_definitions(vidrec.settings())
    views = sorted(view.name for view in store.list_feature_views())
    services = sorted(service.name for service in store.list_feature_services())
    context.log.info("feast registry: views %s, services %s", views, services)
    return MaterializeResult(metadata={"feature_views": ", ".join(views), "feature_services": ", ".join(services)})


@asset(group_name=FEATURES_GROUP, deps=[feast_registry], kinds={"feast", "sqlite"})
def online_feature_store(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
    """Latest feature values loaded into the online store that serving reads.

    After a new day of logs only the rows stamped from that day on are loaded; a first load, a
    feature-code change or a backfill of an older day loads the whole event-time range
    (orchestration/incremental_online.py says why that leaves the same store). Either way a
    re-run on unchanged data converges on the same state (idempotent).
    """
    settings = vidrec.settings()
    store = feature_store(settings)
    inputs, sources = frame_inputs(settings, dbt_vars(settings)), day_sources(settings)
    plan = plan_online_load(settings, inputs, sources, views_never_loaded(store, keyed_feature_views(store)))
    start, end = materialize_online_store(settings, store, since=plan.since)
    write_load_record(online_record_path(settings), LoadRecord(inputs, sources, online_store_identity(settings)))
    context.log.info("materialized online features for %s .. %s (%s; per-request views: next requests only)",
                     start, end, plan.why)
    return MaterializeResult(metadata={"event_time_start": str(start), "event_time_end": str(end),
                                       "load": "whole range" if plan.since is None else "new days only",
                                       "load_why": plan.why})


def keyed_feature_views(store: FeatureStore) -> list[str]:
    """The feature views loaded over an event-time range: all but the per-request ones."""
    return [view.name for view in store.list_feature_views() if view.entity_columns[0].name != "request_id"]


def materialize_online_store(settings: VidrecSettings, store: FeatureStore,
                             since: pd.Timestamp | None = None) -> tuple[datetime, datetime]:
    """Load the latest feature values of the marts into `store`'s online store; the event-time
    range loaded: the whole range, or from `since` on (orchestration/incremental_online.py).
    """
    start, end = event_time_range(settings)
    keyed = keyed_feature_views(store)
    per_request = [view.name for view in store.list_feature_views() if view.name not in keyed]
    # (from `since`, but never past the last row: a changed day after every feature row, a
    # subscription stamped later than the logs, say, leaves nothing to load but that row)
    load_from = start - timedelta(days=1)
    if since is not None:
        load_from = min(max(since.to_pydatetime(), load_from), end)
    store.materialize(start_date=load_from, end_date=end + timedelta(seconds=1), feature_views=keyed)
    # Per-request states: serving only ever reads each user's next request (stamped at the end of
    # the log, the mart's latest time), so only those rows go online, not one per past request.
    next_requests = end_of_log(settings).to_pydatetime()
    store.materialize(start_date=next_requests - timedelta(seconds=1), end_date=next_requests + timedelta(seconds=1),
                      feature_views=per_request)
    return (start if since is None else load_from), end


def end_of_log(settings: VidrecSettings) -> pd.Timestamp:
    """Just after the last logged event (UTC): when every user's next request is stamped."""
    stamps = pd.read_parquet(mart_path(settings.marts_dir, Mart.USER_ENGAGEMENT_HISTORY), columns=["event_timestamp"])
    return _utc(stamps["event_timestamp"]).max()


def event_time_range(settings: VidrecSettings) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last feature event time (UTC) over the marts behind the feature views."""
    starts, ends = [], []
    for mart in FEATURE_MARTS:
        stamps = pd.read_parquet(mart_path(settings.marts_dir, mart), columns=["event_timestamp"])
        times = _utc(stamps["event_timestamp"])
        starts.append(times.min())
        ends.append(times.max())
    return min(starts).to_pydatetime(), max(ends).to_pydatetime()


def sample_ranking_examples(examples: pd.DataFrame, negative_rate: float, seed: int = 0) -> pd.DataFrame:
    """Every click and every holdout impression, plus a seeded share of the other non-clicks,
    with `example_weight` = 1/rate on those.

    Training negatives are down-sampled to keep the frame, and the ranker's training on it,
    small; the weight keeps losses unbiased for the full impression log. The holdout is kept
    whole: sampling it would only add noise to every model's metrics.
    """
    keep_negative = np.random.default_rng(seed).random(len(examples)) < negative_rate
    sampled_negative = ~examples["clicked"].astype(bool) & (examples["split"] != "holdout")
    sampled = examples[~sampled_negative | keep_negative].copy()
    sampled["example_weight"] = np.where(sampled_negative.loc[sampled.index], 1.0 / negative_rate, 1.0)
    return sampled.reset_index(drop=True)


def ranking_frame(store: FeatureStore, examples: pd.DataFrame, negative_rate: float,
                  reuse: tuple[Path, FrameInputs] | None = None) -> tuple[pd.DataFrame, Reuse | None]:
    """The impressions of the `ranking_training_examples` mart, sampled (`sample_ranking_examples`),
    with their point-in-time ranker features read through the ranker service. With `reuse` (a
    cache directory and what the data is now), only rows the last run's values do not cover are
    joined (orchestration/incremental_frames.py); how many were reused comes back with it."""
    # dbt writes marts with parallel threads, so row order varies between runs; a fixed order
    # keeps the seeded sampling and training (and so champion decisions) reproducible.
    examples = examples.sort_values(["event_timestamp", "request_id", "video_id"], kind="stable").reset_index(drop=True)
    sampled = sample_ranking_examples(examples, negative_rate)
    # an impression's request time is its request's start (event_timestamp): the on-demand cross features use it
    sampled[REQUEST_TIME] = unix_seconds(sampled["event_timestamp"])
    service = store.get_feature_service(RANKER_SERVICE)
    if reuse is None:
        return historical_features(store, sampled, service), None
    cache_dir, inputs = reuse
    return incremental_features(cache_dir, inputs, sampled, RANKING_EXAMPLE_KEYS,
                                lambda rows: historical_features(store, rows, service))


@asset(group_name=FEATURES_GROUP, deps=[feast_registry, mart_asset_key(Mart.RANKING_TRAINING_EXAMPLES)],
       kinds={"feast", "parquet"})
def ranking_training_frame(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
    """Impressions with their outcomes and point-in-time-correct ranker features."""
    settings = vidrec.settings()
    store = feature_store(settings)
    examples = pd.read_parquet(mart_path(settings.marts_dir, Mart.RANKING_TRAINING_EXAMPLES))
    if examples.empty:
        raise Failure(
            description="ranking_training_examples is empty: the raw logs hold no impressions, and the ranker "
            "learns from shown-vs-clicked. Import a dataset with exposures (or MovieLens, which samples them)."
        )
    reuse = ((ranking_frame_cache_dir(settings), frame_inputs(settings, dbt_vars(settings)))
             if settings.incremental_frames else None)
    frame, reused = ranking_frame(store, examples, settings.ranking_negative_sample_rate, reuse)
    context.log.info("ranking frame: %d of %d impressions (all clicks, %.0f%% of non-clicks)",
                     len(frame), len(examples), 100 * settings.ranking_negative_sample_rate)
    incremental = {} if reused is None else {
        "rows_reused": reused.reused_rows, "rows_joined": reused.computed_rows,
        "recomputed_from": str(reused.recomputed_from) if reused.recomputed_from is not None else "-",
        "reuse_decision": reused.why,
    }
    if reused is not None:
        context.log.info("ranking frame: %d rows reused from the last run, %d joined through Feast (%s)",
                         reused.reused_rows, reused.computed_rows, reused.why)
    inputs = ranker_inputs(store)
    path = ranking_frame_path(settings)
    frame.to_parquet(path, index=False)
    return MaterializeResult(
        metadata={
            "rows": len(frame),
            "impressions": len(examples),
            "negative_sample_rate": settings.ranking_negative_sample_rate,
            "click_rate_in_frame": float(frame["clicked"].mean()),
            **incremental,
            "categorical_features": ", ".join(inputs.categorical),
            "numeric_features": ", ".join(inputs.numeric),
            "path": str(path),
            "preview": MetadataValue.md(frame.head(5).to_markdown(index=False)),
        }
    )


# Example rows read from the retrieval_training_examples mart and joined through Feast at a time,
# whole users each (a user with more examples than this is a chunk of their own). The asset's
# memory grows with the chunk, not with the mart: read and joined whole, the 142k examples at 3x
# the default data took the process 1.9 GiB above its imports (2.5 GiB peak; 7.8 GB at 10x, in
# docs/benchmarks.md), about 12 KiB per example in the join; in chunks of 25k, 0.75 GiB, flat from
# chunk to chunk. Each chunk costs a join of its own (about 0.4 s), hence chunks of many users.
# bench/frame_memory.py measures it.
RETRIEVAL_FRAME_CHUNK_ROWS = 25_000
# The frame's row order (as the examples were ever sorted): the mart's unique key, user first, so
# that runs of whole users in user order concatenate to the frame sorted whole.
RETRIEVAL_EXAMPLE_ORDER = ["user_id", "label_time", "label_video_id"]


def retrieval_frame(store: FeatureStore, examples: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Each rollback example with its query as the user stood just before the label, read through
    the retrieval feature service by `models.retrieval.query` (as the holdout and serving read it).

    The mart's rollback history is the one its dbt test proved precedes the label; the service must
    give back that same history, else Feast and the marts disagree and this raises. An example
    whose last history state lies beyond the view's ttl gets none from the service (nor would a
    request) and is dropped; how many were comes back with the frame.
    """
    rollback = examples[[HISTORY_VIDEO_IDS, HISTORY_SEARCH_TOKENS]].reset_index(drop=True)
    frame = historical_queries(store, examples.drop(columns=list(rollback.columns)), as_of=examples["label_time"])
    frame = frame.reset_index(drop=True)
    has_state = frame[HISTORY_VIDEO_IDS].map(len) > 0
    for column in rollback.columns:
        differs = [
            position for position, (mart, served) in enumerate(zip(rollback[column], frame[column]))
            if has_state[position] and list(mart) != served
        ]
        if differs:
            first = differs[0]
            raise ValueError(
                f"{len(differs)} retrieval examples get a {column} from the feature service that differs from the "
                f"mart's rollback history, e.g. user {frame.at[first, 'user_id']} at {frame.at[first, 'label_time']}: "
                f"service {frame.at[first, column]}, mart {np.asarray(rollback.at[first, column]).tolist()}"
            )
    return frame[has_state].reset_index(drop=True), int((~has_state).sum())


@dataclass
class _RetrievalFrameTally:
    """What the asset reports about the frame, summed over its chunks (users never span two)."""

    rows: int = 0
    users: int = 0
    without_state: int = 0
    chunks: int = 0
    splits: Counter = field(default_factory=Counter)

    def add(self, frame: pd.DataFrame, without_state: int) -> None:
        self.rows += len(frame)
        self.users += int(frame["user_id"].nunique())
        self.without_state += without_state
        self.chunks += 1
        self.splits.update(frame["split"].value_counts().to_dict())

    def split_counts(self) -> dict[str, int]:
        """As `value_counts().to_dict()` of the whole frame: most examples first."""
        return dict(self.splits.most_common())


def _user_chunks(mart: Path, chunk_rows: int) -> list[tuple[int, int] | None]:
    """(first, last) user id of consecutive runs of whole users, in user order, each of at least
    `chunk_rows` examples but the last (a user's examples are never split). Only the user_id column
    is read. An empty mart is one chunk of everything (`None`), so the frame keeps its columns."""
    users, counts = np.unique(pd.read_parquet(mart, columns=["user_id"])["user_id"].to_numpy(), return_counts=True)
    chunks: list[tuple[int, int] | None] = []
    first, rows = None, 0
    for user, count in zip(users.tolist(), counts.tolist()):
        first = user if first is None else first
        rows += count
        if rows >= chunk_rows:
            chunks.append((first, user))
            first, rows = None, 0
    if first is not None:
        chunks.append((first, users[-1].item()))
    return chunks or [None]


def _read_examples(mart: Path, users: tuple[int, int] | None) -> pd.DataFrame:
    """The mart's examples of users `first..last` (all with `None`) in the frame's order. The
    filter is pushed into the Parquet read: only these users' rows become pandas objects."""
    filters = None if users is None else [("user_id", ">=", users[0]), ("user_id", "<=", users[1])]
    examples = pd.read_parquet(mart, filters=filters)
    return examples.sort_values(RETRIEVAL_EXAMPLE_ORDER, kind="stable").reset_index(drop=True)


def _frame_schema(frame: pd.DataFrame, query_types: dict[str, pa.DataType]) -> pa.Schema:
    """The Parquet schema of the frame: as pandas writes `frame` (the first chunk with rows), with the query
    columns typed as the service declares them. Every chunk is cast to it; typed from one chunk
    alone, a column without a value there (no user in it ever searched) would be Arrow's null
    type, and a later chunk with values could not be appended."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    for name, type_ in query_types.items():
        if name in schema.names:
            schema = schema.set(schema.get_field_index(name), pa.field(name, type_))
    return schema


def _write_retrieval_frame(store: FeatureStore, mart: Path, path: Path, chunk_rows: int) -> _RetrievalFrameTally:
    """`retrieval_frame` of the mart's examples, a run of whole users at a time
    (`_user_chunks`), appended to the Parquet file `path`; what was written comes back.

    Chunks run in user order and each is sorted as the whole mart was, so the file holds the frame
    the mart sorted whole would give. The mart/service check runs on each chunk as it is joined:
    the first chunk holding a mismatch raises (counting its own). The file is written next to
    `path` and renamed onto it once complete: a failure (such a mismatch in a later chunk, a crash)
    leaves the previous frame in place, never a part of the new one.
    """
    query_types = query_column_types(store.get_feature_service(RETRIEVAL_USER_FEATURES))
    partial = path.with_name(f".{path.name}.partial")
    tally = _RetrievalFrameTally()
    writer: pq.ParquetWriter | None = None
    try:
        for users in _user_chunks(mart, chunk_rows):
            frame, without_state = retrieval_frame(store, _read_examples(mart, users))
            tally.add(frame, without_state)
            if len(frame):  # typed from a chunk with rows: an empty one types every object column null
                writer = writer or pq.ParquetWriter(partial, _frame_schema(frame, query_types))
                writer.write_table(pa.Table.from_pandas(frame, preserve_index=False).cast(writer.schema))
        # no example kept at all: the file holds the (last, empty) frame's columns alone
        writer = writer or pq.ParquetWriter(partial, _frame_schema(frame, query_types))
        writer.close()
    except BaseException:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return tally


@asset(group_name=FEATURES_GROUP, deps=[feast_registry, mart_asset_key(Mart.RETRIEVAL_TRAINING_EXAMPLES)],
       kinds={"feast", "parquet"})
def retrieval_training_frame(context: AssetExecutionContext, vidrec: VidrecResource) -> MaterializeResult:
    """Rollback examples (history strictly before each label) with their point-in-time queries,
    built a run of whole users at a time so memory stays bounded as the data grows."""
    settings = vidrec.settings()
    path = retrieval_frame_path(settings)
    mart = mart_path(settings.marts_dir, Mart.RETRIEVAL_TRAINING_EXAMPLES)
    tally = _write_retrieval_frame(feature_store(settings), mart, path, RETRIEVAL_FRAME_CHUNK_ROWS)
    context.log.info("retrieval frame: %d examples of %d users, joined in %d chunk(s) of about %d examples",
                     tally.rows, tally.users, tally.chunks, RETRIEVAL_FRAME_CHUNK_ROWS)
    if tally.without_state:
        context.log.info("retrieval frame: %d examples dropped, their history state beyond the view's ttl",
                         tally.without_state)
    return MaterializeResult(
        metadata={
            "rows": tally.rows,
            "users": tally.users,
            "examples_without_history_state": tally.without_state,
            "split_counts": MetadataValue.json(tally.split_counts()),
            "path": str(path),
        }
    )
