import numpy as np
import pandas as pd
import pytest

from models.baselines import EASE, MostPopular
from models.baselines.harness import HarnessSettings, MethodSpec, run_harness
from models.baselines.multi_source import MultiSourceUnion, interleave_by_quota
from models.evaluation.protocol import temporal_split
from models.evaluation.tuning import FloatRange
from models.sources import MultiSourceConfig

START = pd.Timestamp("2024-01-01")


def daily_interactions(num_users: int = 40, days: int = 10, seed: int = 0) -> pd.DataFrame:
    """Video v is uploaded on day v // 10 (ids 0..99); each user watches 3 videos a day, drawn
    from those uploaded that day or earlier, favouring the newest."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        for day in range(days):
            available = np.arange((day + 1) * 10)
            weights = np.exp((available // 10 - day) * 1.0)
            for video in rng.choice(available, 3, replace=False, p=weights / weights.sum()):
                rows.append((user, int(video), START + pd.Timedelta(days=day, hours=int(rng.integers(1, 23)))))
    return pd.DataFrame(rows, columns=["user_id", "video_id", "time"])


def daily_catalog() -> pd.DataFrame:
    video_ids = np.arange(100, dtype=np.int64)
    return pd.DataFrame({
        "video_id": video_ids,
        "creator_id": video_ids % 7,
        "category": "news",
        "duration_seconds": 300.0,
        "upload_time": START + pd.to_timedelta(video_ids // 10, unit="D"),
        "title_tokens": [["news"] for _ in video_ids],
    })


def test_interleaving_gives_each_source_its_quota_share_of_every_prefix():
    lists = {
        "ann": [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)],
        "co_watch": [(3, 5.0), (5, 4.0)],
        "fresh": [(6, 1.0), (7, 0.5)],
    }
    quotas = {"ann": 4, "co_watch": 2, "fresh": 1}
    # virtual positions: ann 1/8, 3/8, 5/8, 7/8; co_watch 1/4, 3/4; fresh 1/2 (its 2nd item is over quota)
    assert interleave_by_quota(lists, quotas) == [1, 3, 2, 6, 5, 4]
    # excluded ids are skipped before quotas apply, so the source's next item moves up
    assert interleave_by_quota(lists, quotas, exclude={1, 6}) == [2, 3, 7, 4, 5]


def test_union_without_subscriptions_or_impressions_leaves_those_sources_empty():
    split = temporal_split(daily_interactions())
    union = MultiSourceUnion(MostPopular(), daily_catalog()).fit(split.train)
    assert union.config.quotas()["exploration"] == 0
    user = int(split.test["user_id"].iloc[0])
    lists = union._day_sources(union.user_cut[user]).recommend(user, set(), union.config.quotas())
    assert lists["subscriptions"] == [] and lists["exploration"] == []
    assert lists["fresh"] and lists["trending"]


def test_union_excludes_train_items_and_contains_the_ann_list():
    split = temporal_split(daily_interactions())
    seen = split.seen()
    users = sorted(split.relevant())[:10]
    union = MultiSourceUnion(EASE(l2=10.0), daily_catalog(), config=MultiSourceConfig(ann_quota=200)).fit(split.train)
    ranked = union.recommend(users, 500, seen)
    ann = union.ann.recommend(users, 200, seen)
    for user, items, ann_items in zip(users, ranked, ann):
        assert not set(items) & seen[user]
        assert len(items) == len(set(items))
        assert set(ann_items) <= set(items)
        assert items[0] == ann_items[0]  # the largest quota's best has the earliest virtual position


def test_fresh_source_is_asked_at_each_users_reference_day():
    split = temporal_split(daily_interactions())
    union = MultiSourceUnion(MostPopular(), daily_catalog()).fit(split.train)
    for user, cut in union.user_cut.items():
        fresh = union._day_sources(cut).recommend(int(user), set(), union.config.quotas())["fresh"]
        uploads = daily_catalog().set_index("video_id")["upload_time"]
        # nothing uploaded after the end of the user's reference day
        assert all(uploads[video] < cut.floor("D") + pd.Timedelta(days=1) for video, _ in fresh)


def test_subscriptions_after_a_users_last_train_interaction_are_not_used():
    split = temporal_split(daily_interactions(num_users=4))
    cut = split.train.groupby("user_id")["time"].max()
    subscriptions = pd.DataFrame({
        "user_id": [0, 1],
        "creator_id": [3, 3],
        "subscribed_time": [cut[0] - pd.Timedelta(days=5), cut[1] + pd.Timedelta(hours=1)],
    })
    union = MultiSourceUnion(MostPopular(), daily_catalog(), subscriptions=subscriptions).fit(split.train)
    assert union._subscriptions_before_cut()["user_id"].tolist() == [0]


def test_harness_scores_the_union_with_the_parameters_tuned_for_its_ann():
    catalog = daily_catalog()
    methods = [
        MethodSpec("ease", EASE, {"l2": FloatRange(1.0, 30.0, log=True)}),
        MethodSpec("union", lambda **params: MultiSourceUnion(EASE(**params), catalog), params_from="ease"),
    ]
    settings = HarnessSettings(trials=3, max_widenings=0, slices=("all",))
    result = run_harness(daily_interactions(), methods, catalog_size=len(catalog), settings=settings)
    union, ease = result.runs["union"], result.runs["ease"]
    assert union.params == ease.params and union.tuning is None
    assert union.seed_values("recall@500")[0] >= ease.seed_values("recall@100")[0] - 1e-9


def test_harness_rejects_a_union_listed_before_its_ann():
    methods = [MethodSpec("union", lambda **params: None, params_from="ease"), MethodSpec("ease", EASE)]
    with pytest.raises(ValueError, match="must run before it"):
        run_harness(daily_interactions(num_users=10), methods, catalog_size=100)
