"""Training on a chosen device: the bundle always comes back on the CPU, where serving scores,
and a GPU fit ranks like the CPU fit of the same seed."""

import numpy as np
import pytest
import torch

from models.evaluation.metrics import roc_auc
from models.ranking.config import RankerConfig
from models.ranking.evaluate import base_rates
from models.ranking.train import train_ranker
from tests.models.conftest import make_ranking_frame

CONFIG = RankerConfig(
    categorical_features=["surface", "country", "video_id"], numeric_features=["quality", "noise"],
    bag_features=["recent_watch_video_ids"], category_min_count=1, hidden_widths=(16,), epochs=4,
    batch_size=256, learning_rate=1e-2, show_progress=False, seed=3, heads=("watch_time", "click"),
    score_weights={"watch_time": 1.0}, device="cpu", early_stopping_patience=None,
)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(4)
    frame = make_ranking_frame(6000, rng)
    frame["video_id"] = rng.integers(0, 50, len(frame))
    frame["recent_watch_video_ids"] = [rng.integers(0, 50, rng.integers(0, 6)) for _ in range(len(frame))]
    return frame


@pytest.fixture(scope="module")
def trained_on_cpu(frame):
    return train_ranker(frame, CONFIG)


def _devices(bundle) -> set[str]:
    return {tensor.device.type for tensor in [*bundle.model.parameters(), *bundle.model.buffers()]}


def test_a_cpu_config_trains_and_returns_a_model_on_the_cpu(trained_on_cpu, frame):
    assert CONFIG.device == "cpu"
    assert _devices(trained_on_cpu) == {"cpu"}
    holdout = frame[frame["split"] == "holdout"]
    assert roc_auc(holdout["clicked"].to_numpy(), trained_on_cpu.score(holdout)) > 0.6


def test_the_constant_predictor_beside_the_ece_ships_the_training_rate(trained_on_cpu, frame):
    train_rate = base_rates(frame[frame["split"] == "train"], CONFIG)["click"]
    holdout_rate = frame.loc[frame["split"] == "holdout", "clicked"].mean()
    # one constant prediction fills one bin: its ECE is the gap between the two rates
    assert trained_on_cpu.metrics["holdout_ece_constant_click"] == pytest.approx(abs(train_rate - holdout_rate))
    assert trained_on_cpu.metrics["holdout_ece_constant_click"] > 0


def test_a_device_torch_does_not_know_is_refused_by_name(frame):
    with pytest.raises(ValueError, match="'gpu0'"):
        train_ranker(frame, RankerConfig(**{**CONFIG.__dict__, "device": "gpu0"}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_asking_for_cuda_without_one_is_refused_by_name(frame):
    with pytest.raises(ValueError, match=r"'cuda'.*no CUDA device"):
        train_ranker(frame, RankerConfig(**{**CONFIG.__dict__, "device": "cuda"}))


@needs_cuda
def test_a_cuda_fit_comes_back_on_the_cpu_and_ranks_like_the_cpu_fit(trained_on_cpu, frame):
    on_gpu = train_ranker(frame, RankerConfig(**{**CONFIG.__dict__, "device": "cuda"}))
    assert _devices(on_gpu) == {"cpu"}
    holdout = frame[frame["split"] == "holdout"]
    gpu_scores, cpu_scores = on_gpu.score(holdout), trained_on_cpu.score(holdout)
    # same seed, same initial weights and batches: only floating-point order differs
    assert np.corrcoef(gpu_scores, cpu_scores)[0, 1] > 0.999
    assert on_gpu.metrics["train_loss"] == pytest.approx(trained_on_cpu.metrics["train_loss"], rel=1e-3)
