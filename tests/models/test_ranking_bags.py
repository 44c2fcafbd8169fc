"""A bag of the user's watched video ids, embedded with the candidate video's table."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.evaluation.ranking_metrics import roc_auc
from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.preprocessing import FeaturePreprocessor
from models.ranking.train import train_ranker

CONFIG = RankerConfig(
    categorical_features=["surface", "video_id"], numeric_features=["noise"],
    bag_features=["recent_watch_video_ids"], shared_embeddings={"recent_watch_video_ids": "video_id"},
    heads=("watch_time", "click"), score_weights={"watch_time": 1.0}, category_min_count=1, hidden_widths=(32,),
    embedding_dims={"video_id": 8}, max_bag_length=8, epochs=6, batch_size=128, learning_rate=5e-3,
    calibration_share=0.1, show_progress=False, seed=0,
)


def _taste_frame(num_rows: int, seed: int) -> pd.DataFrame:
    """Users like one of three clusters of videos (video_id % 3). Nothing but the watch history
    says which: a click is likely only when the candidate is from the cluster the user watches."""
    rng = np.random.default_rng(seed)
    videos = np.arange(1, 61)
    taste = rng.integers(0, 3, num_rows)
    histories = [list(rng.choice(videos[videos % 3 == cluster], rng.integers(1, 12))) for cluster in taste]
    candidates = rng.choice(videos, num_rows)
    clicked = rng.random(num_rows) < np.where(candidates % 3 == taste, 0.6, 0.1)
    return pd.DataFrame({
        "surface": "home",
        "video_id": candidates,
        "recent_watch_video_ids": histories,
        "noise": rng.normal(size=num_rows),
        "clicked": clicked,
        "watch_seconds": np.where(clicked, 60.0, 0.0),
        "split": np.where(np.arange(num_rows) < 0.8 * num_rows, "train", "holdout"),
    })


@pytest.fixture(scope="module")
def frame():
    return _taste_frame(6_000, seed=5)


@pytest.fixture(scope="module")
def bundle(frame):
    return train_ranker(frame, CONFIG)


def _holdout_auc(bundle: RankerBundle, frame: pd.DataFrame) -> float:
    holdout = frame[frame["split"] == "holdout"]
    return roc_auc(holdout["clicked"].to_numpy(int), bundle.score(holdout))


def test_the_watch_history_bag_lets_the_ranker_match_candidates_to_the_user(bundle, frame):
    without_bag = train_ranker(frame, replace(CONFIG, bag_features=[]))
    assert _holdout_auc(without_bag, frame) < 0.6  # the candidate alone says nothing about this user
    assert _holdout_auc(bundle, frame) > 0.68  # a perfect model scores about 0.78


def test_the_bag_shares_the_candidate_video_table_and_survives_save_and_load(bundle, frame, tmp_path):
    assert bundle.model.bag_embeddings[0] is bundle.model.embeddings[CONFIG.categorical_features.index("video_id")]
    bundle.save(tmp_path / "ranker")
    loaded = RankerBundle.load(tmp_path / "ranker")
    sample = frame.head(50)
    np.testing.assert_allclose(loaded.score(sample), bundle.score(sample), rtol=1e-6)


def test_bags_keep_the_most_recent_ids_right_aligned_and_unknown_ids_empty():
    config = replace(CONFIG, max_bag_length=3)
    fitted = FeaturePreprocessor.fit(pd.DataFrame({
        "surface": ["home"] * 3, "video_id": [10, 20, 30], "noise": [0.0, 1.0, 2.0],
        "recent_watch_video_ids": [[10], [20], None],
    }), config)
    index = fitted.categorical["video_id"].index
    encoded = fitted.transform(pd.DataFrame({
        "surface": ["home"] * 4, "video_id": [10] * 4, "noise": [0.0] * 4,
        "recent_watch_video_ids": [[10, 20, 30, 10], [20], [], [999, 20]],
    })).bags[:, 0].numpy()
    assert encoded.tolist() == [
        [index(20), index(30), index(10)],  # oldest first; only the last three kept
        [0, 0, index(20)],
        [0, 0, 0],
        [0, 0, index(20)],  # 999 was never seen: unknown, left out of the average
    ]


def test_one_users_bag_repeated_on_every_candidate_encodes_like_separate_copies(bundle):
    history = [3, 6, 9, 12]
    shared = np.empty(4, dtype=object)
    shared.fill(history)  # the serving path: one list object on every candidate row
    copies = np.empty(4, dtype=object)
    copies[:] = [list(history) for _ in range(4)]
    columns = {"surface": np.full(4, "home", dtype=object), "video_id": np.array([3, 4, 5, 6]),
               "noise": np.zeros(4)}
    from_shared = bundle.preprocessor.transform({**columns, "recent_watch_video_ids": shared})
    from_copies = bundle.preprocessor.transform({**columns, "recent_watch_video_ids": copies})
    assert from_shared.bags.tolist() == from_copies.bags.tolist()


def test_a_bag_cell_that_is_text_is_refused_by_name(bundle):
    with pytest.raises(ValueError, match="is a string, not a list of ids"):
        bundle.preprocessor.transform(pd.DataFrame({
            "surface": ["home"], "video_id": [3], "noise": [0.0], "recent_watch_video_ids": ["[3, 6]"],
        }))


def test_a_bag_feature_cannot_also_be_categorical():
    with pytest.raises(ValueError, match="more than one kind"):
        RankerConfig(categorical_features=["video_id"], numeric_features=[], bag_features=["video_id"])
