"""What one ranker training step costs on frames of different sizes, in one process, one after
the other: does the per-step cost grow with the data?

Why: `bench/pipeline_scaling.py` times the whole `ranking_model` step, whose work is steps ×
cost per step. The steps grow with the frame's rows; the cost per step should not, except through
what grows with the catalogue: the video and creator embedding tables, whose every row Adam and
the dense embedding gradient touch at every step. This trains the pipeline's ranker config for a
few epochs on each home's frame (train rows only; nothing is scored on the holdout) and reports
milliseconds per step beside the tables' sizes.

    .venv/bin/python bench/ranker_step_cost.py --homes /tmp/vh_sim /tmp/scale30/scale-30 --epochs 2 --threads 2
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ranking_data import pipeline_frame_path, pipeline_inputs
from models.ranking.config import RankerConfig
from models.ranking.train import split_calibration_rows, train_ranker
from vidrec.settings import VidrecSettings


def step_cost(home: Path, epochs: int) -> dict:
    settings = VidrecSettings(home=home)
    inputs = pipeline_inputs(settings)
    frame = pd.read_parquet(pipeline_frame_path(settings))
    train = frame[frame["split"] == "train"]
    del frame
    config = RankerConfig(categorical_features=list(inputs["categorical"]), numeric_features=list(inputs["numeric"]),
                          bag_features=list(inputs["lists"]), show_progress=False, epochs=epochs, device="cpu")
    fit_rows, _ = split_calibration_rows(train, config.calibration_share)
    steps = math.ceil(len(fit_rows) / config.batch_size) * epochs
    bundle = train_ranker(train, config)
    tables = {name: table.num_embeddings for name, table in zip(config.categorical_features, bundle.model.embeddings,
                                                                strict=True)}
    epochs_seconds = bundle.metrics["epochs_seconds"]
    return {"home": str(home), "fit_rows": len(fit_rows), "steps": steps, "epochs_seconds": epochs_seconds,
            "ms_per_step": 1000 * epochs_seconds / steps,
            "video_rows": tables.get("video_id", 0), "creator_rows": tables.get("creator_id", 0),
            "parameters": sum(parameter.numel() for parameter in bundle.model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--homes", type=Path, nargs="+", required=True, help="VIDREC_HOMEs where the pipeline ran")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the pipeline uses the machine's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [step_cost(home, args.epochs) for home in args.homes]
    print(f"\n{args.epochs} epochs, {args.threads} torch threads, the pipeline's ranker config (epochs aside)\n")
    print("| home | fit rows | steps | ms per step | video table rows | creator table rows | parameters |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['home']} | {row['fit_rows']:,} | {row['steps']:,} | {row['ms_per_step']:.1f} | "
              f"{row['video_rows']:,} | {row['creator_rows']:,} | {row['parameters']:,} |")


if __name__ == "__main__":
    main()
