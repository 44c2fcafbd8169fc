"""Request-time features: video features cached with a TTL, user features always fresh."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo.store import apply_feature_definitions
from serving.online_features import OnlineFeatureReader
from vidrec.settings import VidrecSettings

DAY = datetime(2026, 1, 3)


def _video_row(video_id: int, ctr: float) -> dict:
    return dict(video_id=video_id, event_timestamp=DAY, creator_id=1, category="news", duration_seconds=90.0,
                video_age_days=2.0, impressions_7d=4, clicks_7d=1, ctr_7d=ctr, watches_7d=1, watch_seconds_7d=45.0,
                mean_watch_fraction_7d=0.5, like_rate_7d=0.0, watch_count_total=1)


def _user_row(user_id: int, watch_count: int) -> dict:
    return dict(user_id=user_id, event_timestamp=DAY, country="BR", device="tv", age_bucket="25-34", gender="male",
                watch_count_28d=watch_count, watch_seconds_28d=300.0, mean_watch_fraction_28d=0.4, like_count_28d=1,
                active_days_28d=2, impressions_7d=30, clicks_7d=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def store(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    settings.marts_dir.mkdir(parents=True)
    marts = {
        "user_features_daily": [_user_row(7, 3)],
        "video_features_daily": [_video_row(5, 0.2), _video_row(6, 0.1)],
        "user_watch_history": [dict(user_id=7, event_timestamp=DAY, recent_watch_video_ids=[5],
                                    recent_search_tokens=["news"], watch_count_total=1, last_watched_video_id=5)],
    }
    for mart, rows in marts.items():
        pq.write_table(pa.Table.from_pylist(rows), settings.marts_dir / f"{mart}.parquet")
    store = apply_feature_definitions(settings)
    store.materialize(start_date=datetime(2026, 1, 1), end_date=datetime(2026, 1, 4))
    return store


def _push(store, view: str, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    frame["event_timestamp"] = pd.Timestamp("2026-01-03 12:00", tz="UTC")
    if view == "user_activity":
        frame = frame.rename(columns={"impressions_7d": "user_impressions_7d", "clicks_7d": "user_clicks_7d"})
    store.write_to_online_store(view, frame)


def test_video_features_come_from_the_cache_until_the_ttl_expires(store):
    clock = FakeClock()
    reader = OnlineFeatureReader(store, video_ttl_seconds=300, clock=clock)
    assert reader.video_features([5, 6])["ctr_7d"].tolist() == [0.2, 0.1]

    _push(store, "video_stats", [_video_row(5, 0.9)])
    clock.now = 299
    assert reader.video_features([5])["ctr_7d"].tolist() == [0.2]
    clock.now = 301
    assert reader.video_features([5, 6])["ctr_7d"].tolist() == [0.9, 0.1]


def test_user_features_are_read_fresh_on_every_request(store):
    reader = OnlineFeatureReader(store, video_ttl_seconds=300, clock=FakeClock())
    assert reader.user_features(7)["watch_count_28d"] == 3

    _push(store, "user_activity", [_user_row(7, 11)])

    assert reader.user_features(7)["watch_count_28d"] == 11


def test_unknown_user_has_no_features(store):
    assert OnlineFeatureReader(store).user_features(404) is None


def test_ranking_frame_has_one_row_per_candidate_with_user_and_video_features(store):
    reader = OnlineFeatureReader(store)
    user = reader.user_features(7)

    frame = reader.ranking_features(user, 7, [6, 5, 6])

    assert frame["video_id"].tolist() == [6, 5, 6]
    assert frame["user_id"].tolist() == [7, 7, 7]
    assert frame["country"].tolist() == ["BR"] * 3
    assert frame["ctr_7d"].tolist() == [0.1, 0.2, 0.1]
    assert "recent_watch_video_ids" not in frame.columns
