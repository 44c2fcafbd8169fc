"""Promote a new champion version the way a retrain's deployment step does, for load scenarios.

Registers a copy of the current champion bundle of one served artifact as a new registry version
and moves the `champion` alias to it: the registry change a scheduled retrain makes, minus the
minutes of training. `bench/serving_load.py --at 30:"python bench/promote_copy.py ranker"` then
shows whether a running service picks it up without a failed request and switches versions once.

    VIDREC_HOME=<home> .venv/bin/python bench/promote_copy.py ranker
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from models.registry import SERVED_ARTIFACTS, download_version, log_bundle, required_champion_version, set_champion
from vidrec.settings import VidrecSettings


def promote_copy(settings: VidrecSettings, role: str) -> tuple[str, str]:
    """(old version, new version) of the artifact serving `role` after re-registering its champion."""
    artifact = SERVED_ARTIFACTS[role]
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    old = required_champion_version(client, artifact)
    metric = client.get_model_version(artifact.name, old).tags.get(artifact.selection_metric, "nan")
    with tempfile.TemporaryDirectory() as scratch:
        bundle = download_version(artifact, old, Path(scratch))
        with mlflow.start_run(run_name=f"promote_copy_{role}"):
            new = log_bundle(artifact, bundle, {artifact.selection_metric: float(metric)}).version
    set_champion(client, artifact, new)
    return old, new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=sorted(SERVED_ARTIFACTS), help="Which served artifact to promote anew.")
    args = parser.parse_args(argv)
    try:
        old, new = promote_copy(VidrecSettings(), args.role)
    except LookupError as error:
        print(f"promote_copy: {error}", file=sys.stderr)
        return 2
    print(f"{SERVED_ARTIFACTS[args.role].name}: champion v{old} -> v{new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
