import numpy as np
import pandas as pd
import pytest

from models.baselines import MostPopular
from models.baselines.harness import HarnessSettings, MethodSpec, run_harness
from models.evaluation.metrics import catalog_coverage
from models.evaluation.protocol import (
    METRIC_NAMES,
    evaluate,
    first_interactions,
    inner_product_recommend,
    rank_by_scores,
    temporal_split,
    top_k_masked,
    validation_split,
)
from models.evaluation.tuning import FloatRange

START = pd.Timestamp("2024-01-01")


def interactions_frame(num_users: int = 6, per_user: int = 10, stagger_days: int = 0) -> pd.DataFrame:
    """User u watches videos 100u .. 100u + per_user - 1 on consecutive days from day
    u * stagger_days, at hour u, in shuffled row order."""
    rows = [
        (user, 100 * user + day, START + pd.Timedelta(days=user * stagger_days + day, hours=user))
        for user in range(num_users)
        for day in range(per_user)
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "video_id", "time"])
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user_id"], frame["video_id"]))


def test_default_split_is_a_global_cut_at_the_time_quantile():
    # 60 times, day-major: the 0.8 quantile lies between day 7 hour 5 and day 8 hour 0
    split = temporal_split(interactions_frame())
    assert split.kind == "global" and not split.leaks_future
    assert START + pd.Timedelta(days=7, hours=5) < split.cutoff <= START + pd.Timedelta(days=8)
    assert split.train["time"].max() < split.cutoff <= split.test["time"].min()
    assert sorted(split.test["video_id"] % 100) == [8] * 6 + [9] * 6
    described = split.describe()
    assert {key: described[key] for key in ("train_interactions", "test_users", "test_interactions")} == {
        "train_interactions": 48, "test_users": 6, "test_interactions": 12,
    }
    assert described["cutoff"] == split.cutoff and described["leaks_future"] is False


def test_global_validation_lies_inside_the_train_period():
    split = temporal_split(interactions_frame())
    validation = validation_split(split)
    assert validation.kind == "global"
    assert validation.cutoff < split.cutoff
    assert validation.train["time"].max() < validation.cutoff <= validation.test["time"].min()
    assert validation.test["time"].max() < split.cutoff
    # nothing from the test period reaches validation, in either of its parts
    assert not (pairs(validation.train) | pairs(validation.test)) & pairs(split.test)
    assert pairs(validation.train) | pairs(validation.test) == pairs(split.train)
    # 48 train times: the 0.8 quantile lies between day 6 hours 1 and 2 → days 6 (hours 2-5) and 7 are validation test
    assert validation.describe()["test_interactions"] == 4 + 6
    assert validation.describe()["train_interactions"] == 38


def test_validation_cutoff_must_precede_the_test_cutoff():
    split = temporal_split(interactions_frame())
    with pytest.raises(ValueError, match="must lie before the test cut-off"):
        validation_split(split, cutoff=split.cutoff)


def test_users_without_history_before_the_cut_are_not_test_users():
    frame = interactions_frame(num_users=3)
    newcomer = pd.DataFrame({"user_id": [9, 9], "video_id": [999, 998],
                             "time": [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-02")]})
    cutoff = pd.Timestamp("2024-01-08")
    split = temporal_split(pd.concat([frame, newcomer]), cutoff=cutoff)
    assert (split.train["time"] < cutoff).all()
    assert (split.test["time"] >= cutoff).all()
    assert 9 not in set(split.test["user_id"]) and 9 not in set(split.train["user_id"])
    assert len(split.train) + len(split.test) == 30
    assert split.describe()["test_users"] == 3


def test_per_user_split_puts_each_users_last_fifth_by_time_in_test():
    split = temporal_split(interactions_frame(), kind="per_user")
    for user, test in split.test.groupby("user_id"):
        train = split.train[split.train["user_id"] == user]
        assert sorted(test["video_id"]) == [100 * user + 8, 100 * user + 9]
        assert len(train) == 8
        assert train["time"].max() < test["time"].min()
    assert not pairs(split.train) & pairs(split.test)


def test_per_user_split_is_flagged_as_leaking_the_future():
    frame = interactions_frame(stagger_days=3)  # user 5 starts 15 days after user 0
    per_user = temporal_split(frame, kind="per_user")
    assert per_user.leaks_future and per_user.describe()["leaks_future"] is True
    assert per_user.cutoff is None
    # the leak itself: some train interaction is later than another user's test interaction
    assert per_user.train["time"].max() > per_user.test["time"].min()
    assert validation_split(per_user).leaks_future
    global_split = temporal_split(frame)
    assert not global_split.leaks_future
    assert global_split.train["time"].max() < global_split.test["time"].min()


def test_per_user_split_takes_no_cutoff_and_unknown_kinds_are_rejected():
    with pytest.raises(ValueError, match="per-user split takes no cut-off"):
        temporal_split(interactions_frame(), cutoff=START, kind="per_user")
    with pytest.raises(ValueError, match="split kind must be one of"):
        temporal_split(interactions_frame(), kind="random")


def test_split_keeps_only_first_interaction_per_user_and_video():
    frame = interactions_frame(num_users=1)
    rewatch = pd.DataFrame({"user_id": [0], "video_id": [100 * 0 + 1], "time": [pd.Timestamp("2024-02-01")]})
    deduplicated = first_interactions(pd.concat([frame, rewatch]))
    assert len(deduplicated) == 10
    assert deduplicated.loc[deduplicated["video_id"] == 1, "time"].item() == pd.Timestamp("2024-01-02")


def test_users_with_too_few_interactions_stay_in_train_of_the_per_user_split():
    split = temporal_split(interactions_frame(num_users=2, per_user=4), kind="per_user")
    assert split.test.empty
    assert len(split.train) == 8


def test_rank_by_scores_excludes_items_and_orders_by_score():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]])
    items = np.array([10, 11, 12, 13])
    ranked = rank_by_scores(scores, items, [1, 2], 3, {1: {11}, 2: set()})
    assert ranked == [[13, 12, 10], [10, 11, 12]]


def test_rank_by_scores_drops_items_a_method_cannot_score():
    scores = np.array([[0.5, -np.inf, 0.9, -np.inf]])
    assert rank_by_scores(scores, np.array([10, 11, 12, 13]), [1], 4, {1: {12}}) == [[10]]


def test_top_k_masked_returns_column_indices_best_first():
    scores = np.array([[0.2, 0.8, 0.5], [0.9, -np.inf, 0.1]])
    np.testing.assert_array_equal(top_k_masked(scores, 2), [[1, 2], [0, 2]])
    assert top_k_masked(scores, 10).shape == (2, 3)


def test_inner_product_recommend_ranks_every_item_and_skips_unknown_users():
    item_vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    recommend = inner_product_recommend([5, 6], np.array([[1.0, 0.1], [0.0, 1.0]]), np.array([30, 31, 32]),
                                        item_vectors)
    assert recommend([6, 7, 5], 2, {5: {30}}) == [[31, 32], [], [32, 31]]


def test_coverage_counts_distinct_items_in_any_top_k():
    recommendations = {1: [1, 2, 3], 2: [2, 4, 5]}
    assert catalog_coverage(recommendations, 10, k=2) == pytest.approx(3 / 10)
    assert catalog_coverage(recommendations, 10, k=3) == pytest.approx(5 / 10)


def test_evaluate_scores_an_oracle_perfectly_and_rejects_leaked_train_items():
    split = temporal_split(interactions_frame())
    relevant = split.relevant()

    def oracle(users, k, exclude):
        return [sorted(relevant[user]) for user in users]

    evaluation = evaluate(oracle, split, catalog_size=60)
    metrics = evaluation.metrics
    assert list(metrics)[: len(METRIC_NAMES)] == list(METRIC_NAMES)
    assert metrics["recall@10"] == 1.0 and metrics["ndcg@10"] == pytest.approx(1.0) and metrics["mrr"] == 1.0
    assert metrics["coverage@10"] == pytest.approx(12 / 60)
    assert evaluation.recommendations == {user: sorted(items) for user, items in relevant.items()}

    def leaky(users, k, exclude):
        return [sorted(exclude[user])[:1] + sorted(relevant[user]) for user in users]

    with pytest.raises(ValueError, match="train items"):
        evaluate(leaky, split, catalog_size=60)


def test_per_user_values_average_to_the_reported_metrics():
    split = temporal_split(interactions_frame(num_users=6, per_user=10, stagger_days=1), test_fraction=0.3)
    catalog = np.sort(pd.concat([split.train, split.test])["video_id"].unique())

    def by_id(users, k, exclude):  # a fixed, imperfect ranking: every unseen item by id
        return [[int(item) for item in catalog if item not in exclude[user]][:k] for user in users]

    evaluation = evaluate(by_id, split, catalog_size=len(catalog))
    per_user = evaluation.per_user
    assert per_user.index.name == "user_id"
    assert list(per_user.index) == sorted(split.relevant())
    assert evaluation.metrics["num_users"] == len(per_user)
    for name in METRIC_NAMES:
        if not name.startswith("coverage@"):
            assert per_user[name].mean() == pytest.approx(evaluation.metrics[name]), name
    assert 0.0 < evaluation.metrics["recall@50"] < 1.0  # neither trivially 0 nor perfect
    assert per_user["mrr"].nunique() > 1
    assert evaluation.averages()["ndcg@50"] == pytest.approx(per_user["ndcg@50"].mean())


def cold_start_case():
    """Train (before 2024-01-10): user 1 watches 10, 11; user 2 watches 10, 12; user 4 watches 11.
    Test: user 1 watches 20 (new) and 12 (seen by user 2 in train); user 2 watches 21 (new); user 4
    watches 10 (not new); user 3, with no history, watches 22 (not a test user, so 22 is not cold).
    Catalog: 10, 11, 12, 20, 21, 22, 23."""
    before, after = pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-15")
    rows = [(1, 10, before), (1, 11, before), (2, 10, before), (2, 12, before), (4, 11, before),
            (1, 20, after), (1, 12, after), (2, 21, after), (4, 10, after), (3, 22, after)]
    interactions = pd.DataFrame(rows, columns=["user_id", "video_id", "time"])
    return temporal_split(interactions, cutoff=pd.Timestamp("2024-01-10")), np.array([10, 11, 12, 20, 21, 22, 23])


def test_cold_start_slice_scores_new_items_among_never_seen_items_only():
    split, catalog = cold_start_case()
    assert split.cold_items == {20, 21}
    assert split.describe()["cold_items"] == 2 and split.describe()["cold_test_interactions"] == 2
    asked = {}

    def content_aware(users, k, exclude):  # scores every catalog item, train items highest
        asked.update({user: exclude[user] for user in users})
        scores = {1: [1.0, 1.0, 1.0, 0.9, 0.7, 0.6, 0.8], 2: [1.0, 1.0, 1.0, 0.5, 0.8, 0.4, 0.9]}
        return rank_by_scores(np.array([scores[user] for user in users]), catalog, users, k, exclude)

    evaluation = evaluate(content_aware, split, catalog_size=len(catalog), slice="cold_start")
    assert asked == {1: {10, 11, 12}, 2: {10, 11, 12}}  # every train item, not just the user's own
    assert evaluation.recommendations == {1: [20, 23, 21, 22], 2: [23, 21, 20, 22]}
    assert list(evaluation.per_user.index) == [1, 2]  # user 4 has no cold item
    assert evaluation.metrics["recall@10"] == 1.0
    assert evaluation.metrics["mrr"] == pytest.approx((1.0 + 0.5) / 2)
    assert evaluation.metrics["ndcg@10"] == pytest.approx((1.0 + 1.0 / np.log2(3)) / 2)
    assert evaluation.metrics["coverage@10"] == 1.0  # all 4 never-seen catalog items shown
    assert evaluation.slice == "cold_start"


def test_id_only_method_scores_zero_on_the_cold_start_slice():
    split, catalog = cold_start_case()
    popular_in_train = [10, 11, 12]

    def id_only(users, k, exclude):
        return [[item for item in popular_in_train if item not in exclude[user]][:k] for user in users]

    cold = evaluate(id_only, split, catalog_size=len(catalog), slice="cold_start")
    assert cold.metrics["recall@500"] == 0.0 and cold.metrics["mrr"] == 0.0
    everything = evaluate(id_only, split, catalog_size=len(catalog))
    assert everything.metrics["recall@10"] > 0.0  # item 12 is a hit for user 1 outside the slice


def test_cold_start_slice_rejects_items_seen_by_anybody_in_train():
    split, catalog = cold_start_case()

    def leaks_other_users_items(users, k, exclude):
        return [[12, 20] for _ in users]  # 12: train item of user 2, never seen by user 1

    with pytest.raises(ValueError, match="train items \\[12\\]"):
        evaluate(leaks_other_users_items, split, catalog_size=len(catalog), slice="cold_start")


@pytest.mark.parametrize("cutoff", [None, START + pd.Timedelta(days=14)], ids=["quantile", "given"])
def test_harness_tunes_on_the_global_split_without_an_empty_validation(cutoff):
    # regression: validation reused the test cut-off, so its test part was empty and tuning crashed
    frame = interactions_frame(num_users=12, per_user=10, stagger_days=1)
    shared = frame.assign(video_id=frame["video_id"] % 100)  # everybody watches videos 0..9 in order
    methods = [MethodSpec("most_popular", MostPopular, {"recency_window_days": FloatRange(1.0, 30.0, log=True)})]
    settings = HarnessSettings(cutoff=cutoff, trials=3, max_widenings=0)
    result = run_harness(shared, methods, catalog_size=10, settings=settings)
    assert result.split.kind == "global"
    assert cutoff is None or result.split.cutoff == cutoff
    assert result.validation.describe()["test_users"] > 0
    assert result.validation.cutoff < result.split.cutoff
    run = result.runs["most_popular"]
    assert len(run.tuning.trials) == 3
    assert run.evaluations["all"][0].metrics["num_users"] == result.split.describe()["test_users"]
    assert list(run.per_user("recall@10").index) == sorted(result.split.relevant())
