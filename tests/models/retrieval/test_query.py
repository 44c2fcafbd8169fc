"""One retrieval query, from the Feast service `retrieval_user_features`, offline and online alike."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from feast import FeatureService

from feature_repo.features import feature_views
from feature_repo.services import RETRIEVAL_USER_FEATURES, feature_services
from models.retrieval.features import USER_COLUMNS
from models.retrieval.query import QUERY_COLUMNS, check_service, historical_queries, query_from_online_row
from serving.online_features import OnlineFeatureReader
from tests.models.retrieval.user_feature_marts import history_row, profile_row, store_over_marts

DAYS = [datetime(2026, 1, day) for day in (1, 2, 3, 4)]
# user 1 watched 10 at 10:00 and 11 at 12:00 on 01-02 (searching "cat video" in between);
# user 2 only searched; user 3 has a profile and nothing else.
PROFILES = [
    *[profile_row(1, day, country="FR", device="tv") for day in DAYS],
    *[profile_row(2, day, country="BR", gender=None) for day in DAYS],
    *[profile_row(3, day, country="IN") for day in DAYS],
]
HISTORIES = [
    history_row(1, datetime(2026, 1, 2, 10), [10], []),
    history_row(1, datetime(2026, 1, 2, 12), [10, 11], ["cat", "cat video", "video"]),
    history_row(2, datetime(2026, 1, 2, 9), [], ["news"]),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return store_over_marts(tmp_path_factory.mktemp("query_home"), PROFILES, HISTORIES)


def _service(tmp_path, *view_names: str, history_features: list[str] | None = None) -> FeatureService:
    views = feature_views(tmp_path)
    features = [views[name] for name in view_names]
    if history_features is not None:
        features.append(views["user_watch_history"][history_features])
    return FeatureService(name=RETRIEVAL_USER_FEATURES, features=features)


def test_every_feature_of_the_retrieval_service_becomes_a_tower_input(tmp_path):
    service = feature_services(feature_views(tmp_path))[RETRIEVAL_USER_FEATURES]
    check_service(service)  # the service holds exactly the features the query maps
    assert tuple(QUERY_COLUMNS.values()) == USER_COLUMNS  # and each reaches the user tower


def test_a_service_feature_the_query_does_not_map_is_refused(tmp_path):
    whole_history = _service(tmp_path, "user_profile", "user_watch_history")
    with pytest.raises(ValueError, match=r"carries \['watch_count_total', 'last_watched_video_id'\]"):
        check_service(whole_history)
    with_activity = _service(tmp_path, "user_profile", "user_activity",
                             history_features=["recent_watch_video_ids", "recent_search_tokens"])
    with pytest.raises(ValueError, match="watch_count_28d"):
        check_service(with_activity)


def test_a_query_feature_the_service_lacks_is_refused(tmp_path):
    without_searches = _service(tmp_path, "user_profile", history_features=["recent_watch_video_ids"])
    with pytest.raises(ValueError, match=r"expects \['recent_search_tokens'\]"):
        check_service(without_searches)


def test_history_is_read_strictly_before_the_given_time(store):
    """The state stamped at a label watch holds that watch: a query at that instant must not."""
    examples = pd.DataFrame({"user_id": [1, 1], "label_video_id": [11, 12]})
    label_time = pd.Timestamp("2026-01-02 12:00")
    as_of = pd.Series([label_time, label_time + pd.Timedelta(microseconds=1)])
    queries = historical_queries(store, examples, as_of=as_of)
    assert queries["history_video_ids"].tolist() == [[10], [10, 11]]
    assert queries["history_search_tokens"].tolist() == [[], ["cat", "cat video", "video"]]
    assert queries["label_video_id"].tolist() == [11, 12]


def test_missing_features_become_empty_histories_and_no_category(store):
    examples = pd.DataFrame({"user_id": [3, 2], "split": ["holdout", "train"]}, index=[7, 5])
    queries = historical_queries(store, examples, as_of=pd.Timestamp("2026-01-03"))
    assert list(queries.index) == [7, 5] and queries["split"].tolist() == ["holdout", "train"]
    assert queries["history_video_ids"].tolist() == [[], []]
    assert queries["history_search_tokens"].tolist() == [[], ["news"]]
    assert queries["country"].tolist() == ["IN", "BR"]
    assert queries["gender"].tolist() == ["female", None]
    assert queries["example_age_days"].tolist() == [0.0, 0.0]  # asked "now"
    assert "event_timestamp" not in queries.columns


def test_users_none_of_whom_has_a_history_row_get_empty_histories(store):
    queries = historical_queries(store, pd.DataFrame({"user_id": [3]}), as_of=pd.Timestamp("2026-01-03"))
    assert queries[["history_video_ids", "history_search_tokens", "country"]].values.tolist() == [[[], [], "IN"]]


def test_a_given_example_age_is_kept(store):
    examples = pd.DataFrame({"user_id": [1], "example_age_days": [2.5]})
    queries = historical_queries(store, examples, as_of=pd.Timestamp("2026-01-03"))
    assert queries["example_age_days"].tolist() == [2.5]


def test_examples_already_holding_query_columns_are_refused(store):
    examples = pd.DataFrame({"user_id": [1], "history_video_ids": [[10]]})
    with pytest.raises(ValueError, match=r"already hold query columns \['history_video_ids'\]"):
        historical_queries(store, examples, as_of=pd.Timestamp("2026-01-03"))


def test_online_row_and_offline_frame_give_identical_queries(store):
    """Serving's online read and a point-in-time join at the same instant build the same query."""
    store.materialize(start_date=datetime(2025, 12, 31), end_date=datetime(2026, 1, 4))
    reader = OnlineFeatureReader(store)
    now = pd.Timestamp("2026-01-04 00:00:01")  # just after the last materialized feature row
    users = [1, 2, 3]
    offline = historical_queries(store, pd.DataFrame({"user_id": users}), as_of=now).drop(columns="user_id")
    for position, user in enumerate(users):
        online = query_from_online_row(reader.user_features(user))
        pd.testing.assert_frame_equal(online, offline.iloc[[position]].reset_index(drop=True))
    first = query_from_online_row(reader.user_features(1)).iloc[0]
    assert first["history_video_ids"] == [10, 11]
    assert [type(video) for video in first["history_video_ids"]] == [int, int]
    assert (first["country"], first["device"]) == ("FR", "tv")


def test_equally_long_histories_stay_one_list_per_row():
    from models.retrieval.query import queries_from_features

    features = pd.DataFrame({
        "recent_watch_video_ids": [[1, 2], [3, 4]], "recent_search_tokens": [["a"], ["b"]],
        "country": ["BR", None], "device": ["tv", "tv"], "age_bucket": [None, "25-34"], "gender": ["f", "m"],
    }, index=[10, 11])

    queries = queries_from_features(features)

    assert queries["history_video_ids"].tolist() == [[1, 2], [3, 4]]
    assert queries["country"].tolist() == ["BR", None]
    assert queries.index.tolist() == [10, 11]
