"""Training on a chosen device: the bundle always comes back on the CPU, where serving scores,
a GPU fit ranks like the CPU fit of the same seed, and a fit replayed as CUDA graphs like the
eager GPU fit."""

import numpy as np
import pytest
import torch

from models.evaluation.metrics import roc_auc
from models.graphed_step import GraphedStep
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


def test_a_cuda_graph_is_refused_off_a_gpu():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        GraphedStep(lambda rows: rows.sum(), 256, torch.device("cpu"))


@needs_cuda
def test_a_graphed_cuda_fit_replays_the_steps_the_eager_fit_runs(frame):
    eager = train_ranker(frame, RankerConfig(**{**CONFIG.__dict__, "device": "cuda", "cuda_graph": False}))
    graphed = train_ranker(frame, RankerConfig(**{**CONFIG.__dict__, "device": "cuda"}))
    assert "cuda_graph_replays" not in eager.metrics
    # every full batch after the warm-up replays the graph; each epoch's short last batch runs eagerly
    assert graphed.metrics["cuda_graph_replays"] > 0
    holdout = frame[frame["split"] == "holdout"]
    # same seed, batches and updates (no dropout here): only floating-point order differs
    assert np.corrcoef(graphed.score(holdout), eager.score(holdout))[0, 1] > 0.999
    assert graphed.metrics["train_loss"] == pytest.approx(eager.metrics["train_loss"], rel=1e-3)


@needs_cuda
def test_a_graphed_fit_with_dropout_draws_new_masks_and_learns(frame):
    config = RankerConfig(**{**CONFIG.__dict__, "device": "cuda", "dropout": 0.3, "cross_layers": 1})
    graphed = train_ranker(frame, config)
    eager = train_ranker(frame, RankerConfig(**{**config.__dict__, "cuda_graph": False}))
    holdout = frame[frame["split"] == "holdout"]
    assert roc_auc(holdout["clicked"].to_numpy(), graphed.score(holdout)) > 0.6
    # a mask recorded once and replayed would train a different, worse-regularised model; fresh
    # masks per replay keep the graphed loss where the eager one is
    assert graphed.metrics["train_loss"] == pytest.approx(eager.metrics["train_loss"], rel=0.05)
