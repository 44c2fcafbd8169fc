import numpy as np
import pandas as pd
import pytest

from models.evaluation.metrics import catalog_coverage
from models.evaluation.protocol import (
    METRIC_NAMES,
    evaluate,
    first_interactions,
    rank_by_scores,
    temporal_split,
    validation_split,
)


def interactions_frame(num_users: int = 6, per_user: int = 10) -> pd.DataFrame:
    """User u watches videos 100u .. 100u + per_user - 1 on consecutive days, in shuffled row order."""
    rows = [
        (user, 100 * user + day, pd.Timestamp("2024-01-01") + pd.Timedelta(days=day, hours=user))
        for user in range(num_users)
        for day in range(per_user)
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "video_id", "time"])
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_per_user_split_puts_each_users_last_fifth_by_time_in_test():
    split = temporal_split(interactions_frame())
    for user, test in split.test.groupby("user_id"):
        train = split.train[split.train["user_id"] == user]
        assert sorted(test["video_id"]) == [100 * user + 8, 100 * user + 9]
        assert len(train) == 8
        assert train["time"].max() < test["time"].min()
    assert not set(zip(split.train["user_id"], split.train["video_id"])) & set(
        zip(split.test["user_id"], split.test["video_id"])
    )


def test_split_keeps_only_first_interaction_per_user_and_video():
    frame = interactions_frame(num_users=1)
    rewatch = pd.DataFrame({"user_id": [0], "video_id": [100 * 0 + 1], "time": [pd.Timestamp("2024-02-01")]})
    deduplicated = first_interactions(pd.concat([frame, rewatch]))
    assert len(deduplicated) == 10
    assert deduplicated.loc[deduplicated["video_id"] == 1, "time"].item() == pd.Timestamp("2024-01-02")


def test_users_with_too_few_interactions_stay_in_train():
    split = temporal_split(interactions_frame(num_users=2, per_user=4))
    assert split.test.empty
    assert len(split.train) == 8


def test_global_cutoff_splits_by_time_and_tests_only_users_with_train_history():
    frame = interactions_frame(num_users=3)
    newcomer = pd.DataFrame({"user_id": [9], "video_id": [999], "time": [pd.Timestamp("2024-03-01")]})
    cutoff = pd.Timestamp("2024-01-08")
    split = temporal_split(pd.concat([frame, newcomer]), cutoff=cutoff)
    assert (split.train["time"] < cutoff).all()
    assert (split.test["time"] >= cutoff).all()
    assert 9 not in set(split.test["user_id"]) and 9 not in set(split.train["user_id"])
    assert len(split.train) + len(split.test) == 30


def test_validation_split_is_carved_from_train_only():
    split = temporal_split(interactions_frame())
    validation = validation_split(split)
    assert len(validation.train) + len(validation.test) == len(split.train)
    assert validation.test["time"].max() < split.test["time"].min() + pd.Timedelta(days=1)
    assert set(validation.test["video_id"]) <= set(split.train["video_id"])


def test_rank_by_scores_excludes_items_and_orders_by_score():
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]])
    items = np.array([10, 11, 12, 13])
    ranked = rank_by_scores(scores, items, [1, 2], 3, {1: {11}, 2: set()})
    assert ranked == [[13, 12, 10], [10, 11, 12]]


def test_coverage_counts_distinct_items_in_any_top_k():
    recommendations = {1: [1, 2, 3], 2: [2, 4, 5]}
    assert catalog_coverage(recommendations, 10, k=2) == pytest.approx(3 / 10)
    assert catalog_coverage(recommendations, 10, k=3) == pytest.approx(5 / 10)


def test_evaluate_scores_an_oracle_perfectly_and_rejects_leaked_train_items():
    split = temporal_split(interactions_frame())
    relevant = split.relevant()

    def oracle(users, k, exclude):
        return [sorted(relevant[user]) for user in users]

    metrics = evaluate(oracle, split, catalog_size=60)
    assert list(metrics)[: len(METRIC_NAMES)] == list(METRIC_NAMES)
    assert metrics["recall@10"] == 1.0 and metrics["ndcg@10"] == pytest.approx(1.0) and metrics["mrr"] == 1.0
    assert metrics["coverage@10"] == pytest.approx(12 / 60)

    def leaky(users, k, exclude):
        return [sorted(exclude[user])[:1] + sorted(relevant[user]) for user in users]

    with pytest.raises(ValueError, match="train items"):
        evaluate(leaky, split, catalog_size=60)
