"""Which learning rate a warm-started ranker should fine-tune at: the champion's weights, a few
epochs over the newest frame, at the cold fit's rate scaled by each `--scales` value.

Why: in the closed loop's daily retrains the warm-started ranker never beat its cold-trained
champion (docs/benchmarks.md, "Closed loop"), at the cold fit's own rate (Adam, 2e-3, fresh
moments): the first steps of a fresh Adam move every weight by about the rate, which may throw a
converged model off its optimum before a few epochs can bring it back.

On a home where `vidrec pipeline` and a closed loop ran (its ranking frame is newer than the
ranker champion's data), each scale (with each of `--epochs`) is fitted with `--seeds` seeds and scored on the frame's
validation rows (the train split's calibration tail, which no weight fits on) by the promotion
metric (watch-weighted AUC), beside the champion and a cold fit on the same rows. The choice is
made on validation; only the scales named by `--read-holdout` are scored on the holdout (the
rows promotion judges), once each.

    .venv/bin/python bench/warm_start_lr.py --home /tmp/vh1 --scales 1 0.3 0.1 --seeds 3
    .venv/bin/python bench/warm_start_lr.py --home /tmp/vh1 --scales 1 3 --epochs 8 16 --seeds 3 --read-holdout 1
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from feature_repo.feature_columns import ranker_inputs
from feature_repo.store import feature_store
from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.train import holdout_metrics, split_calibration_rows, train_ranker
from models.registry import RANKER
from orchestration.assets.features import ranking_frame_path
from orchestration.champions import load_champion
from vidrec.settings import VidrecSettings

METRIC = "holdout_auc_watch_weighted"  # holdout_metrics' name; on validation rows it is the validation AUC


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.3, 0.1])
    parser.add_argument("--epochs", type=int, nargs="+", default=None,
                        help="warm-start epochs to try with each scale (default: the config's warm_start_epochs)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--read-holdout", type=float, nargs="*", default=[], metavar="SCALE",
                        help="score these scales (and the champion and the cold fit) on the holdout")
    arguments = parser.parse_args(argv)

    settings = VidrecSettings(home=arguments.home)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    frame = pd.read_parquet(ranking_frame_path(settings))
    inputs = ranker_inputs(feature_store(settings))
    base = RankerConfig(categorical_features=list(inputs.categorical), numeric_features=list(inputs.numeric),
                        bag_features=list(inputs.lists), show_progress=False)
    champion = load_champion(RANKER, RankerBundle.load)
    if champion is None:
        raise SystemExit(f"no ranker champion in {settings.mlflow_tracking_uri}: run `vidrec pipeline` first")
    _, validation = split_calibration_rows(frame[frame["split"] == "train"], base.calibration_share)
    holdout = frame[frame["split"] == "holdout"]
    print(f"frame {len(frame)} rows, validation {len(validation)}, holdout {len(holdout)}; "
          f"champion v{champion.version}")

    rows = [_row("champion", [champion.bundle], validation, holdout, True, 0.0)]
    warm = [(scale, epochs) for scale in arguments.scales for epochs in arguments.epochs or [base.warm_start_epochs]]
    fits = {"cold": [], **{_name(scale, epochs): [] for scale, epochs in warm}}
    seconds = dict.fromkeys(fits, 0.0)
    for seed in range(arguments.seeds):
        started = time.perf_counter()
        fits["cold"].append(train_ranker(frame, replace(base, seed=seed)))
        seconds["cold"] += time.perf_counter() - started
        for scale, epochs in warm:
            config = replace(base, seed=seed, learning_rate=base.learning_rate * scale, warm_start_epochs=epochs)
            started = time.perf_counter()
            fits[_name(scale, epochs)].append(train_ranker(frame, config, warm_start=champion.bundle))
            seconds[_name(scale, epochs)] += time.perf_counter() - started
    read = {name for name in fits if name.startswith(tuple(f"warm ×{scale:g}," for scale in arguments.read_holdout))}
    for name, bundles in fits.items():
        rows.append(_row(name, bundles, validation, holdout, name == "cold" or name in read,
                         seconds[name] / arguments.seeds))
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".4f"))
    return 0


def _name(scale: float, epochs: int) -> str:
    return f"warm ×{scale:g}, {epochs} epochs"


def _row(name: str, bundles: list[RankerBundle], validation: pd.DataFrame, holdout: pd.DataFrame,
         read_holdout: bool, seconds: float) -> dict[str, object]:
    on_validation = np.array([holdout_metrics(bundle, validation)[METRIC] for bundle in bundles])
    row = {"model": name, "seeds": len(bundles), "validation AUC (mean)": on_validation.mean(),
           "validation AUC (min..max)": f"{on_validation.min():.4f}..{on_validation.max():.4f}",
           "fit s": round(seconds, 1)}
    if read_holdout:
        on_holdout = np.array([holdout_metrics(bundle, holdout)[METRIC] for bundle in bundles])
        row.update({"holdout AUC (mean)": on_holdout.mean(),
                    "holdout AUC (min..max)": f"{on_holdout.min():.4f}..{on_holdout.max():.4f}"})
    return row


if __name__ == "__main__":
    raise SystemExit(main())
