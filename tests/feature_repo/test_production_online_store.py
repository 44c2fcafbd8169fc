"""The production profile keeps online features in the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import json
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from feature_repo.services import RETRIEVAL_USER_FEATURES
from feature_repo.store import apply_feature_definitions
from tests.engagement_rows import engagement_row
from vidrec.settings import VidrecSettings

REDIS_TEST_DB = 13


@pytest.fixture
def production_settings(tmp_path) -> VidrecSettings:
    url = f"redis://127.0.0.1:6379/{REDIS_TEST_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings = VidrecSettings(home=tmp_path, profile="production", redis_url=url)
    settings.marts_dir.mkdir(parents=True)
    day = datetime(2026, 1, 3)
    pq.write_table(
        pa.Table.from_pylist([
            dict(user_id=7, event_timestamp=day, country="BR", device="tv", age_bucket="25-34", gender="male",
                 watch_count_28d=3, watch_seconds_28d=300.0, mean_watch_fraction_28d=0.4, like_count_28d=1,
                 active_days_28d=2, impressions_7d=30, clicks_7d=3)
        ]),
        settings.marts_dir / "user_features_daily.parquet",
    )
    pq.write_table(
        pa.Table.from_pylist([
            dict(video_id=5, event_timestamp=day, creator_id=1, category="news", duration_seconds=90.0,
                 video_age_days=2.0, impressions_7d=4, clicks_7d=1, ctr_7d=0.2, watches_7d=1,
                 watch_seconds_7d=45.0, mean_watch_fraction_7d=0.5, like_rate_7d=0.0, watch_count_total=1)
        ]),
        settings.marts_dir / "video_features_daily.parquet",
    )
    pq.write_table(
        pa.Table.from_pylist([
            dict(user_id=7, event_timestamp=day, recent_watch_video_ids=[5, 6], recent_search_tokens=["news"],
                 watch_count_total=2, last_watched_video_id=6)
        ]),
        settings.marts_dir / "user_watch_history.parquet",
    )
    pq.write_table(
        pa.Table.from_pylist([
            engagement_row("next:7", 7, day, watches=[(5, 1, "news", 1.0, 0.5), (6, 2, "music", 2.0, 1.0)],
                           impressions=[(5, 0.5)])
        ]),
        settings.marts_dir / "user_engagement_history.parquet",
    )
    yield settings
    client.flushdb()


def test_materialized_features_are_served_from_redis(production_settings):
    store = apply_feature_definitions(production_settings)
    store.materialize(start_date=datetime(2026, 1, 1), end_date=datetime(2026, 1, 4))

    assert redis.Redis.from_url(production_settings.redis_url).dbsize() > 0
    values = store.get_online_features(
        features=store.get_feature_service(RETRIEVAL_USER_FEATURES), entity_rows=[{"user_id": 7}, {"user_id": 8}]
    ).to_dict()
    assert values["country"] == ["BR", None]
    assert values["recent_watch_video_ids"] == [[5, 6], None]
    logs = store.get_online_features(
        features=["request_engagement:watch_log", "request_engagement:impression_log"],
        entity_rows=[{"request_id": "next:7"}],
    ).to_dict()
    assert json.loads(logs["watch_log"][0])["categories"] == ["news", "music"]
    assert json.loads(logs["impression_log"][0])["unix_seconds"] == [0.5]
    assert not (production_settings.feast_dir / "online_store.db").exists()


def test_a_whole_load_replaces_a_vanished_newest_row_in_redis(production_settings):
    """A corrected raw file took user 7's newest row away: the next whole load serves the row
    that is now the latest, though it is older than the one Redis holds."""
    store = apply_feature_definitions(production_settings)
    store.materialize(start_date=datetime(2026, 1, 1), end_date=datetime(2026, 1, 4))
    daily = production_settings.marts_dir / "user_features_daily.parquet"
    corrected = pq.read_table(daily).to_pylist()[0] | {"event_timestamp": datetime(2026, 1, 2), "country": "US",
                                                        "watch_count_28d": 1}
    pq.write_table(pa.Table.from_pylist([corrected]), daily)

    store.materialize(start_date=datetime(2026, 1, 1), end_date=datetime(2026, 1, 4))

    values = store.get_online_features(features=store.get_feature_service(RETRIEVAL_USER_FEATURES),
                                       entity_rows=[{"user_id": 7}]).to_dict()
    assert values["country"] == ["US"]
