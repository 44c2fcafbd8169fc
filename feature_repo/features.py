"""Feature views over the marts.

TTLs follow the grain of each mart: daily snapshots are fresh for a couple of days (so a
point-in-time join at any moment of day d finds the snapshot taken at the midnight starting it,
with a day of slack), while event-grain history and slow-moving demographics stay valid long
after the user's last event.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import FeatureView, Field, OnDemandFeatureView
from feast.data_source import DataSource
from feast.types import Array, Float64, Int64, String

from feature_repo import data_sources
from feature_repo.entities import request, user, video
from feature_repo.on_demand import candidate_engagement_view

DAILY_SNAPSHOT_TTL = timedelta(days=2)
PROFILE_TTL = timedelta(days=365)
REQUEST_ENGAGEMENT = "request_engagement"
HISTORY_TTL = timedelta(days=365)
# Field names other modules read by name (the retrieval query, models/retrieval/query.py), so each
# is spelled once, here.
USER_PROFILE_FEATURES = ("country", "device", "age_bucket", "gender")
RECENT_WATCH_VIDEO_IDS = "recent_watch_video_ids"
RECENT_SEARCH_TOKENS = "recent_search_tokens"


def user_profile_view(source: DataSource) -> FeatureView:
    return FeatureView(
        name="user_profile",
        description="Demographics of the user as of the latest daily snapshot.",
        entities=[user],
        ttl=PROFILE_TTL,
        schema=[Field(name=name, dtype=String) for name in USER_PROFILE_FEATURES],
        source=source,
        online=True,
    )


def user_activity_view(source: DataSource) -> FeatureView:
    return FeatureView(
        name="user_activity",
        description=(
            "The user's activity before the snapshot midnight: 28-day watch counters and 7-day "
            "impressions / clicks (user_impressions_7d, user_clicks_7d)."
        ),
        entities=[user],
        ttl=DAILY_SNAPSHOT_TTL,
        schema=[
            Field(name="watch_count_28d", dtype=Int64),
            Field(name="watch_seconds_28d", dtype=Float64),
            Field(name="mean_watch_fraction_28d", dtype=Float64),
            Field(name="like_count_28d", dtype=Int64),
            Field(name="active_days_28d", dtype=Int64),
            Field(name="user_impressions_7d", dtype=Int64),
            Field(name="user_clicks_7d", dtype=Int64),
        ],
        source=source,
        online=True,
    )


def video_stats_view(source: DataSource) -> FeatureView:
    return FeatureView(
        name="video_stats",
        description="Catalog facts and 7-day engagement of the video before the snapshot midnight.",
        entities=[video],
        ttl=DAILY_SNAPSHOT_TTL,
        schema=[
            Field(name="creator_id", dtype=Int64),
            Field(name="category", dtype=String),
            Field(name="duration_seconds", dtype=Float64),
            Field(name="video_age_days", dtype=Float64),
            Field(name="impressions_7d", dtype=Int64),
            Field(name="clicks_7d", dtype=Int64),
            Field(name="ctr_7d", dtype=Float64),
            Field(name="watches_7d", dtype=Int64),
            Field(name="watch_seconds_7d", dtype=Float64),
            Field(name="mean_watch_fraction_7d", dtype=Float64),
            Field(name="like_rate_7d", dtype=Float64),
            Field(name="watch_count_total", dtype=Int64),
        ],
        source=source,
        online=True,
    )


def user_watch_history_view(source: DataSource) -> FeatureView:
    return FeatureView(
        name="user_watch_history",
        description=(
            "The user's history as of their latest event: last watched video ids (oldest first), "
            "recent search unigrams/bigrams and lifetime watch count; what retrieval serves from."
        ),
        entities=[user],
        ttl=HISTORY_TTL,
        schema=[
            Field(name=RECENT_WATCH_VIDEO_IDS, dtype=Array(Int64)),
            Field(name=RECENT_SEARCH_TOKENS, dtype=Array(String)),
            Field(name="watch_count_total", dtype=Int64),
            Field(name="last_watched_video_id", dtype=Int64),
        ],
        source=source,
        online=True,
    )


def request_engagement_view(source: DataSource) -> FeatureView:
    return FeatureView(
        name=REQUEST_ENGAGEMENT,
        description=(
            "The user's recent engagement log as a request saw it at its start (the user's next "
            "request: request_id next:<user_id>): watch_log (the last watches: video, creator, "
            "category, Unix time, watched fraction) and impression_log (the last impressions: video, "
            "Unix time), JSON objects of parallel lists, oldest first. The ranker's cross features "
            "are computed from it per candidate by the candidate_engagement on-demand view."
        ),
        entities=[request],
        ttl=HISTORY_TTL,
        schema=[
            Field(name="watch_log", dtype=String),
            Field(name="impression_log", dtype=String),
        ],
        source=source,
        online=True,
    )


def feature_views(marts_dir: Path, on_spark: bool = False) -> dict[str, FeatureView | OnDemandFeatureView]:
    """Every feature view (on-demand ones included), by name, reading the marts under `marts_dir`:
    as files, or with `on_spark` (the distributed profile) as Spark sources over the same paths."""
    # one source object per mart: Feast rejects two sources of the same name
    sources = {
        "user_features_daily": data_sources.user_features_daily_source(marts_dir),
        "video_features_daily": data_sources.video_features_daily_source(marts_dir),
        "user_watch_history": data_sources.user_watch_history_source(marts_dir),
        "user_engagement_history": data_sources.user_engagement_history_source(marts_dir),
    }
    if on_spark:
        from feature_repo.spark_store import as_spark_source  # needs pyspark: distributed only

        sources = {mart: as_spark_source(source) for mart, source in sources.items()}
    views = (
        user_profile_view(sources["user_features_daily"]),
        user_activity_view(sources["user_features_daily"]),
        video_stats_view(sources["video_features_daily"]),
        user_watch_history_view(sources["user_watch_history"]),
        request_engagement_view(sources["user_engagement_history"]),
    )
    by_name: dict[str, FeatureView | OnDemandFeatureView] = {view.name: view for view in views}
    engagement = candidate_engagement_view(by_name[REQUEST_ENGAGEMENT], by_name["video_stats"])
    by_name[engagement.name] = engagement
    return by_name
