"""Model files with pickled objects in them are refused, and the objects never run.

The payload below touches a marker file when unpickled, the way a malicious checkpoint would run a
command; each test plants it in a real saved artifact and asserts that loading names the file and
that the marker was never created.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.train import train_ranker
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.config import RetrievalConfig
from models.retrieval.train import train_candidate_generator
from models.safe_loading import UnsafeModelFileError, load_weights
from models.sources import TrendingConfig, TrendingSource


class TouchesAFileWhenUnpickled:
    """Unpickling calls `Path.touch(marker)`: any code could stand where `touch` stands."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "code_ran"


def test_the_payload_runs_code_when_unpickled_plainly(marker):
    pickle.loads(pickle.dumps(TouchesAFileWhenUnpickled(marker)))
    assert marker.exists()


def test_a_ranker_whose_weights_hold_a_pickled_object_is_refused(ranking_frame, marker, tmp_path):
    config = RankerConfig(categorical_features=["surface"], numeric_features=["quality"], hidden_widths=(8,),
                          epochs=1, batch_size=1024, show_progress=False, seed=1, calibration_share=0.0,
                          early_stopping_patience=None,
                          heads=("watch_time",), score_weights={"watch_time": 1.0})
    directory = tmp_path / "ranker"
    train_ranker(ranking_frame.head(2000), config).save(directory)
    state = torch.load(directory / "model.pt", weights_only=True)
    torch.save({**state, "payload": TouchesAFileWhenUnpickled(marker)}, directory / "model.pt")

    with pytest.raises(UnsafeModelFileError, match=r"ranker/model\.pt holds pickled objects besides tensors"):
        RankerBundle.load(directory)
    assert not marker.exists()


def test_a_candidate_generator_whose_weights_or_catalog_hold_pickled_objects_is_refused(
    retrieval_data, marker, tmp_path
):
    examples, catalog = retrieval_data
    config = RetrievalConfig(embedding_dim=8, tower_widths=(16, 8), item_tower_widths=(8,), epochs=1,
                             batch_size=512, num_uniform_negatives=16, show_progress=False, seed=3)
    directory = tmp_path / "retrieval"
    bundle = train_candidate_generator(examples.head(2000), catalog, config)
    bundle.save(directory)
    clean_weights = (directory / "model.pt").read_bytes()
    torch.save(TouchesAFileWhenUnpickled(marker), directory / "model.pt")

    with pytest.raises(UnsafeModelFileError, match=r"retrieval/model\.pt holds pickled objects besides tensors"):
        RetrievalBundle.load(directory)

    (directory / "model.pt").write_bytes(clean_weights)
    with np.load(directory / "catalog.npz") as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["video_ids"] = np.array([TouchesAFileWhenUnpickled(marker)], dtype=object)
    np.savez(directory / "catalog.npz", **arrays)

    with pytest.raises(UnsafeModelFileError, match=r"catalog\.npz: array 'video_ids' holds pickled Python objects"):
        RetrievalBundle.load(directory)
    assert not marker.exists()


def test_a_retrieval_source_whose_arrays_hold_a_pickled_object_is_refused(marker, tmp_path):
    now = pd.Timestamp("2024-03-10")
    watches = pd.DataFrame({"video_id": [1, 1, 2], "watch_time": [now - pd.Timedelta(hours=h) for h in (1, 2, 3)]})
    TrendingSource(TrendingConfig()).fit(watches, now).save(tmp_path)
    with np.load(tmp_path / "trending.npz") as stored:
        arrays = {name: stored[name] for name in stored.files}
    first = next(iter(arrays))
    arrays[first] = np.array([TouchesAFileWhenUnpickled(marker)], dtype=object)
    np.savez(tmp_path / "trending.npz", **arrays)

    with pytest.raises(UnsafeModelFileError, match=rf"trending\.npz: array '{first}' holds pickled Python objects"):
        TrendingSource.load(tmp_path)
    assert not marker.exists()


def test_weights_that_are_not_a_state_dict_are_refused(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "model.pt")
    with pytest.raises(UnsafeModelFileError, match=r"model\.pt holds a Tensor, expected a state dict of tensors"):
        load_weights(tmp_path / "model.pt")
