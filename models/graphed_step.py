"""A training step replayed as one CUDA graph.

Why: a recommender's training step is hundreds of small kernels (embedding gathers, a narrow MLP,
one loss per head, the optimizer's updates). On a GPU, launching them one at a time from Python
costs more than running them: an ml-100k ranker fit took about 30 s on an H100, bound by kernel
launches (docs/benchmarks.md). A CUDA graph records the step once and launches it whole.

What a step needs to be replayable:
- fixed shapes: only batches of the full batch size replay; any other (an epoch's last, shorter
  batch) runs eagerly, on the same parameters and optimizer state;
- no host synchronisation inside (no `.item()`, no data-dependent Python branch on a tensor);
- an optimizer that keeps its step count on the device (`torch.optim.Adam(capturable=True)`);
- gradients set to None before the step (`zero_grad(set_to_none=True)`), so the recorded backward
  writes fresh gradients rather than adding to stale ones.

The first `WARMUP_STEPS` full batches run eagerly on a side stream (lazy initialisation: cuBLAS
handles, the optimizer's state) and are real training steps; the next one is recorded and then
replayed, as is every later full batch. Recording runs no kernel, so the recorded step is replayed
right away for its own batch: the number and order of updates are those of the eager loop.
Dropout draws fresh masks at every replay (PyTorch advances the graph's random offsets).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

WARMUP_STEPS = 3

Step = Callable[[torch.Tensor], torch.Tensor]  # a batch's row indices → its (detached) loss


class GraphedStep:
    """`step` (forward, backward and optimizer update of the rows it is given), replayed as a CUDA
    graph for every batch of `batch_size` rows once warmed up."""

    def __init__(self, step: Step, batch_size: int, device: torch.device):
        if device.type != "cuda":
            raise ValueError(f"a CUDA graph needs a CUDA device, got {device}")
        self._step = step
        self.batch_size = batch_size
        self._device = device
        self._rows = torch.zeros(batch_size, dtype=torch.int64, device=device)  # the graph's input
        self._graph: torch.cuda.CUDAGraph | None = None
        self._loss: torch.Tensor | None = None  # the graph's output, overwritten by each replay
        self._warm_steps = 0
        self.replays = 0

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """The batch's loss, valid until the next call (read it, or add it up, on the stream first)."""
        if len(rows) != self.batch_size:
            return self._step(rows)
        if self._graph is None and self._warm_steps < WARMUP_STEPS:
            self._warm_steps += 1
            return self._warm_up(rows)
        if self._graph is None:
            self._record()
        self._rows.copy_(rows)
        self._graph.replay()
        self.replays += 1
        return self._loss

    def _warm_up(self, rows: torch.Tensor) -> torch.Tensor:
        side = torch.cuda.Stream(self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            loss = self._step(rows)
        torch.cuda.current_stream(self._device).wait_stream(side)
        return loss

    def _record(self) -> None:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._loss = self._step(self._rows)
        self._graph = graph
