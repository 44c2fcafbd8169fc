"""Train the candidate generator on several GPUs (or CPU processes) with torch DDP.

    torchrun --nproc_per_node 2 -m models.retrieval.train_distributed --home .vidrec --output /tmp/cg
    torchrun --nproc_per_node 2 -m models.retrieval.train_distributed --device cpu \
        --examples frame.parquet --catalog catalog.parquet

Reads the training frame and the video catalog the pipeline's `candidate_generator` asset reads
(under --home, or given as Parquet files), trains with each global batch shared out over
torchrun's processes (distributed.py), and on rank 0 prints the metrics as one JSON line
(examples/s, the holdout recall on a sample of the frame's holdout rows) and, with --output,
saves the bundle where `RetrievalBundle.load` reads it. One process (no torchrun, or
--nproc_per_node 1) is exactly `train_candidate_generator`, the pipeline's trainer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import pandas as pd
import torch

from models.retrieval.config import RetrievalConfig
from models.retrieval.distributed import (
    Ranks,
    check_shardable,
    process_group,
    train_candidate_generator_ddp,
    training_device,
)

logger = logging.getLogger(__name__)

# Where the pipeline keeps its inputs under VIDREC_HOME: a copy of
# orchestration.assets.features.retrieval_frame_path and of the catalog mart's path, which models/
# may not import (and importing orchestration costs ~10 s); to be imported once they live in vidrec/.
TRAINING_FRAME = Path("artifacts") / "retrieval_training_frame.parquet"
VIDEO_CATALOG = Path("marts") / "video_catalog.parquet"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node N -m models.retrieval.train_distributed",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--home", type=Path, help="VIDREC_HOME of a pipeline run (default: the VIDREC_HOME setting); "
                        "its history_length setting is used too")
    parser.add_argument("--examples", type=Path, help=f"training frame, Parquet (default: HOME/{TRAINING_FRAME})")
    parser.add_argument("--catalog", type=Path, help=f"video catalog, Parquet (default: HOME/{VIDEO_CATALOG})")
    parser.add_argument("--device", choices=("cuda", "cpu"), help="cuda: one GPU per process, nccl; "
                        "cpu: gloo (default: cuda when a GPU is present)")
    parser.add_argument("--epochs", type=int, help=f"default {RetrievalConfig.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"global batch, split evenly over the processes "
                        f"(default {RetrievalConfig.batch_size})")
    parser.add_argument("--seed", type=int, help=f"default {RetrievalConfig.seed}")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other RetrievalConfig field, VALUE as JSON (e.g. --set embedding_dim=32 "
                        "--set 'tower_widths=[64,32]'); repeatable")
    parser.add_argument("--output", type=Path, help="directory to save the trained bundle in (rank 0)")
    parser.add_argument("--metrics-json", type=Path, help="also write rank 0's metrics to this JSON file")
    parser.add_argument("--warmup-epochs", type=int, default=0,
                        help="first train this many epochs and discard them, so that CUDA and NCCL start-up "
                        "stay out of the timed run's examples/s (benchmarks)")
    return parser.parse_args(argv)


def config_overrides(pairs: list[str]) -> dict[str, object]:
    fields = {field.name for field in dataclasses.fields(RetrievalConfig)}
    overrides = {}
    for pair in pairs:
        name, separator, raw = pair.partition("=")
        if not separator or name not in fields:
            raise ValueError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        try:
            overrides[name] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[name] = raw  # a bare string, e.g. --set device=cpu
    return overrides


def resolve_inputs(arguments: argparse.Namespace) -> tuple[Path, Path, dict[str, object]]:
    """The frame and catalog paths, and the config fields the pipeline takes from its settings."""
    if arguments.examples and arguments.catalog:
        return arguments.examples, arguments.catalog, {}
    from vidrec.settings import VidrecSettings  # only here: explicit paths need no project settings

    settings = VidrecSettings(home=arguments.home) if arguments.home else VidrecSettings()
    return (
        arguments.examples or settings.home / TRAINING_FRAME,
        arguments.catalog or settings.home / VIDEO_CATALOG,
        {"history_length": settings.history_length},
    )


def build_config(arguments: argparse.Namespace, from_settings: dict[str, object], ranks: Ranks) -> RetrievalConfig:
    values: dict[str, object] = {"show_progress": ranks.is_main, **from_settings}
    values["device"] = arguments.device or ("cuda" if torch.cuda.is_available() else "cpu")
    for name in ("epochs", "batch_size", "seed"):
        if getattr(arguments, name) is not None:
            values[name] = getattr(arguments, name)
    values.update(config_overrides(arguments.set))
    return RetrievalConfig(**values)


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    ranks = Ranks.from_environment()
    logging.basicConfig(level=logging.INFO if ranks.is_main else logging.WARNING,
                        format=f"%(asctime)s rank {ranks.rank} %(name)s: %(message)s")
    examples_path, catalog_path, from_settings = resolve_inputs(arguments)
    for path in (examples_path, catalog_path):
        if not path.exists():
            raise SystemExit(f"{path} does not exist: run the pipeline first (vidrec pipeline) "
                             "or pass --examples and --catalog")
    config = build_config(arguments, from_settings, ranks)
    examples, catalog = pd.read_parquet(examples_path), pd.read_parquet(catalog_path)
    # Refuse a run that cannot be shared out before any process waits on another (the trainer
    # checks again once rows whose label is not in the catalog are dropped).
    check_shardable(config, int((examples["split"] == "train").sum()), ranks.world_size)
    with process_group(ranks, training_device(config, ranks)):
        if arguments.warmup_epochs:
            warmup = dataclasses.replace(
                config, epochs=arguments.warmup_epochs, max_eval_examples=1, show_progress=False
            )
            train_candidate_generator_ddp(examples, catalog, warmup, ranks)
        bundle = train_candidate_generator_ddp(examples, catalog, config, ranks)
    if bundle is None:  # ranks other than 0
        return
    if arguments.output:
        bundle.save(arguments.output)
        logger.info("saved the bundle to %s", arguments.output)
    metrics = {**bundle.metrics, "world_size": ranks.world_size, "device": config.device}
    if arguments.metrics_json:
        arguments.metrics_json.write_text(json.dumps(metrics, indent=2))
    sys.stdout.write(json.dumps(metrics) + "\n")


if __name__ == "__main__":
    main()
