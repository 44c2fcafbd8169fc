"""The ranker's training on a GPU, step by step from Python against replayed as a CUDA graph.

Why: a ranker fit on ml-100k took about 30 s on an H100 with every step's few hundred small
kernels launched one by one (docs/benchmarks.md), so the benchmark's search (25 fits) did not
fit a 10-minute call. `RankerConfig.cuda_graph` records the step once and replays it
(models/graphed_step.py). This measures both ways on the same rows, seeds and hyper-parameters,
interleaved (eager, graph, eager, graph, ...), and reports the fit's wall time and the validation
loss, which must agree: without dropout the updates are the same, with dropout only the masks
differ.

It reads no holdout: the holdout rows are dropped before anything is fit.

    python3 bench/ranker_cuda_graph.py --frame-dir EXPORT --seeds 3 \\
        --params '{"epochs": 28, "weight_decay": 0.0014, "learning_rate": 0.00304, "dropout": 0.272, "cross_layers": 1}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ranking_data import exported_frame
from bench.ranking_features import benchmark_frame
from models.ranking.train import train_ranker

MODES = {"eager": False, "CUDA graph": True}


def spread(values: np.ndarray) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def measure(frame_dir: Path, params: dict, seeds: int, device: str) -> list[dict]:
    """One fit per (seed, mode), modes interleaved within each seed: wall seconds, validation loss
    and how many steps replayed a graph."""
    frame, inputs = exported_frame(frame_dir)
    frame, config = benchmark_frame(frame, inputs)
    train_rows = frame[frame["split"] == "train"]
    config = replace(config, device=device, **params)
    if torch.device(device).type == "cuda":
        torch.ones(1, device=device).sum().item()  # the CUDA context starts outside the first timed fit
    rows = []
    for seed in range(seeds):
        for mode, graphed in MODES.items():
            started = time.perf_counter()
            bundle = train_ranker(train_rows, replace(config, seed=seed, cuda_graph=graphed))
            seconds = time.perf_counter() - started
            rows.append({"mode": mode, "seed": seed, "seconds": seconds,
                         "validation_loss": bundle.metrics["validation_loss"],
                         "replays": bundle.metrics.get("cuda_graph_replays", 0.0)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict], frame_dir: Path, params: dict) -> str:
    lines = [f"frame {frame_dir}; {json.dumps(params)}; {torch.cuda.get_device_name()}, torch {torch.__version__}",
             "", "| training step | seeds | fit s (mean ± sd) | validation loss (mean ± sd) | graph replays per fit |",
             "|---|---|---|---|---|"]
    means = {}
    for mode in MODES:
        mine = [row for row in rows if row["mode"] == mode]
        seconds = np.array([row["seconds"] for row in mine])
        losses = np.array([row["validation_loss"] for row in mine])
        means[mode] = seconds.mean()
        lines.append(f"| {mode} | {len(mine)} | {seconds.mean():.2f} ± {spread(seconds):.2f} "
                     f"| {losses.mean():.5f} ± {spread(losses):.5f} "
                     f"| {np.mean([row['replays'] for row in mine]):.0f} |")
    lines.append(f"\neager ÷ graph: {means['eager'] / means['CUDA graph']:.1f}× (fit wall time: encoding, "
                 "training, calibration)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frame-dir", type=Path, required=True, help="what bench/ranking.py --export wrote")
    parser.add_argument("--params", type=json.loads, default={},
                        help="the ranker's hyper-parameters as JSON (RankerConfig fields)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this compares two ways of training on a GPU, and torch sees no CUDA device here")
    rows = measure(args.frame_dir, args.params, args.seeds, args.device)
    print(table(rows, args.frame_dir, args.params))


if __name__ == "__main__":
    main()
