"""Baselines that see recency: history decay in EASE / item-kNN, popularity over a recent window."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from models.baselines import EASE, ItemKNN, MostPopular
from models.baselines.base import InteractionMatrix

START = pd.Timestamp("2024-01-01")
OLD, NEW, CO_OLD, CO_NEW = 10, 20, 30, 40  # user 0 watched OLD, then NEW; CO_* co-occur with each


def two_trails() -> pd.DataFrame:
    """User 0 watched OLD then NEW. OLD's trail leads strongly to CO_OLD (users 1, 2 watch both),
    NEW's weakly to CO_NEW (user 3 only; user 4 watched NEW alone)."""
    rows = [
        (0, OLD, 0), (0, NEW, 1),
        (1, OLD, 0), (1, CO_OLD, 1),
        (2, OLD, 0), (2, CO_OLD, 1),
        (3, NEW, 0), (3, CO_NEW, 1),
        (4, NEW, 0),
    ]
    return pd.DataFrame(
        [(user, video, START + pd.Timedelta(days=day)) for user, video, day in rows],
        columns=["user_id", "video_id", "time"],
    )


def scores_of(method, user_id: int) -> dict[int, float]:
    row = method.data.rows([user_id])
    return dict(zip(method.data.item_ids.tolist(), np.asarray(method._scores(row)).ravel().tolist()))


def test_recency_rank_counts_newer_interactions_and_ties_share_a_rank():
    train = pd.DataFrame({
        "user_id": [7, 7, 7, 7, 8],
        "video_id": [1, 2, 3, 4, 1],
        "time": [START, START + pd.Timedelta(hours=2), START + pd.Timedelta(hours=2), START + pd.Timedelta(hours=5),
                 START],
    })
    for frame in (train, train.iloc[::-1]):
        data = InteractionMatrix(frame)
        ranks = dict(zip(data.matrix[0].indices.tolist(), data.recency_rank[: data.matrix.indptr[1]].tolist()))
        assert ranks == {0: 3, 1: 1, 2: 1, 3: 0}  # video 4 newest; 2 and 3 tie
    weighted = InteractionMatrix(train).recency_weighted(0.5).toarray()
    np.testing.assert_allclose(weighted, [[0.125, 0.5, 0.5, 1.0], [1.0, 0.0, 0.0, 0.0]])


def test_decayed_item_knn_follows_the_newest_watch():
    train = two_trails()
    binary = ItemKNN(neighbours=None).fit(train)
    decayed = ItemKNN(neighbours=None, recency_decay=0.5).fit(train)
    # cos(OLD, CO_OLD) = 2 / sqrt(3 · 2), cos(NEW, CO_NEW) = 1 / sqrt(3 · 1); OLD's weight is 0.5 when decayed
    assert scores_of(binary, 0)[CO_OLD] == pytest.approx(2 / np.sqrt(6))
    assert scores_of(binary, 0)[CO_NEW] == pytest.approx(1 / np.sqrt(3))
    assert scores_of(decayed, 0)[CO_OLD] == pytest.approx(0.5 * 2 / np.sqrt(6))
    assert scores_of(decayed, 0)[CO_NEW] == pytest.approx(1 / np.sqrt(3))
    seen = {0: {OLD, NEW}}
    assert binary.recommend([0], 1, seen) == [[CO_OLD]]
    assert decayed.recommend([0], 1, seen) == [[CO_NEW]]


def test_decayed_ease_scores_the_weighted_history_and_flips_the_top_item():
    train = two_trails()
    l2 = 0.5
    # columns OLD, NEW, CO_OLD, CO_NEW; rows users 0..4
    interactions = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 1, 0, 0]], dtype=float)
    precision = np.linalg.inv(interactions.T @ interactions + l2 * np.eye(4))
    weights = np.eye(4) - precision / np.diag(precision)
    binary_expected = np.array([1.0, 1.0, 0.0, 0.0]) @ weights
    decayed_expected = np.array([0.5, 1.0, 0.0, 0.0]) @ weights
    binary = EASE(l2=l2).fit(train)
    decayed = EASE(l2=l2, recency_decay=0.5).fit(train)
    np.testing.assert_allclose(list(scores_of(binary, 0).values()), binary_expected, atol=1e-9)
    np.testing.assert_allclose(list(scores_of(decayed, 0).values()), decayed_expected, atol=1e-9)
    seen = {0: {OLD, NEW}}
    assert binary.recommend([0], 1, seen) == [[CO_OLD]]
    assert decayed.recommend([0], 1, seen) == [[CO_NEW]]


def old_binary_matrix(train: pd.DataFrame, data: InteractionMatrix) -> sp.csr_matrix:
    """The order-free matrix the baselines used before recency weights (duplicates count once)."""
    rows = data.user_index.get_indexer(train["user_id"])
    columns = data.item_index.get_indexer(train["video_id"])
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=data.matrix.shape)
    matrix.data[:] = 1.0
    return matrix


@pytest.mark.parametrize("method", [EASE(l2=3.0), ItemKNN(neighbours=5)], ids=lambda method: type(method).__name__)
def test_decay_one_gives_the_binary_scores(method):
    rng = np.random.default_rng(0)
    train = pd.DataFrame({
        "user_id": rng.integers(0, 30, 400),
        "video_id": rng.integers(0, 40, 400),  # some repeats: they count once
        "time": START + pd.to_timedelta(rng.integers(0, 1000, 400), unit="h"),
    })
    method.fit(train)
    binary = old_binary_matrix(train, method.data)
    assert (method.data.matrix != binary).nnz == 0
    rows = np.arange(len(method.data.user_ids))
    item_item = method.weights if isinstance(method, EASE) else method.similarity
    np.testing.assert_array_equal(method._scores(rows), binary[rows] @ item_item)


@pytest.mark.parametrize("decay", [0.0, -0.5, 1.5])
def test_recency_decay_outside_zero_one_is_rejected(decay):
    with pytest.raises(ValueError, match="recency_decay"):
        EASE(recency_decay=decay)
    with pytest.raises(ValueError, match="recency_decay"):
        ItemKNN(recency_decay=decay)


def test_recent_window_popularity_counts_only_the_window():
    last = START + pd.Timedelta(days=30)
    rows = (
        [(user, 1, START) for user in range(10)]  # the all-time favourite, a month old
        + [(user, 2, last - pd.Timedelta(hours=30)) for user in range(4)]
        + [(user, 3, last - pd.Timedelta(hours=5)) for user in range(2)]
        + [(99, 4, last)]
    )
    train = pd.DataFrame(rows, columns=["user_id", "video_id", "time"])
    recent = {
        0.25: [3, 4, 1, 2],  # last 6 hours: 3 (two users) before 4 (one); the rest by all-time count
        2.0: [2, 3, 4, 1],
        45.0: [1, 2, 3, 4],
        float("inf"): [1, 2, 3, 4],
    }
    for window_days, expected in recent.items():
        assert MostPopular(recency_window_days=window_days).fit(train).recommend([5], 4, {}) == [expected], window_days
    assert MostPopular(recency_window_days=0.25).fit(train).recommend([0], 4, {0: {3}}) == [[4, 1, 2]]


def test_popularity_window_must_be_positive():
    with pytest.raises(ValueError, match="recency_window_days"):
        MostPopular(recency_window_days=0.0)
