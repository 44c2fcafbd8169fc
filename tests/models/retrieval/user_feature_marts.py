"""A Feast store over hand-written marts, for tests that read users' retrieval features through it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore

from feature_repo.store import apply_feature_definitions
from tests.engagement_rows import engagement_row
from vidrec.settings import VidrecSettings

HISTORY_SCHEMA = pa.schema([
    ("user_id", pa.int64()),
    ("event_timestamp", pa.timestamp("us")),
    ("recent_watch_video_ids", pa.list_(pa.int64())),
    ("recent_search_tokens", pa.list_(pa.string())),
    ("watch_count_total", pa.int64()),
    ("last_watched_video_id", pa.int64()),
])


def profile_row(user_id: int, day: datetime, country: str = "US", device: str = "mobile",
                age_bucket: str = "18-24", gender: str | None = "female") -> dict:
    """A `user_features_daily` snapshot (the activity counters are not retrieval inputs)."""
    return dict(user_id=user_id, event_timestamp=day, country=country, device=device, age_bucket=age_bucket,
                gender=gender, watch_count_28d=1, watch_seconds_28d=60.0, mean_watch_fraction_28d=0.5,
                like_count_28d=0, active_days_28d=1, impressions_7d=2, clicks_7d=1)


def history_row(user_id: int, time: datetime, watches: list[int], search_tokens: list[str]) -> dict:
    """A `user_watch_history` state: the watches (oldest first) and search tokens as of `time`."""
    return dict(user_id=user_id, event_timestamp=time, recent_watch_video_ids=watches,
                recent_search_tokens=search_tokens, watch_count_total=len(watches),
                last_watched_video_id=watches[-1] if watches else None)


def store_over_marts(home: Path, profiles: list[dict], histories: list[dict]) -> FeatureStore:
    """The four feature marts under `home` (one video and one engagement row besides the given
    users' rows) with the feature definitions applied."""
    settings = VidrecSettings(home=home)
    settings.marts_dir.mkdir(parents=True)
    first_day = min(row["event_timestamp"] for row in profiles)
    video = dict(video_id=10, event_timestamp=first_day, creator_id=1, category="news", duration_seconds=60.0,
                 video_age_days=1.0, impressions_7d=1, clicks_7d=0, ctr_7d=0.0, watches_7d=0, watch_seconds_7d=0.0,
                 mean_watch_fraction_7d=0.0, like_rate_7d=0.0, watch_count_total=0)
    tables = {
        "user_features_daily": pa.Table.from_pylist(profiles),
        "user_watch_history": pa.Table.from_pylist(histories, schema=HISTORY_SCHEMA),
        "video_features_daily": pa.Table.from_pylist([video]),
        "user_engagement_history": pa.Table.from_pylist([engagement_row("next:1", 1, first_day)]),
    }
    for mart, table in tables.items():
        pq.write_table(table, settings.marts_dir / f"{mart}.parquet")
    return apply_feature_definitions(settings)
