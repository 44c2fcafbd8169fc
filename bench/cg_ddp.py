"""Candidate-generator training throughput on 1 and N processes (torch DDP), and the scaling factor.

    .venv/bin/python bench/retrieval_throughput.py --export .benchdata/examples.json    # the data, once
    .venv/bin/python bench/cg_ddp.py --input .benchdata/examples.json --device cpu --processes 1,2
    python3 bench/cg_ddp.py --input .benchdata/examples.json --device cuda --processes 1,2 \
        --batch-sizes 512,4096,16384 --epochs 20 --repeat 4                             # on a 2-GPU machine

Each row is one `torchrun --nproc_per_node N` run of this script's worker on 127.0.0.1: N = 1 is
`train_candidate_generator` itself, N > 1 shares every global batch out over the ranks
(models/retrieval/distributed.py: nccl between GPUs, gloo on the CPU). The batch size is the
global batch, the same optimizer steps at every N. examples/s is rank 0's over `--epochs` epochs,
timed after a `--warmup-epochs` run in the same processes (process start-up, CUDA and NCCL
initialisation and the first kernels stay outside). scaling = examples/s at N / examples/s at 1
for the same batch size; efficiency = scaling / N. On the CPU the cores are split evenly among
the ranks (threads per rank = cores // N, unless --threads-per-rank), so the total stays the machine.

The data are the rollback examples bench/retrieval_throughput.py exports (the default simulated
data); `--repeat K` stacks K copies of them for longer epochs. The workers need only torch,
numpy, pandas and tqdm, so this also runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # run from anywhere, even without installing


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def threads_per_rank(arguments: argparse.Namespace, processes: int) -> int:
    if arguments.threads_per_rank:
        return arguments.threads_per_rank
    return max(1, (os.cpu_count() or 1) // processes) if arguments.device == "cpu" else 1


def launch(arguments: argparse.Namespace, processes: int, batch_size: int, result: Path) -> dict:
    """One torchrun run of the worker; rank 0's measurements."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(Path(__file__).resolve()), "--worker", "--input", str(arguments.input), "--device", arguments.device,
        "--batch-size", str(batch_size), "--epochs", str(arguments.epochs),
        "--warmup-epochs", str(arguments.warmup_epochs), "--repeat", str(arguments.repeat), "--result", str(result),
    ]
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    environment["OMP_NUM_THREADS"] = str(threads_per_rank(arguments, processes))
    finished = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"torchrun --nproc_per_node {processes} failed:\n{finished.stderr[-4000:]}")
    return json.loads(result.read_text())


def measure(arguments: argparse.Namespace) -> None:
    processes = [int(count) for count in arguments.processes.split(",")]
    print("| device | processes | threads/rank | global batch | rows/rank | epochs | examples | examples/s "
          "| scaling | efficiency |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for batch_size in (int(size) for size in arguments.batch_sizes.split(",")):
            single = None
            for count in processes:
                run = launch(arguments, count, batch_size, Path(scratch) / f"{batch_size}-{count}.json")
                speed = run["train_examples_per_second"]
                single = speed if count == 1 else single
                scaling = f"{speed / single:.2f}" if single else "–"
                efficiency = f"{speed / single / count:.0%}" if single else "–"
                print(f"| {run['device_name']} | {count} | {threads_per_rank(arguments, count)} | {batch_size:,} | "
                      f"{batch_size // count:,} | {arguments.epochs} | {run['examples']:,} | {speed:,.0f} | "
                      f"{scaling} | {efficiency} |", flush=True)


def load_examples(path: Path, repeat: int):
    import pandas as pd

    payload = json.loads(path.read_text())
    examples, catalog = pd.DataFrame(payload["examples"]), pd.DataFrame(payload["catalog"])
    examples["reference_time"] = pd.to_datetime(examples["reference_time"])
    catalog["upload_time"] = pd.to_datetime(catalog["upload_time"])
    return pd.concat([examples] * repeat, ignore_index=True), catalog


def work(arguments: argparse.Namespace) -> None:
    """One rank of a torchrun run: train twice (warm-up, timed) and, on rank 0, write the result."""
    import dataclasses

    import torch

    from models.retrieval.config import RetrievalConfig
    from models.retrieval.distributed import Ranks, process_group, train_candidate_generator_ddp, training_device

    ranks = Ranks.from_environment()
    examples, catalog = load_examples(arguments.input, arguments.repeat)
    config = RetrievalConfig(device=arguments.device, batch_size=arguments.batch_size, epochs=arguments.epochs,
                             show_progress=False, max_eval_examples=1)
    device = training_device(config, ranks)
    with process_group(ranks, device):
        if arguments.warmup_epochs:
            warmup = dataclasses.replace(config, epochs=arguments.warmup_epochs)
            train_candidate_generator_ddp(examples, catalog, warmup, ranks)
        bundle = train_candidate_generator_ddp(examples, catalog, config, ranks)
    if bundle is None:
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    arguments.result.write_text(json.dumps({
        "device_name": name, "examples": int((examples["split"] == "train").sum()), **bundle.metrics,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True,
                        help="examples JSON from bench/retrieval_throughput.py --export")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts (GPUs with --device cuda); "
                        "include 1 for the scaling factor")
    parser.add_argument("--batch-sizes", default="512,4096", help="comma-separated global batch sizes")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="stack this many copies of the examples")
    parser.add_argument("--threads-per-rank", type=int,
                        help="OMP threads per process (default: cores // N on the CPU, 1 on GPUs)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        work(arguments)
    else:
        measure(arguments)


if __name__ == "__main__":
    main()
