"""The Feast layer over hand-written marts: definitions apply idempotently, historical features
are point-in-time correct through the feature services, and materialized online features
(arrays included) serve the latest values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo.on_demand import unix_seconds
from feature_repo.services import RANKER_FEATURES, RETRIEVAL_USER_FEATURES
from feature_repo.store import (
    apply_feature_definitions,
    build_repo_config,
    feature_definitions,
    feature_store,
    redis_connection_string,
)
from tests.engagement_rows import engagement_row
from vidrec.settings import VidrecSettings


def naive(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


def utc(text: str) -> datetime:
    return naive(text).replace(tzinfo=UTC)


def user_day(user_id: int, day: str, watch_count_28d: int, impressions_7d: int) -> dict:
    return dict(
        user_id=user_id, event_timestamp=naive(f"{day} 00:00"), country="US", device="mobile",
        age_bucket="18-24", gender="female", watch_count_28d=watch_count_28d,
        watch_seconds_28d=100.0 * watch_count_28d, mean_watch_fraction_28d=0.5, like_count_28d=1,
        active_days_28d=1, impressions_7d=impressions_7d, clicks_7d=1,
    )


def video_day(video_id: int, day: str, impressions_7d: int) -> dict:
    return dict(
        video_id=video_id, event_timestamp=naive(f"{day} 00:00"), creator_id=100 + video_id,
        category="music", duration_seconds=60.0, video_age_days=1.0, impressions_7d=impressions_7d,
        clicks_7d=0, ctr_7d=1 / (impressions_7d + 20), watches_7d=0, watch_seconds_7d=0.0,
        mean_watch_fraction_7d=0.0, like_rate_7d=0.0, watch_count_total=7,
    )


def engagement(request_id: str, user_id: int, time: str, watched: list[int]) -> dict:
    seconds = utc(time).timestamp()
    return engagement_row(
        request_id, user_id, naive(time), watches=[(video, 100 + video, "music", seconds, 0.5) for video in watched]
    )


# What the caller knows of each ranked candidate (the candidate_engagement view's request data).
REQUEST_DATA = {"retrieval_source": "ann", "retrieval_source_score": 1.0}


MARTS = {
    "user_features_daily": [
        user_day(1, "2026-01-02", watch_count_28d=1, impressions_7d=10),
        user_day(1, "2026-01-03", watch_count_28d=5, impressions_7d=30),
        user_day(2, "2026-01-03", watch_count_28d=2, impressions_7d=20),
    ],
    "video_features_daily": [
        video_day(10, "2026-01-02", impressions_7d=3),
        video_day(10, "2026-01-03", impressions_7d=4),
    ],
    "user_watch_history": [
        dict(user_id=1, event_timestamp=naive("2026-01-02 10:00"), recent_watch_video_ids=[10],
             recent_search_tokens=[], watch_count_total=1, last_watched_video_id=10),
        dict(user_id=1, event_timestamp=naive("2026-01-02 12:00"), recent_watch_video_ids=[10, 11],
             recent_search_tokens=["cat", "cat video", "video"], watch_count_total=2, last_watched_video_id=11),
        dict(user_id=2, event_timestamp=naive("2026-01-02 09:00"), recent_watch_video_ids=[],
             recent_search_tokens=["news"], watch_count_total=0, last_watched_video_id=None),
    ],
    "user_engagement_history": [
        engagement("r1", 1, "2026-01-02 10:00", watched=[10]),
        engagement("next:1", 1, "2026-01-02 10:00", watched=[10]),
        engagement("next:2", 2, "2026-01-02 09:00", watched=[]),
    ],
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> VidrecSettings:
    settings = VidrecSettings(home=tmp_path_factory.mktemp("vidrec_home"))
    settings.marts_dir.mkdir(parents=True)
    for mart, rows in MARTS.items():
        pq.write_table(pa.Table.from_pylist(rows), settings.marts_dir / f"{mart}.parquet")
    apply_feature_definitions(settings)
    return settings


def test_definitions_read_the_settings_marts(settings: VidrecSettings) -> None:
    definitions = {definition.name: definition for definition in feature_definitions(settings)}
    assert set(definitions) == {
        "user", "video", "user_profile", "user_activity", "video_stats", "user_watch_history",
        "request", "request_engagement", "candidate_engagement", RANKER_FEATURES, RETRIEVAL_USER_FEATURES,
    }
    assert definitions["video_stats"].batch_source.path == str(settings.marts_dir / "video_features_daily.parquet")
    for view in ("user_profile", "user_activity", "video_stats", "user_watch_history", "request_engagement"):
        assert definitions[view].ttl > timedelta(0) and definitions[view].description


def test_apply_is_idempotent(settings: VidrecSettings) -> None:
    store = apply_feature_definitions(settings)
    assert sorted(view.name for view in store.list_feature_views()) == [
        "request_engagement", "user_activity", "user_profile", "user_watch_history", "video_stats",
    ]
    assert [view.name for view in store.list_on_demand_feature_views()] == ["candidate_engagement"]
    assert sorted(service.name for service in store.list_feature_services()) == [
        RANKER_FEATURES, RETRIEVAL_USER_FEATURES,
    ]
    assert (settings.feast_dir / "registry.db").is_file()


def historical(store, service: str, entity_rows: list[tuple]) -> pd.DataFrame:
    columns = ["user_id", "video_id", "event_timestamp"] if len(entity_rows[0]) == 3 else ["user_id", "event_timestamp"]
    entities = pd.DataFrame(entity_rows, columns=columns)
    entities["event_timestamp"] = pd.to_datetime(entities["event_timestamp"], utc=True)
    if service == RANKER_FEATURES:
        entities = entities.assign(  # one request per user here
            request_id="r" + entities["user_id"].astype(str),
            request_unix_seconds=unix_seconds(entities["event_timestamp"]), **REQUEST_DATA,
        )
    return (
        store.get_historical_features(entity_df=entities, features=store.get_feature_service(service))
        .to_df()
        .sort_values(columns)
        .reset_index(drop=True)
    )


def test_ranker_features_are_point_in_time_correct(settings: VidrecSettings) -> None:
    frame = historical(
        feature_store(settings),
        RANKER_FEATURES,
        [(1, 10, "2026-01-02 18:00"), (1, 10, "2026-01-03 00:00"), (3, 10, "2026-01-03 12:00")],
    )
    assert frame["user_id"].tolist() == [1, 1, 3]
    # 01-02 18:00 sees the 01-02 snapshot, never the later 01-03 one; 01-03 00:00 sees its own
    assert frame["watch_count_28d"].tolist()[:2] == [1, 5]
    assert frame["impressions_7d"].tolist() == [3, 4, 4]  # the video's counter
    assert frame["user_impressions_7d"].tolist()[:2] == [10, 30]  # the user's, renamed
    assert frame["creator_id"].tolist() == [110, 110, 110]
    assert frame["country"].tolist()[:2] == ["US", "US"]
    # on-demand cross features: user 1 watched video 10 at 01-02 10:00
    assert frame["user_video_watches"].tolist() == [1, 1, 0]
    assert frame["user_video_days_since_watch"].tolist()[:2] == pytest.approx([8 / 24, 14 / 24])
    assert frame["candidate_source"].tolist() == ["ann"] * 3
    # a user without any feature rows keeps the row, with nulls
    assert pd.isna(frame.loc[2, "watch_count_28d"]) and pd.isna(frame.loc[2, "country"])


def test_rows_with_only_later_or_expired_features_keep_their_row_with_nulls(settings: VidrecSettings) -> None:
    """The duckdb offline store keeps an entity row whose feature rows all lie after its
    timestamp or beyond the ttl, with nulls (the file store it replaced dropped such rows)."""
    frame = historical(
        feature_store(settings),
        RANKER_FEATURES,
        [(1, 10, "2026-01-03 00:00"), (1, 10, "2026-01-06 12:00"), (2, 10, "2026-01-02 18:00")],
    )
    assert frame["event_timestamp"].tolist() == [
        pd.Timestamp(text, tz="UTC") for text in ("2026-01-03 00:00", "2026-01-06 12:00", "2026-01-02 18:00")
    ]
    # 01-06 12:00 is past the daily views' 2-day ttl, not the profile's 365 days; user 2's first
    # snapshot (01-03) lies after 01-02 18:00, while video 10's of 01-02 is there
    assert frame["watch_count_28d"].iloc[0] == 5
    assert frame["watch_count_28d"].iloc[1:].isna().all()
    assert frame["impressions_7d"].iloc[0] == 4 and pd.isna(frame["impressions_7d"].iloc[1])
    assert frame["impressions_7d"].iloc[2] == 3
    assert frame["country"].iloc[:2].tolist() == ["US", "US"] and pd.isna(frame["country"].iloc[2])


def test_retrieval_history_is_the_latest_state_at_or_before_the_timestamp(settings: VidrecSettings) -> None:
    frame = historical(
        feature_store(settings),
        RETRIEVAL_USER_FEATURES,
        [(1, "2026-01-02 11:59"), (1, "2026-01-02 12:00"), (2, "2026-01-03 12:00")],
    )
    assert "watch_count_total" not in frame.columns  # the service holds the retrieval tower's inputs only
    assert [list(ids) for ids in frame["recent_watch_video_ids"]] == [[10], [10, 11], []]
    assert [list(tokens) for tokens in frame["recent_search_tokens"]] == [[], ["cat", "cat video", "video"], ["news"]]


def test_online_features_serve_the_latest_materialized_values(settings: VidrecSettings) -> None:
    store = feature_store(settings)
    store.materialize(start_date=utc("2026-01-01 00:00"), end_date=utc("2026-01-02 23:00"))
    now = {"request_unix_seconds": utc("2026-01-04 00:00").timestamp(), **REQUEST_DATA}
    next_of = {1: {"request_id": "next:1"}, 2: {"request_id": "next:2"}}
    ranker = store.get_online_features(
        features=store.get_feature_service(RANKER_FEATURES),
        entity_rows=[{"user_id": 1, "video_id": 10, **now, **next_of[1]}],
    ).to_dict()
    assert (ranker["watch_count_28d"], ranker["impressions_7d"]) == ([1], [3])

    # the next run continues where the last one ended
    store.materialize_incremental(end_date=utc("2026-01-04 00:00"))
    ranker = store.get_online_features(
        features=store.get_feature_service(RANKER_FEATURES),
        entity_rows=[
            {"user_id": 1, "video_id": 10, **now, **next_of[1]},
            {"user_id": 2, "video_id": 10, **now, **next_of[2]},
        ],
    ).to_dict()
    assert ranker["watch_count_28d"] == [5, 2]
    assert ranker["user_creator_watches"] == [1, 0]
    assert ranker["user_creator_days_since_watch"] == [pytest.approx(1 + 14 / 24), None]
    assert ranker["user_impressions_7d"] == [30, 20]
    assert ranker["impressions_7d"] == [4, 4]
    assert ranker["category"] == ["music", "music"]

    history = store.get_online_features(
        features=store.get_feature_service(RETRIEVAL_USER_FEATURES),
        entity_rows=[{"user_id": 1}, {"user_id": 2}, {"user_id": 99}],
    ).to_dict()
    assert history["recent_watch_video_ids"] == [[10, 11], [], None]
    assert history["recent_search_tokens"] == [["cat", "cat video", "video"], ["news"], None]
    assert history["country"] == ["US", "US", None]
    assert (settings.feast_dir / "online_store.db").is_file()


def test_repo_config_puts_the_store_under_the_feast_dir(tmp_path: Path) -> None:
    config = build_repo_config(VidrecSettings(home=tmp_path))
    assert config.project == "vidrec"
    assert config.offline_store.type == "duckdb"
    assert config.online_store.type == "sqlite"
    assert config.online_store.path == str(tmp_path / "feast" / "online_store.db")


def test_production_profile_keeps_online_features_in_redis(tmp_path: Path) -> None:
    assert redis_connection_string("redis://127.0.0.1:6379/0") == "127.0.0.1:6379,db=0"
    assert redis_connection_string("redis://:secret@cache:6380/2") == "cache:6380,db=2,password=secret"
    with pytest.raises(ValueError, match="postgresql://x"):
        redis_connection_string("postgresql://x")
    config = build_repo_config(VidrecSettings(home=tmp_path, profile="production", redis_url="redis://cache:6379/1"))
    assert config.online_store.connection_string == "cache:6379,db=1"
