"""The candidate video and the user's last watched video share one embedding table."""

import numpy as np
import pytest

from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.train import train_ranker
from tests.models.conftest import make_ranking_frame

CONFIG = RankerConfig(
    categorical_features=["surface", "video_id", "last_watched_video_id"], numeric_features=["quality"],
    heads=("watch_time",), score_weights={"watch_time": 1.0}, category_min_count=1, hidden_widths=(16,),
    epochs=2, batch_size=256, show_progress=False, seed=0,
)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    frame = make_ranking_frame(4_000, rng)
    frame["video_id"] = rng.integers(1, 50, len(frame))
    frame["last_watched_video_id"] = rng.integers(1, 80, len(frame))  # ids 50..79 never a candidate
    return frame


@pytest.fixture(scope="module")
def bundle(frame):
    return train_ranker(frame, CONFIG)


def test_both_roles_use_the_same_parameters_and_vocabulary(bundle):
    columns = CONFIG.categorical_features
    candidate = bundle.model.embeddings[columns.index("video_id")]
    last_watched = bundle.model.embeddings[columns.index("last_watched_video_id")]
    assert candidate is last_watched
    vocabularies = bundle.preprocessor.categorical
    assert vocabularies["last_watched_video_id"].to_dict() == vocabularies["video_id"].to_dict()
    # a last-watched id the candidate vocabulary never saw is out of vocabulary (zero embedding)
    assert vocabularies["last_watched_video_id"].encode([70]).tolist() == [0]


def test_shared_table_survives_save_and_load(bundle, frame, tmp_path):
    bundle.save(tmp_path / "ranker")
    loaded = RankerBundle.load(tmp_path / "ranker")
    columns = CONFIG.categorical_features
    embeddings = loaded.model.embeddings
    assert embeddings[columns.index("video_id")] is embeddings[columns.index("last_watched_video_id")]
    np.testing.assert_allclose(loaded.score(frame.head(100)), bundle.score(frame.head(100)))


def test_sharing_needs_the_owner_among_the_inputs():
    config = RankerConfig(categorical_features=["surface", "last_watched_video_id"], numeric_features=["quality"])
    assert config.table_of("last_watched_video_id") == "last_watched_video_id"
