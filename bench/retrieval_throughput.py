"""Candidate-generator training throughput (examples per second) on CPU or GPU.

    .venv/bin/python bench/retrieval_throughput.py --export /tmp/examples.json     # build the data here
    .venv/bin/python bench/retrieval_throughput.py --input /tmp/examples.json --device cpu
    python3 bench/retrieval_throughput.py --input examples.json --device cuda       # on a GPU machine

The examples are rollback examples from the default simulated data (the train part of the
protocol's default global temporal split, as in bench/retrieval.py). `--export` needs the
project's environment; the training run needs only torch, numpy, pandas and tqdm, so it also runs
on a bare GPU machine. Each `--batch-size` is timed over `--epochs` epochs after a one-epoch
warm-up run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, even without installing

from models.retrieval.config import RetrievalConfig
from models.retrieval.train import train_candidate_generator


def export(path: Path) -> None:
    from models.baselines.candidate_generator import rollback_examples
    from models.evaluation.protocol import temporal_split
    from vidrec.simulator import SimulationConfig, simulate_world

    tables, _ = simulate_world(SimulationConfig())
    watches = tables["watches"]
    interactions = pd.DataFrame({"user_id": watches["user_id"], "video_id": watches["video_id"],
                                 "time": watches["watch_time"]})
    train = temporal_split(interactions).train
    examples, _ = rollback_examples(train, history_length=50, max_examples_per_user=200, searches=tables["searches"])
    users = tables["users"][["user_id", "country", "device", "age_bucket", "gender"]]
    examples = examples.merge(users, on="user_id", how="left")
    examples["reference_time"] = examples["reference_time"].astype(str)  # JSON has no timestamps
    catalog = tables["videos"].assign(upload_time=lambda frame: frame["upload_time"].astype(str))
    path.write_text(json.dumps({"examples": examples.to_dict("list"), "catalog": catalog.to_dict("list")}))
    print(f"wrote {len(examples)} examples and {len(catalog)} videos to {path}")


def measure(path: Path, device: str, batch_sizes: list[int], epochs: int) -> None:
    payload = json.loads(path.read_text())
    examples, catalog = pd.DataFrame(payload["examples"]), pd.DataFrame(payload["catalog"])
    examples["reference_time"] = pd.to_datetime(examples["reference_time"])
    catalog["upload_time"] = pd.to_datetime(catalog["upload_time"])
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print("| device | batch size | epochs | examples | examples/s | seconds |")
    print("|---|---|---|---|---|---|")
    for batch_size in batch_sizes:
        config = dict(device=device, batch_size=batch_size, show_progress=False, max_eval_examples=1)
        train_candidate_generator(examples, catalog, RetrievalConfig(epochs=1, **config))  # warm-up
        started = time.perf_counter()
        bundle = train_candidate_generator(examples, catalog, RetrievalConfig(epochs=epochs, **config))
        print(f"| {name} | {batch_size} | {epochs} | {len(examples)} | "
              f"{bundle.metrics['train_examples_per_second']:,.0f} | {time.perf_counter() - started:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="write the examples as JSON and stop")
    parser.add_argument("--input", type=Path, help="examples JSON written by --export")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="512,4096")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if args.export:
        export(args.export)
    elif args.input:
        measure(args.input, args.device, [int(size) for size in args.batch_sizes.split(",")], args.epochs)
    else:
        parser.error("pass --export PATH or --input PATH")


if __name__ == "__main__":
    main()
