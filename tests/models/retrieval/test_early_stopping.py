"""The candidate generator stops on the full-softmax loss of its newest train rows: on labels drawn
at random a fast learner memorises the fit rows within a few epochs, and training stops and
serves its best epoch."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from models.retrieval.config import RetrievalConfig
from models.retrieval.train import split_validation_rows, train_candidate_generator
from tests.models.conftest import make_catalog

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CONFIG = RetrievalConfig(
    embedding_dim=32, tower_widths=(64, 32), item_tower_widths=(32,), epochs=30, batch_size=64,
    num_uniform_negatives=32, learning_rate=2e-2, weight_ema_decay=0.0, history_recency_weights=False,
    early_stopping_patience=2, validation_share=0.2, max_eval_examples=100, show_progress=False, seed=4,
)


@pytest.fixture(scope="module")
def noise_data():
    """Every user watches videos drawn uniformly at random: nothing generalises, so whatever the
    towers learn about one row's label is memorisation."""
    rng = np.random.default_rng(9)
    catalog = make_catalog(60, rng)
    video_ids = catalog["video_id"].to_numpy()
    rows = []
    for user in range(120):
        watches = rng.choice(video_ids, 8).tolist()
        rows += [{
            "user_id": user, "label_video_id": watches[position], "history_video_ids": watches[:position],
            "history_search_tokens": [f"query{rng.integers(0, 40)}"], "example_age_days": float(8 - position),
            "country": "US", "device": "mobile", "age_bucket": "18-24", "gender": "female",
            "split": "train" if position < 7 else "holdout",
        } for position in range(1, 8)]
    return pd.DataFrame(rows), catalog


@pytest.fixture(scope="module")
def stopped(noise_data):
    examples, catalog = noise_data
    return train_candidate_generator(examples, catalog, CONFIG)


def _validation_loss(bundle, examples) -> float:
    """Recomputed from the bundle: each validation row's label among the whole catalog, scored as serving scores."""
    _, validation = split_validation_rows(examples[examples["split"] == "train"], CONFIG.validation_share)
    video_ids, scores = bundle.score_catalog(validation.drop(columns=["example_age_days"]))
    labels = np.searchsorted(video_ids, validation["label_video_id"].to_numpy())
    return F.cross_entropy(torch.from_numpy(scores).double(), torch.from_numpy(labels)).item()


def test_training_on_noise_stops_once_the_validation_loss_rises(stopped):
    metrics = stopped.metrics
    curve = [metrics[f"validation_loss_epoch_{epoch:02d}"] for epoch in range(1, int(metrics["epochs_run"]) + 1)]
    assert metrics["epochs_run"] < CONFIG.epochs
    assert metrics["epochs_run"] == metrics["best_epoch"] + CONFIG.early_stopping_patience
    assert metrics["validation_loss"] == min(curve) and curve[-1] > min(curve)


def test_the_served_model_is_the_best_epochs(stopped, noise_data):
    examples, _ = noise_data
    assert _validation_loss(stopped, examples) == pytest.approx(stopped.metrics["validation_loss"], rel=1e-4)


def test_the_weight_average_is_what_is_validated_and_restored(noise_data):
    examples, catalog = noise_data
    averaged = train_candidate_generator(examples, catalog, replace(CONFIG, weight_ema_decay=0.9))
    assert averaged.metrics["epochs_run"] < CONFIG.epochs
    assert _validation_loss(averaged, examples) == pytest.approx(averaged.metrics["validation_loss"], rel=1e-4)


def test_without_patience_every_epoch_runs_on_every_train_row(noise_data):
    examples, catalog = noise_data
    fixed = train_candidate_generator(examples, catalog, replace(CONFIG, epochs=3, early_stopping_patience=None))
    assert fixed.metrics["epochs_run"] == fixed.metrics["best_epoch"] == 3
    assert not any(key.startswith("validation_loss") for key in fixed.metrics)


def test_the_bundle_comes_back_on_the_cpu(stopped):
    assert {tensor.device.type for tensor in stopped.model.state_dict().values()} == {"cpu"}


def test_too_few_train_rows_to_validate_on_is_refused_by_name(noise_data):
    examples, catalog = noise_data
    with pytest.raises(ValueError, match=r"too few to hold out a validation share of 0\.2"):
        train_candidate_generator(examples.iloc[:2], catalog, CONFIG)


@needs_cuda
def test_a_cuda_fit_stops_and_comes_back_on_the_cpu_with_its_best_weights(noise_data):
    examples, catalog = noise_data
    on_gpu = train_candidate_generator(examples, catalog, replace(CONFIG, device="cuda"))
    assert {tensor.device.type for tensor in on_gpu.model.state_dict().values()} == {"cpu"}
    assert on_gpu.metrics["epochs_run"] < CONFIG.epochs
    assert _validation_loss(on_gpu, examples) == pytest.approx(on_gpu.metrics["validation_loss"], rel=1e-4)
