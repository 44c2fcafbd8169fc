"""Training frames keep every example, in order: impressions sharing a user and an instant, and
examples a view has no row for yet; on-demand cross features come out as Feast's own join gives them."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo.on_demand import unix_seconds
from feature_repo.services import RANKER_FEATURES
from feature_repo.store import apply_feature_definitions
from feature_repo.training_frames import historical_features
from tests.engagement_rows import engagement_row
from vidrec.settings import VidrecSettings


def _user_day(user_id: int, day: str, watch_count_28d: int) -> dict:
    return dict(
        user_id=user_id, event_timestamp=pd.Timestamp(f"{day} 00:00").to_pydatetime(), country="US",
        device="mobile", age_bucket="18-24", gender="female", watch_count_28d=watch_count_28d,
        watch_seconds_28d=10.0, mean_watch_fraction_28d=0.5, like_count_28d=1, active_days_28d=1,
        impressions_7d=5, clicks_7d=1,
    )


def _video_day(video_id: int, day: str, impressions_7d: int) -> dict:
    return dict(
        video_id=video_id, event_timestamp=pd.Timestamp(f"{day} 00:00").to_pydatetime(), creator_id=7,
        category="music", duration_seconds=60.0, video_age_days=1.0, impressions_7d=impressions_7d, clicks_7d=0,
        ctr_7d=0.05, watches_7d=0, watch_seconds_7d=0.0, mean_watch_fraction_7d=0.0, like_rate_7d=0.0,
        watch_count_total=3,
    )


def _ranked(examples: pd.DataFrame) -> pd.DataFrame:
    """Examples with the request data the ranker's on-demand view needs (request time = shown time)."""
    return examples.assign(
        request_id="r1", request_unix_seconds=unix_seconds(examples["event_timestamp"]), retrieval_source="trending",
        retrieval_source_score=0.5,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    settings = VidrecSettings(home=tmp_path_factory.mktemp("frames_home"))
    settings.marts_dir.mkdir(parents=True)
    marts = {
        "user_features_daily": [_user_day(1, "2026-01-02", 4), _user_day(1, "2026-01-03", 9)],
        "video_features_daily": [_video_day(10, "2026-01-02", 3), _video_day(11, "2026-01-02", 8)],
        "user_watch_history": [
            dict(user_id=1, event_timestamp=pd.Timestamp("2026-01-02 10:00").to_pydatetime(),
                 recent_watch_video_ids=[10], recent_search_tokens=[], watch_count_total=1, last_watched_video_id=10)
        ],
        # as of 10:00 user 1 had watched video 10 (at 10:00) and been shown video 11 (at 09:00)
        "user_engagement_history": [
            engagement_row(
                "r1", 1, pd.Timestamp("2026-01-02 10:00").to_pydatetime(),
                watches=[(10, 7, "music", unix_seconds(pd.Timestamp("2026-01-02 10:00")), 0.25)],
                impressions=[(11, unix_seconds(pd.Timestamp("2026-01-02 09:00")))],
            )
        ],
    }
    for mart, rows in marts.items():
        pq.write_table(pa.Table.from_pylist(rows), settings.marts_dir / f"{mart}.parquet")
    return apply_feature_definitions(settings)


def test_impressions_of_one_user_at_one_instant_all_get_features(store):
    """A slate logged with one timestamp: the user-keyed views must serve every row."""
    slate = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "video_id": [11, 10, 11],
            "event_timestamp": pd.to_datetime(["2026-01-02 12:00"] * 2 + ["2026-01-03 08:00"], utc=True),
            "clicked": [True, False, False],
        }
    )

    frame = historical_features(store, _ranked(slate), store.get_feature_service(RANKER_FEATURES))

    assert frame["video_id"].tolist() == [11, 10, 11]  # order and every row kept
    assert frame["clicked"].tolist() == [True, False, False]
    assert frame["watch_count_28d"].tolist() == [4, 4, 9]
    assert frame["impressions_7d"].tolist() == [8, 3, 8]
    assert frame["country"].tolist() == ["US", "US", "US"]


def test_examples_without_feature_rows_keep_their_row_with_nulls(store):
    examples = pd.DataFrame(
        {"user_id": [1, 99], "video_id": [10, 10],
         "event_timestamp": pd.to_datetime(["2026-01-02 12:00", "2026-01-02 12:00"], utc=True)}
    )

    frame = historical_features(store, _ranked(examples), store.get_feature_service(RANKER_FEATURES))

    assert frame["user_id"].tolist() == [1, 99]
    assert frame["watch_count_28d"].iloc[0] == 4
    assert pd.isna(frame["watch_count_28d"].iloc[1])
    assert frame["impressions_7d"].tolist() == [3, 3]


def test_missing_join_key_is_named(store):
    examples = pd.DataFrame({"user_id": [1], "event_timestamp": pd.to_datetime(["2026-01-02 12:00"], utc=True)})
    with pytest.raises(ValueError, match=r"lack join key\(s\) \['video_id'\]"):
        historical_features(store, examples, store.get_feature_service(RANKER_FEATURES))


def test_a_view_without_data_yet_does_not_blank_the_other_views(store):
    """Before the user's first watch the history view has no row; profile and activity still join."""
    examples = pd.DataFrame(
        {"user_id": [1, 1], "video_id": [10, 10],
         "event_timestamp": pd.to_datetime(["2026-01-02 08:00", "2026-01-02 12:00"], utc=True)}
    )

    frame = historical_features(store, _ranked(examples), store.get_feature_service(RANKER_FEATURES))

    assert frame["watch_count_28d"].tolist() == [4, 4]
    assert frame["country"].tolist() == ["US", "US"]
    assert pd.isna(frame["last_watched_video_id"].iloc[0])
    assert frame["last_watched_video_id"].iloc[1] == 10


def test_missing_request_data_is_named(store):
    examples = pd.DataFrame(
        {"user_id": [1], "video_id": [10], "request_id": ["r1"],
         "event_timestamp": pd.to_datetime(["2026-01-02 12:00"], utc=True)}
    )
    with pytest.raises(ValueError, match=r"lack request data \['request_unix_seconds'"):
        historical_features(store, examples, store.get_feature_service(RANKER_FEATURES))


def test_cross_features_are_point_in_time_and_match_feasts_own_join(store):
    examples = _ranked(
        pd.DataFrame(
            {"user_id": [1, 1, 1], "video_id": [10, 11, 10],
             "event_timestamp": pd.to_datetime(["2026-01-02 09:30", "2026-01-02 12:00", "2026-01-02 16:00"], utc=True)}
        )
    )

    frame = historical_features(store, examples, store.get_feature_service(RANKER_FEATURES))

    # 09:30 precedes the engagement state: no history yet
    assert frame["user_video_watches"].tolist() == [0, 0, 1]
    assert frame["user_video_days_since_watch"].iloc[2] == pytest.approx(6 / 24)
    assert frame["user_creator_watches"].tolist() == [0, 1, 1]  # both videos are creator 7's
    assert frame["user_creator_watch_fraction"].iloc[1] == pytest.approx(0.25)
    assert frame["user_video_unclicked_impressions"].tolist() == [0, 1, 0]
    assert frame["candidate_source"].tolist() == ["trending"] * 3
    assert "watch_log" not in frame.columns  # an input of the view, not a feature
    # Feast computing the same view on its own join gives the same values
    cross = ["user_video_watches", "user_creator_watches", "user_video_unclicked_impressions"]
    feast = store.get_historical_features(
        entity_df=examples.iloc[1:], features=[f"candidate_engagement:{name}" for name in cross]
    ).to_df().sort_values("event_timestamp")
    assert feast[cross].to_numpy().tolist() == frame[cross].iloc[1:].to_numpy().tolist()
