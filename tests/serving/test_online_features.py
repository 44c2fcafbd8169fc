"""Request-time features: video features cached with a TTL, user features always fresh."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo.store import apply_feature_definitions
from serving.online_features import OnlineFeatureReader
from serving.request_clock import DataClock, request_clock
from tests.engagement_rows import engagement_row
from vidrec.settings import VidrecSettings

DAY = datetime(2026, 1, 3)
DAY_SECONDS = 1767398400.0  # DAY in Unix seconds
# User 7 watched video 5 (creator 1, news) two days before DAY, and was shown video 6 twice since.
ENGAGEMENT_ROW = engagement_row(
    "next:7", 7, DAY, watches=[(5, 1, "news", DAY_SECONDS - 2 * 86400, 0.5)],
    impressions=[(6, DAY_SECONDS - 3600), (5, DAY_SECONDS - 3 * 86400), (6, DAY_SECONDS - 60)],
)


def _video_row(video_id: int, ctr: float) -> dict:
    return dict(video_id=video_id, event_timestamp=DAY, creator_id=1, category="news", duration_seconds=90.0,
                video_age_days=2.0, impressions_7d=4, clicks_7d=1, ctr_7d=ctr, watches_7d=1, watch_seconds_7d=45.0,
                mean_watch_fraction_7d=0.5, like_rate_7d=0.0, watch_count_total=1)


def _user_row(user_id: int, watch_count: int) -> dict:
    return dict(user_id=user_id, event_timestamp=DAY, country="BR", device="tv", age_bucket="25-34", gender="male",
                watch_count_28d=watch_count, watch_seconds_28d=300.0, mean_watch_fraction_28d=0.4, like_count_28d=1,
                active_days_28d=2, impressions_7d=30, clicks_7d=3)


def _ranking_frame(reader: OnlineFeatureReader, *args) -> pd.DataFrame:
    return pd.DataFrame(reader.ranking_columns(*args))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    settings.marts_dir.mkdir(parents=True)
    marts = {
        "user_features_daily": [_user_row(7, 3)],
        "video_features_daily": [_video_row(5, 0.2), _video_row(6, 0.1)],
        "user_watch_history": [dict(user_id=7, event_timestamp=DAY, recent_watch_video_ids=[5],
                                    recent_search_tokens=["news"], watch_count_total=1, last_watched_video_id=5)],
        "user_engagement_history": [ENGAGEMENT_ROW],
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


def test_with_the_background_refresher_requests_never_wait_on_a_refresh(store):
    clock = FakeClock()
    reader = OnlineFeatureReader(store, video_ttl_seconds=300, clock=clock)
    reader.warm_video_cache([5])
    reader.start_video_refresher()  # its first round is 150 real seconds away: it stays idle here
    try:
        _push(store, "video_stats", [_video_row(5, 0.9), _video_row(6, 0.7)])
        clock.now = 301
        degraded: list[str] = []

        frame = pd.DataFrame(reader.ranking_columns({}, 7, [5, 6], DAY_SECONDS, degraded=degraded))

        # video 6 was never cached: read now; video 5 expired without a refresh: served stale, and said so
        assert frame["ctr_7d"].tolist() == [0.2, 0.7]
        assert degraded == ["candidate_features:stale"]
        reader.warm_video_cache([5])  # what a refresher round does
        assert reader.video_features([5])["ctr_7d"].tolist() == [0.9]
    finally:
        reader.stop_video_refresher()


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

    frame = _ranking_frame(reader, user, 7, [6, 5, 6], DAY_SECONDS, ["ann", "trending", "ann"], [1.0, 0.5, 1.0])

    assert frame["video_id"].tolist() == [6, 5, 6]
    assert frame["user_id"].tolist() == [7, 7, 7]
    assert frame["country"].tolist() == ["BR"] * 3
    assert frame["ctr_7d"].tolist() == [0.1, 0.2, 0.1]
    assert frame["candidate_source"].tolist() == ["ann", "trending", "ann"]
    assert frame["recent_watch_video_ids"].tolist() == [[5]] * 3  # the ranker's bag of recent watches
    assert "recent_search_tokens" not in frame.columns and "watch_log" not in frame.columns


def test_cross_features_describe_the_users_past_with_each_candidate(store):
    reader = OnlineFeatureReader(store)

    frame = _ranking_frame(reader, reader.user_features(7), 7, [5, 6], DAY_SECONDS).set_index("video_id")

    assert frame.loc[5, "user_video_watches"] == 1
    assert frame.loc[5, "user_video_days_since_watch"] == pytest.approx(2.0)
    assert frame.loc[5, "user_video_unclicked_impressions"] == 0  # shown before the watch, not since
    assert frame.loc[6, "user_video_watches"] == 0 and pd.isna(frame.loc[6, "user_video_days_since_watch"])
    assert frame.loc[6, "user_video_unclicked_impressions"] == 2
    # video 6 shares video 5's creator and category
    assert frame.loc[6, "user_creator_watches"] == 1
    assert frame.loc[6, "user_category_watch_fraction"] == pytest.approx(0.5)


def test_serving_computes_on_demand_features_exactly_as_feast_does(store):
    reader = OnlineFeatureReader(store)
    served = _ranking_frame(reader, reader.user_features(7), 7, [5, 6], DAY_SECONDS, ["ann", None], [1.0, float("nan")])

    feast = pd.DataFrame(
        store.get_online_features(
            features=store.get_feature_service("ranker_features"),
            entity_rows=[
                {"user_id": 7, "video_id": 5, "request_id": "next:7", "request_unix_seconds": DAY_SECONDS,
                 "retrieval_source": "ann", "retrieval_source_score": 1.0},
                {"user_id": 7, "video_id": 6, "request_id": "next:7", "request_unix_seconds": DAY_SECONDS,
                 "retrieval_source": None, "retrieval_source_score": None},
            ],
        ).to_dict()
    )

    columns = [name for name in feast.columns if name not in ("user_id", "video_id", "request_id")]
    assert {"user_video_watches", "user_creator_days_since_watch", "candidate_source_score"} <= set(columns)
    pd.testing.assert_frame_equal(
        served[columns].reset_index(drop=True), feast[columns], check_dtype=False, check_like=True
    )


def test_data_clock_ranks_requests_as_of_the_last_materialization(store, tmp_path):
    data_clock = request_clock(VidrecSettings(home=tmp_path), store)  # the default profile's clock
    assert data_clock() == datetime(2026, 1, 4, tzinfo=UTC).timestamp()
    production = VidrecSettings(home=tmp_path, profile="production")
    assert production.effective_serving_clock == "wall"
    assert request_clock(production, store) is time.time


def test_the_data_clock_follows_a_later_materialization_and_never_goes_back(store):
    materialized = datetime(2026, 1, 4, tzinfo=UTC).timestamp()
    read_at_an_earlier_load = DataClock(store, until=materialized - 86_400, reread_seconds=1e-9)
    assert read_at_an_earlier_load() == materialized  # the store moved on since: the clock follows
    ahead = DataClock(store, until=materialized + 86_400, reread_seconds=1e-9)
    assert ahead() == materialized + 86_400
    never_reread = DataClock(store, until=materialized - 86_400, reread_seconds=0)
    assert never_reread() == materialized - 86_400


def test_the_data_clock_runs_its_advance_hook_once_when_it_moves(store):
    materialized = datetime(2026, 1, 4, tzinfo=UTC).timestamp()
    advanced = []
    clock = DataClock(store, until=materialized - 86_400, reread_seconds=1e-9, on_advance=lambda: advanced.append(1))
    assert (clock(), clock()) == (materialized, materialized)
    assert advanced == [1]  # the second reading found nothing newer
    up_to_date = DataClock(store, until=materialized, reread_seconds=1e-9, on_advance=lambda: advanced.append(2))
    up_to_date()
    assert advanced == [1]
