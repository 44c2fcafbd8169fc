"""Peak memory and wall time of one training-frame asset, materialized alone on an existing home.

    VIDREC_HOME=/tmp/fm3 .venv/bin/python bench/frame_memory.py [--asset retrieval_training_frame] [--copy-to F]

The home must hold the asset's inputs (a finished `vidrec pipeline`, or one run past the asset):
the marts and the Feast registry. The asset runs in this process under an ephemeral Dagster
instance, so the peak resident set (`ru_maxrss`) printed at the end is the step's own plus the
interpreter and imports (about what the same step peaks at inside `vidrec pipeline`, which runs
steps in one process); the baseline after the imports is printed too, to tell them apart.
`--copy-to` keeps a copy of the written frame (to compare frames before and after a change).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

from dagster import materialize

from orchestration.assets import features
from orchestration.resources import VidrecResource
from vidrec.settings import VidrecSettings

ASSETS = {"retrieval_training_frame": (features.retrieval_training_frame, features.retrieval_frame_path),
          "ranking_training_frame": (features.ranking_training_frame, features.ranking_frame_path)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asset", choices=sorted(ASSETS), default="retrieval_training_frame")
    parser.add_argument("--copy-to", type=Path, help="copy the written frame here afterwards")
    args = parser.parse_args()
    settings = VidrecSettings()
    asset, frame_path = ASSETS[args.asset]
    baseline = peak_rss_mib()
    started = time.perf_counter()
    result = materialize([asset], resources={"vidrec": VidrecResource.from_settings(settings)},
                         raise_on_error=False)
    wall = time.perf_counter() - started
    metadata = {key: value.value for event in result.get_asset_materialization_events()
                for key, value in event.materialization.metadata.items()}
    print(f"| asset | {args.asset} |\n|---|---|")
    print(f"| VIDREC_HOME | {settings.home} |")
    print(f"| succeeded | {result.success} |")
    print(f"| wall time | {wall:.1f} s |")
    print(f"| peak RSS after imports | {baseline:.0f} MiB |")
    print(f"| peak RSS | {peak_rss_mib():.0f} MiB |")
    for key, value in metadata.items():
        print(f"| {key} | {value} |")
    if args.copy_to and result.success:
        shutil.copy(frame_path(settings), args.copy_to)
    sys.exit(0 if result.success else 1)


if __name__ == "__main__":
    main()
