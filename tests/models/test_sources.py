import numpy as np
import pandas as pd
import pytest

from models.sources import (
    Candidate,
    CoWatchConfig,
    CoWatchSource,
    ExplorationConfig,
    ExplorationSource,
    FreshConfig,
    FreshSource,
    MultiSourceConfig,
    MultiSourceRetriever,
    SubscriptionsConfig,
    SubscriptionsSource,
    TrendingConfig,
    TrendingSource,
    union_candidates,
)

NOW = pd.Timestamp("2024-03-10")


def hours_before_now(hours: float) -> pd.Timestamp:
    return NOW - pd.Timedelta(hours=hours)


@pytest.fixture
def planted_watches() -> pd.DataFrame:
    """Users 1-5 watch A (1) then B (2) within minutes; P (9) is watched by everyone, often next
    to A; C (3) follows A only after a 2-hour gap (another session)."""
    rows = []
    for user in range(1, 6):
        start = hours_before_now(48 + user)
        rows += [(user, 1, start), (user, 2, start + pd.Timedelta(minutes=5)),
                 (user, 9, start + pd.Timedelta(minutes=8)), (user, 3, start + pd.Timedelta(hours=2))]
    for user in range(6, 40):  # P is globally popular; a few of these also watch A right before P
        start = hours_before_now(30 + user)
        if user < 12:
            rows.append((user, 1, start - pd.Timedelta(minutes=3)))
        rows += [(user, 9, start), (user, 100 + user, start + pd.Timedelta(minutes=4))]
    return pd.DataFrame(rows, columns=["user_id", "video_id", "watch_time"])


@pytest.mark.parametrize("measure", ["pmi", "cosine"])
def test_co_watch_finds_the_planted_neighbour_over_the_popular_video(planted_watches, measure):
    source = CoWatchSource(CoWatchConfig(measure=measure, min_pair_users=2)).fit(planted_watches, NOW)
    neighbours = dict(source.neighbours(1))
    co_users_with_popular, co_users_with_b = 11, 5  # raw counts favour P
    assert co_users_with_popular > co_users_with_b
    assert source.neighbours(1)[0][0] == 2
    assert neighbours[2] > neighbours.get(9, 0.0)
    assert 3 not in neighbours  # two hours later is another session


def test_co_watch_recommends_from_recent_history_excluding_watched(planted_watches):
    source = CoWatchSource(CoWatchConfig(min_pair_users=2)).fit(planted_watches, NOW)
    assert source.recommend([1], exclude=set(), k=1) == source.neighbours(1)[:1]
    assert 2 not in [video for video, _ in source.recommend([1], exclude={2}, k=5)]
    assert source.recommend([1, 2], exclude=set(), k=5)[0][0] not in {1, 2}


def test_co_watch_ignores_watches_at_or_after_now(planted_watches):
    late = planted_watches.assign(watch_time=planted_watches["watch_time"] + pd.Timedelta(days=30))
    assert CoWatchSource().fit(late, NOW).neighbours(1) == []


@pytest.fixture
def catalog() -> pd.DataFrame:
    rows = [  # video_id, creator_id, upload age in days
        (10, 1, 1.0), (11, 1, 3.0), (12, 1, 40.0), (13, 2, 0.5), (14, 3, 2.0), (15, 2, -1.0), (16, 4, 200.0),
    ]
    return pd.DataFrame(
        [(video, creator, NOW - pd.Timedelta(days=age)) for video, creator, age in rows],
        columns=["video_id", "creator_id", "upload_time"],
    )


def test_subscriptions_return_only_subscribed_creators_recent_uploads_newest_first(catalog):
    subscriptions = pd.DataFrame(
        {"user_id": [7, 7, 8], "creator_id": [1, 2, 3], "subscribed_time": [NOW - pd.Timedelta(days=90)] * 3}
    )
    source = SubscriptionsSource(SubscriptionsConfig(window_days=14)).fit(subscriptions, catalog, NOW)
    # 12 is too old, 15 is uploaded after now, 14 belongs to creator 3 whom user 7 does not follow
    assert [video for video, _ in source.recommend(7, exclude=set(), k=10)] == [13, 10, 11]
    assert [video for video, _ in source.recommend(7, exclude={13}, k=1)] == [10]
    assert source.recommend(99, exclude=set(), k=10) == []


def test_trending_ranks_the_recent_surge_above_the_steadily_popular():
    rows = []
    for day in range(8):  # video 1: 20 watches every day; video 2: 2 a day, then 15 in the last 24 h
        rows += [(1, hours_before_now(24 * day + 1 + i * 0.5)) for i in range(20)]
        rows += [(2, hours_before_now(24 * day + 2 + i)) for i in range(15 if day == 0 else 2)]
    rows += [(3, hours_before_now(5))]  # a single watch is not a trend
    watches = pd.DataFrame(rows, columns=["video_id", "watch_time"])
    source = TrendingSource(TrendingConfig(recent_hours=24, baseline_days=7, smoothing=1.0)).fit(watches, NOW)
    assert [video for video, _ in source.recommend(set(), 3)] == [2, 3, 1]
    assert [video for video, _ in source.recommend({2}, 1)] == [3]


def test_fresh_excludes_old_uploads_and_ranks_by_early_engagement(catalog):
    # 11 (3 days old): 3 watchers → 3/4 a day; 10 (1 day old): 1 watcher → 1/2; the rest none
    watches = pd.DataFrame(
        {"user_id": [1, 2, 3, 4], "video_id": [11, 11, 11, 10], "watch_time": [NOW - pd.Timedelta(hours=1)] * 4}
    )
    engaged = FreshSource(FreshConfig(window_days=7, order="engagement")).fit(catalog, watches, NOW)
    newest = FreshSource(FreshConfig(window_days=7, order="newest")).fit(catalog, watches, NOW)
    assert [video for video, _ in newest.recommend(set(), 10)] == [13, 10, 14, 11]
    assert [video for video, _ in engaged.recommend(set(), 10)] == [11, 10, 13, 14]


def test_exploration_is_seeded_and_samples_only_under_exposed_videos():
    catalog = pd.DataFrame({"video_id": np.arange(1, 201), "upload_time": NOW - pd.Timedelta(days=10)})
    counts = pd.DataFrame({"video_id": np.arange(1, 201), "impressions": np.arange(1, 201) * 10})
    source = ExplorationSource(ExplorationConfig(pool_size=50, seed=3)).fit(catalog, counts, NOW)
    assert sorted(source.pool) == list(range(1, 51))
    first = source.recommend(user_id=5, exclude=set(), k=10)
    assert first == source.recommend(user_id=5, exclude=set(), k=10)
    assert first != source.recommend(user_id=6, exclude=set(), k=10)
    assert {video for video, _ in first} <= set(range(1, 51))
    excluded = {video for video, _ in first[:3]}
    assert not excluded & {video for video, _ in source.recommend(user_id=5, exclude=excluded, k=10)}


def test_exploration_draws_the_least_exposed_most_often():
    catalog = pd.DataFrame({"video_id": np.arange(1, 101), "upload_time": NOW - pd.Timedelta(days=1)})
    counts = pd.DataFrame({"video_id": np.arange(1, 101), "impressions": np.where(np.arange(1, 101) <= 50, 0, 99)})
    source = ExplorationSource(ExplorationConfig(pool_size=100)).fit(catalog, counts, NOW)
    drawn = [video for user in range(200) for video, _ in source.recommend(user, set(), 5)]
    assert np.mean(np.array(drawn) <= 50) > 0.9


def test_union_respects_quotas_excludes_watched_and_keeps_the_priority_source():
    lists = {
        "trending": [(5, 9.0), (1, 8.0), (6, 7.0)],
        "ann": [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)],
        "fresh": [(7, 1.0)],
    }
    candidates = union_candidates(lists, {"ann": 2, "trending": 2, "fresh": 0}, exclude={2})
    assert candidates == [
        Candidate(1, "ann", 0.9, ("ann", "trending"), source_rank=0),
        Candidate(3, "ann", 0.7, ("ann",), source_rank=1),
        Candidate(5, "trending", 9.0, ("trending",), source_rank=0),
    ]
    assert [candidate.rank_score for candidate in candidates] == [1.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="no place in the priority"):
        union_candidates({"typo": [(1, 1.0)]}, {"typo": 1})


@pytest.fixture
def retriever(planted_watches, catalog) -> MultiSourceRetriever:
    subscriptions = pd.DataFrame({"user_id": [1], "creator_id": [1], "subscribed_time": [NOW - pd.Timedelta(days=9)]})
    counts = pd.DataFrame({"video_id": [10, 11], "impressions": [500, 3]})
    config = MultiSourceConfig(
        ann_quota=2, co_watch=CoWatchConfig(quota=3, min_pair_users=2),
        exploration=ExplorationConfig(quota=2, pool_size=4),
    )
    return MultiSourceRetriever(config).fit(planted_watches, catalog, subscriptions, counts, NOW)


def test_retrieve_unions_every_source_and_never_returns_the_history(retriever):
    candidates = retriever.retrieve(1, history_ids=[1], exclude={11},
                                    precomputed={"ann": [(1, 0.9), (50, 0.8), (2, 0.7)]})
    ids = [candidate.video_id for candidate in candidates]
    assert len(ids) == len(set(ids))
    assert not {1, 11} & set(ids)
    assert candidates[0] == Candidate(50, "ann", 0.8, ("ann",))
    assert next(c for c in candidates if c.video_id == 2).sources[:2] == ("ann", "co_watch")
    assert {"subscriptions", "trending", "fresh", "exploration"} <= {c.source for c in candidates}
    counts = pd.Series([c.source for c in candidates]).value_counts()
    assert counts["ann"] <= 2 and counts.get("co_watch", 0) <= 3 and counts["exploration"] <= 2


def test_save_and_load_round_trip(retriever, tmp_path):
    retriever.save(tmp_path / "sources")
    loaded = MultiSourceRetriever.load(tmp_path / "sources")
    assert loaded.config == retriever.config and loaded.now == retriever.now
    assert loaded.summary() == retriever.summary()
    assert not list((tmp_path / "sources").glob("*.pkl"))
    for user, history in [(1, [1]), (3, [2, 9]), (42, [])]:
        assert loaded.retrieve(user, history, {10}) == retriever.retrieve(user, history, {10})
