"""Two ranks of a DDP run (gloo, CPU) train the weights one process trains on the same batches.

The distributed run goes through what a user runs: torchrun over the entry point, on 127.0.0.1.
What may differ is float32 rounding (the towers run on shards of the batch, gradients arrive as a
sum over ranks): after these 20 Adam steps the two runs' weights lie at most ~1.3e-6 apart, so
2e-5 leaves room for other CPUs' BLAS. Each mistake tried moved them by far more: scoring each
rank's users against its own shard's labels only (the in-batch negatives not gathered) 9e-2, the
gather's backward pass without the sum over ranks 7e-2, uniform negatives drawn per rank 5e-1,
the loss without its N / batch scaling 1e-3 (Adam hardly sees a gradient's scale; the reported
training loss halves).

One parameter is compared by what it does instead: the video tower's last bias adds the same
vector c to every candidate, so it adds u·c to each of a row's logits and the softmax cannot see
it. Its gradient is zero but for rounding noise (~1e-8), which Adam scales up to full steps in
either run; it shifts each user's scores by a constant, so the scores are compared centred per user.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.retrieval.bundle import RetrievalBundle
from models.retrieval.config import RetrievalConfig
from models.retrieval.distributed import Ranks, check_shardable, train_candidate_generator_ddp
from models.retrieval.train import train_candidate_generator
from models.retrieval.train_distributed import config_overrides
from tests.models.conftest import make_catalog, make_retrieval_examples

REPOSITORY = Path(__file__).resolve().parents[3]
BATCH_SIZE = 64
# Small towers, every training option of the default path on, freshness too: 2 epochs of 10 batches.
SETTINGS = dict(embedding_dim=16, tower_widths=[32, 16], item_tower_widths=[16], num_uniform_negatives=32,
                video_age_logit=True, epochs=2, batch_size=BATCH_SIZE, seed=5, show_progress=False)
UNSEEN_BIAS = "video_tower.0.bias"  # the video tower's last layer (item_tower_widths has one)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """577 training rows = 9 batches of 64 and one of a single row, which leaves rank 1 no row."""
    rng = np.random.default_rng(7)
    catalog = make_catalog(240, rng)
    examples = make_retrieval_examples(catalog, num_users=40, watches_per_user=20, rng=rng)
    examples["reference_time"] = pd.Timestamp("2024-03-01") - pd.to_timedelta(examples["example_age_days"], unit="D")
    dropped = examples.index[examples["split"] == "train"][:23]
    examples = examples.drop(index=dropped).reset_index(drop=True)
    assert (examples["split"] == "train").sum() % BATCH_SIZE == 1
    return examples, catalog


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(processes: int, frames, tmp_path: Path) -> RetrievalBundle:
    examples, catalog = frames
    examples.to_parquet(tmp_path / "examples.parquet")
    catalog.to_parquet(tmp_path / "catalog.parquet")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "models.retrieval.train_distributed", "--device", "cpu",
        "--examples", str(tmp_path / "examples.parquet"), "--catalog", str(tmp_path / "catalog.parquet"),
        "--output", str(tmp_path / "bundle"),
        *(argument for name, value in SETTINGS.items() for argument in ("--set", f"{name}={json.dumps(value)}")),
    ]
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    environment["OMP_NUM_THREADS"] = "1"
    finished = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return RetrievalBundle.load(tmp_path / "bundle")


def centred_scores(bundle: RetrievalBundle, examples: pd.DataFrame) -> np.ndarray:
    _, scores = bundle.score_catalog(examples[examples["split"] == "holdout"])
    return scores - scores.mean(axis=1, keepdims=True)


@pytest.mark.trains
def test_two_gloo_ranks_train_the_weights_one_process_trains(frames, tmp_path):
    examples, catalog = frames
    one = train_candidate_generator(examples, catalog, RetrievalConfig(**SETTINGS))
    two = torchrun(2, frames, tmp_path)

    expected, got = one.model.state_dict(), two.model.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        if name != UNSEEN_BIAS:
            torch.testing.assert_close(got[name], expected[name], rtol=0, atol=2e-5, msg=name)
    np.testing.assert_allclose(centred_scores(two, examples), centred_scores(one, examples), rtol=0, atol=1e-4)
    assert two.metrics["world_size"] == 2
    assert two.metrics["train_loss"] == pytest.approx(one.metrics["train_loss"], abs=1e-5)
    assert two.metrics["holdout_recall@50"] == one.metrics["holdout_recall@50"]


def test_a_global_batch_that_does_not_split_evenly_is_refused_before_training(frames):
    examples, catalog = frames
    config = RetrievalConfig(**{**SETTINGS, "batch_size": 65})
    with pytest.raises(ValueError, match=r"batch_size=65 does not split evenly over 2 ranks.*e\.g\. 64 or 66"):
        train_candidate_generator_ddp(examples, catalog, config, Ranks(world_size=2, rank=0))


def test_a_frame_with_fewer_rows_than_ranks_cannot_be_shared_out():
    with pytest.raises(ValueError, match="3 training rows cannot be shared out over 4 ranks"):
        check_shardable(RetrievalConfig(batch_size=64), num_rows=3, world_size=4)
    check_shardable(RetrievalConfig(batch_size=64), num_rows=4, world_size=4)


def test_ranks_come_from_torchrun_and_one_process_outside_it():
    assert Ranks.from_environment({}) == Ranks(world_size=1, rank=0, local_rank=0)
    assert Ranks.from_environment({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == Ranks(4, 3, 1)


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE='two' is not an integer"),
        ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE=0: a run needs at least one process"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK=2 lies outside 0\.\.1"),
    ],
)
def test_a_bad_world_is_named(environment, message):
    with pytest.raises(ValueError, match=message):
        Ranks.from_environment(environment)


def test_config_fields_are_set_from_json_and_unknown_ones_are_named():
    assert config_overrides(["embedding_dim=32", "tower_widths=[64, 32]", "device=cpu"]) == {
        "embedding_dim": 32, "tower_widths": [64, 32], "device": "cpu"}
    with pytest.raises(ValueError, match="--set 'embeding_dim=32': expected FIELD=VALUE"):
        config_overrides(["embeding_dim=32"])
