"""Training the candidate generator over several processes (torch DDP, launched by torchrun).

Every rank trains on its shard of each *global* batch, so N ranks take the same optimizer steps as
one process would: `config.batch_size` stays the global batch (the size the logQ correction
assumes) and each rank computes `batch_size / N` of its rows.

- **Same batches.** Every rank builds the same training data from the same frames (encoding is
  deterministic) and draws from a generator seeded with `config.seed`, so all ranks see the same
  permutation of the rows and the same uniform negatives. Rank r takes the r-th of N contiguous
  shards of each batch's rows (DistributedSampler's idea, applied per global batch of one seeded
  permutation); the last, short batch is shared out the same way, possibly leaving a rank no rows.
- **Same negatives.** The sampled softmax's negatives are the other labels of the batch. A rank
  that scored its users only against its own shard's labels would train against half the
  negatives (a different, easier loss, not what one process trains). So the candidates (global
  labels, then the uniform draws) are shared out too: each rank runs the video tower on its
  1/N of them and all ranks all-gather the vectors, so every rank scores its users against every
  candidate of the global batch. The gather's backward pass sums, over ranks, the gradient each
  rank's loss puts on the gathered vectors and hands every rank the part for the vectors it
  computed (`gather_rows`).
- **Same loss.** Rank r's loss is the sum of its rows' cross-entropies times N / batch; DDP
  averages the ranks' gradients (dividing by N), which gives the gradient of the one-process
  mean over the whole batch. Adam then takes the same step on every rank.

What differs from one process is float32 rounding only: the matrix products run on shards of
the batch (another summation order) and the gradients arrive as a sum over ranks. Rank 0 alone
keeps the weight average and returns the bundle (with the holdout metrics); the other ranks
return None.

Costs and limits: every rank holds the whole encoded training frame and catalog (the default data
is tens of MB); gradients are dense, so each step all-reduces every embedding table's gradient.
That is cheap for catalogs of thousands to a few hundred thousand videos; beyond that the id
tables want sparse gradients or row-wise sharding (TorchRec) instead of data parallelism. On a
GPU a rank's share of a small batch (512 rows) is launch-bound: data parallelism pays from global
batches of several thousand rows (bench/cg_ddp.py).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models.devices import AUTO_DEVICE
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.config import RetrievalConfig
from models.retrieval.features import UserInputs, VideoInputs
from models.retrieval.model import CandidateGenerator
from models.retrieval.train import (
    TrainingTensors,
    WeightAverage,
    finish_bundle,
    fit,
    new_model,
    prepare_training_data,
    sampled_softmax_loss,
    train_candidate_generator,
)

logger = logging.getLogger(__name__)

# The model's buffers are lookup tables, equal on every rank and never trained: no broadcast before
# every forward. (torch 2.13 renamed the option; older releases, as on some GPU machines, lack the new name.)
NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: torchrun's WORLD_SIZE, RANK and LOCAL_RANK."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0  # the GPU this rank trains on (one process per GPU)

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] = os.environ) -> Ranks:
        """One process (world size 1) when WORLD_SIZE is unset, as outside torchrun."""
        if "WORLD_SIZE" not in environment:
            return cls()
        world_size = _integer(environment, "WORLD_SIZE", "1")
        rank = _integer(environment, "RANK", "0")
        ranks = cls(world_size, rank, _integer(environment, "LOCAL_RANK", str(rank)))
        if ranks.world_size < 1:
            raise ValueError(f"WORLD_SIZE={ranks.world_size}: a run needs at least one process")
        if not 0 <= ranks.rank < ranks.world_size:
            raise ValueError(
                f"RANK={ranks.rank} lies outside 0..{ranks.world_size - 1} (WORLD_SIZE={ranks.world_size})"
            )
        return ranks

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _integer(environment: Mapping[str, str], name: str, default: str) -> int:
    raw = environment.get(name, default)
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; torchrun sets it (--nproc_per_node N)") from None


def check_shardable(config: RetrievalConfig, num_rows: int, world_size: int) -> None:
    """Every rank must get the same share of a full batch and some rows of the frame."""
    if world_size < 1:
        raise ValueError(f"world size {world_size}: a run needs at least one process")
    if config.batch_size % world_size:
        lower = max(world_size, config.batch_size // world_size * world_size)
        raise ValueError(
            f"batch_size={config.batch_size} does not split evenly over {world_size} ranks (each trains "
            f"batch_size / {world_size} rows of every global batch); use a multiple of {world_size}, "
            f"e.g. {lower} or {lower + world_size}"
        )
    if num_rows < world_size:
        raise ValueError(
            f"{num_rows} training rows cannot be shared out over {world_size} ranks: "
            f"every rank needs at least one row (run fewer processes)"
        )


def training_device(config: RetrievalConfig, ranks: Ranks) -> torch.device:
    """CUDA (or "auto" where torch sees a GPU): the local rank's own GPU (one process per GPU);
    otherwise the CPU."""
    name = config.device
    if name == AUTO_DEVICE:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not name.startswith("cuda"):
        return torch.device(name)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise ValueError(f"device={config.device!r} but this machine shows no GPU to torch {torch.__version__}; "
                         "train with device 'cpu' (--device cpu)")
    if ranks.local_rank >= available:
        raise ValueError(
            f"device={config.device!r} but local rank {ranks.local_rank} has no GPU: this machine shows "
            f"{available}; run torchrun --nproc_per_node {available} at most (or --device cpu)"
        )
    return torch.device("cuda", ranks.local_rank)


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """The default process group over torchrun's rendezvous (MASTER_ADDR, MASTER_PORT):
    nccl between GPUs, gloo on the CPU. Nothing to set up for a single process."""
    if ranks.world_size == 1:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=ranks.rank, world_size=ranks.world_size, device_id=device)
    else:
        dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


class _GatherRows(torch.autograd.Function):
    """All-gather rows of unequal counts (padded to the largest for the collective)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, counts: list[int], rank: int) -> torch.Tensor:
        ctx.counts, ctx.rank = counts, rank
        padded = torch.cat([rows, rows.new_zeros(max(counts) - len(rows), *rows.shape[1:])])
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:count] for part, count in zip(parts, counts)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # Every rank's loss read every gathered row: this rank's rows get the sum over ranks.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start:start + ctx.counts[ctx.rank]], None, None


def gather_rows(rows: torch.Tensor, counts: list[int], rank: int) -> torch.Tensor:
    """(sum(counts), ...) every rank's `rows` in rank order; `counts[r]` is rank r's row count.
    Differentiable: gradients flow back to the rank that computed each row."""
    return _GatherRows.apply(rows, counts, rank)


class ShardedSampledSoftmax(nn.Module):
    """The forward pass DDP wraps: this rank's users against every candidate of the global batch,
    returning this rank's share of the batch's mean loss (times the world size, see the module
    docstring), so that DDP's gradient average is the one-process gradient."""

    def __init__(
        self, model: CandidateGenerator, config: RetrievalConfig, log_counts: torch.Tensor | None, ranks: Ranks
    ):
        super().__init__()
        self.model = model
        self.config = config
        self.log_counts = log_counts
        self.ranks = ranks

    def forward(
        self,
        users: UserInputs,  # (rows here,) this rank's shard of the batch's rows
        candidate_share: VideoInputs,  # this rank's share of the candidates, in candidate order
        candidates: torch.Tensor,  # (global batch + uniform,) catalog positions, the same on every rank
        share_counts: list[int],  # every rank's number of candidates in its share
        positive_columns: torch.Tensor,  # (rows here,) where each row's label sits in `candidates`
        global_batch: int,  # rows in the global batch
        reference_days: torch.Tensor | None,  # (rows here,) with video_age_logit
        candidate_upload_days: torch.Tensor | None,  # (global batch + uniform,) with video_age_logit
    ) -> torch.Tensor:
        user_vectors = self.model.user_vectors(users)  # (rows here, dim)
        share_vectors = self.model.video_vectors(candidate_share)  # (share, dim)
        candidate_vectors = gather_rows(share_vectors, share_counts, self.ranks.rank)  # (global batch + uniform, dim)
        age_logits = (
            self.model.age_logits(reference_days, candidate_upload_days) if self.config.video_age_logit else None
        )  # (rows here, global batch + uniform)
        loss = sampled_softmax_loss(
            user_vectors, candidate_vectors, candidates, self.log_counts, self.config.temperature, age_logits,
            positive_columns=positive_columns, reduction="sum",
        )
        return loss * self.ranks.world_size / global_batch


class ShardedBatchLoss:
    """`fit`'s loss of one global batch on this rank: cuts the rows and the candidates into the
    ranks' shares and runs this rank's through the DDP-wrapped `ShardedSampledSoftmax`."""

    def __init__(self, step: DistributedDataParallel, tensors: TrainingTensors, config: RetrievalConfig, ranks: Ranks):
        self.step, self.tensors, self.config, self.ranks = step, tensors, config, ranks

    def __call__(self, rows: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        world, rank, tensors = self.ranks.world_size, self.ranks.rank, self.tensors
        candidates = torch.cat([tensors.labels[rows], uniform])  # (global batch + uniform,)
        row_shards = torch.tensor_split(rows, world)
        candidate_shares = torch.tensor_split(candidates, world)
        my_rows, first_row = row_shards[rank], sum(len(shard) for shard in row_shards[:rank])
        aging = self.config.video_age_logit
        return self.step(
            tensors.users.select(my_rows),
            tensors.videos.select(candidate_shares[rank]),
            candidates,
            [len(share) for share in candidate_shares],
            torch.arange(first_row, first_row + len(my_rows), device=rows.device),
            len(rows),
            tensors.reference_days[my_rows] if aging else None,
            tensors.upload_days[candidates] if aging else None,
        )


def mean_over_ranks(value: float, device: torch.device) -> float:
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.item() / dist.get_world_size()


def train_candidate_generator_ddp(
    examples: pd.DataFrame, catalog: pd.DataFrame, config: RetrievalConfig, ranks: Ranks
) -> RetrievalBundle | None:
    """`train_candidate_generator` with each global batch shared out over the ranks of an
    initialised process group (`process_group`). Rank 0 returns the bundle, the others None.
    Every epoch runs (no early stopping, whatever the config says); a world of one is exactly
    `train_candidate_generator` of that fixed schedule."""
    if config.early_stopping_patience is not None:
        # Stopping needs every rank to agree on the epoch, and only rank 0 holds the served weight
        # average a validation loss would score: a distributed run, of any size, trains the fixed schedule.
        logger.warning("distributed training runs all %d epochs on every train row: early stopping "
                       "(early_stopping_patience=%s) is for one process", config.epochs, config.early_stopping_patience)
        config = dataclasses.replace(config, early_stopping_patience=None)
    if ranks.world_size == 1:
        return train_candidate_generator(examples, catalog, config)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    data = prepare_training_data(examples, catalog, config)
    check_shardable(config, len(data.train), ranks.world_size)
    device = training_device(config, ranks)
    model = new_model(data, config).to(device)
    tensors = data.on(device, config)
    step = DistributedDataParallel(
        ShardedSampledSoftmax(model, config, tensors.log_counts, ranks),
        device_ids=[device.index] if device.type == "cuda" else None,
        **NO_BUFFER_SYNC,
    )
    averaged = WeightAverage(model, config.weight_ema_decay) if config.weight_ema_decay > 0 and ranks.is_main else None
    rank_config = config if ranks.is_main else dataclasses.replace(config, show_progress=False)
    trained, metrics = fit(
        model, ShardedBatchLoss(step, tensors, config, ranks), len(data.train), len(data.catalog),
        rank_config, generator, device, averaged,
    )
    metrics["train_loss"] = mean_over_ranks(metrics["train_loss"], device)
    metrics["world_size"] = float(ranks.world_size)
    if not ranks.is_main:
        return None
    return finish_bundle(trained, data, examples, config, metrics, started)
