"""Feast file sources over the dbt marts (`<marts_dir>/<mart>.parquet`, docs/architecture.md).

Sources are built from a marts directory rather than hard-coded, so one definition serves every
VIDREC_HOME (tests, the default profile, production). Timestamps in the marts are naive UTC;
Feast reads naive timestamps as UTC.
"""

from __future__ import annotations

from pathlib import Path

from feast import FileSource
from feast.data_format import ParquetFormat

from vidrec.marts import Mart, mart_path

EVENT_TIMESTAMP = "event_timestamp"

# user_features_daily and video_features_daily both have impressions_7d / clicks_7d; the ranker
# service joins both, and Feast refuses two features of one name, so the user's counters are
# renamed as they leave the mart.
USER_ACTIVITY_FIELD_MAPPING = {
    "impressions_7d": "user_impressions_7d",
    "clicks_7d": "user_clicks_7d",
}


def _mart_source(marts_dir: Path, mart: Mart, description: str, **kwargs: object) -> FileSource:
    return FileSource(
        name=mart.value,
        path=str(mart_path(marts_dir, mart)),
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TIMESTAMP,
        description=description,
        **kwargs,
    )


def user_features_daily_source(marts_dir: Path) -> FileSource:
    return _mart_source(
        marts_dir,
        Mart.USER_FEATURES_DAILY,
        "End-of-day user snapshots: demographics and 28-day / 7-day activity counters.",
        field_mapping=USER_ACTIVITY_FIELD_MAPPING,
    )


def video_features_daily_source(marts_dir: Path) -> FileSource:
    return _mart_source(
        marts_dir,
        Mart.VIDEO_FEATURES_DAILY,
        "End-of-day video snapshots: catalog facts and 7-day engagement counters.",
    )


def user_watch_history_source(marts_dir: Path) -> FileSource:
    return _mart_source(
        marts_dir,
        Mart.USER_WATCH_HISTORY,
        "A user's recent watches and search tokens after every watch or search.",
    )


def user_engagement_history_source(marts_dir: Path) -> FileSource:
    return _mart_source(
        marts_dir,
        Mart.USER_ENGAGEMENT_HISTORY,
        "A user's recent watches and impressions as each request saw them, and as their next request will.",
    )
