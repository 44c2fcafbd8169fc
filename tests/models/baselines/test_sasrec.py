import numpy as np
import pandas as pd
import pytest
import torch

from models.baselines import SASRec, SASRecConfig

START = pd.Timestamp("2024-01-01")
NUM_ITEMS = 30  # video ids 100..129; video 100 + i is always followed by 100 + (i + 1) % 30
SMALL = {"hidden_dim": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0, "max_length": 8, "epochs": 20,
         "learning_rate": 1e-2, "batch_size": 16, "device": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and the machine is shared; the caller owns the setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def successor_runs(num_users: int = 60, run_length: int = 6, seed: int = 0) -> pd.DataFrame:
    """Each user watches a run of consecutive videos (cyclically) from a random start, one a day."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        start = int(rng.integers(NUM_ITEMS))
        for step in range(run_length):
            rows.append((user, 100 + (start + step) % NUM_ITEMS, START + pd.Timedelta(days=step)))
    return pd.DataFrame(rows, columns=["user_id", "video_id", "time"])


def with_prefix_users(train: pd.DataFrame, starts: list[int], length: int = 3) -> pd.DataFrame:
    """Adds user 1000 + s for each start s, who watched only videos s .. s + length − 1 (no successor)."""
    rows = [(1000 + start, 100 + (start + step) % NUM_ITEMS, START + pd.Timedelta(days=10 + step))
            for start in starts for step in range(length)]
    return pd.concat([train, pd.DataFrame(rows, columns=train.columns)], ignore_index=True)


@pytest.fixture(scope="module")
def fitted() -> SASRec:
    return SASRec(**SMALL, seed=0).fit(with_prefix_users(successor_runs(), starts=[4, 17, 28]))


def test_learns_that_each_video_is_followed_by_the_next(fitted):
    users = [1004, 1017, 1028]
    ranked = fitted.recommend(users, 3, {})
    assert [items[0] for items in ranked] == [107, 120, 101]  # last watched 106, 119, 100 (28 + 2 wraps to 0)


def test_the_same_seed_gives_the_same_model_and_another_seed_does_not(fitted):
    train = with_prefix_users(successor_runs(), starts=[4, 17, 28])
    rows = fitted.data.rows([0, 1, 1004])
    again = SASRec(**SMALL, seed=0).fit(train)
    other = SASRec(**SMALL, seed=1).fit(train)
    np.testing.assert_array_equal(again._scores(rows), fitted._scores(rows))
    assert not np.allclose(other._scores(rows), fitted._scores(rows))


def test_excluded_videos_are_never_recommended(fitted):
    ranked = fitted.recommend([1004], 5, {1004: {107, 104, 105}})[0]
    assert len(ranked) == 5
    assert not {107, 104, 105} & set(ranked)


def test_unknown_users_get_nothing_and_known_ones_keep_their_slot(fitted):
    ranked = fitted.recommend([424242, 1017], 2, {})
    assert ranked[0] == []
    assert ranked[1][0] == 120


def test_only_training_videos_are_recommended():
    train = successor_runs(num_users=10, run_length=4)
    model = SASRec(**{**SMALL, "epochs": 1}).fit(train)
    ranked = model.recommend([0, 1], 100, {})
    assert all(set(items) == set(train["video_id"]) for items in ranked)


def test_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="num_heads=3 must divide hidden_dim=32"):
        SASRecConfig(hidden_dim=32, num_heads=3)
