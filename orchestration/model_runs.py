"""What every model asset records with its MLflow run, and the shared holdout evaluation task.

Lineage tags (Dagster run id, data snapshot, holdout cut) and the holdout task (the evaluation
protocol's global split at the cut, with each test user's query) are computed here once so every
model is logged and judged the same way.
"""

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, AssetKey

from feature_repo.store import feature_store
from models.evaluation.holdout_task import HoldoutTask, build_holdout_task, task_with_stored_queries
from models.registry import ModelVersionRef
from orchestration.json_records import write_json_atomically
from vidrec.marts import Mart, mart_path
from vidrec.settings import VidrecSettings


def holdout_start(settings: VidrecSettings) -> pd.Timestamp:
    """The temporal cut dbt computed (the event_window mart), so Python and SQL agree on one split."""
    window = pd.read_parquet(mart_path(settings.marts_dir, Mart.EVENT_WINDOW), columns=["holdout_start"])
    return pd.Timestamp(window["holdout_start"].iloc[0])


def data_snapshot(settings: VidrecSettings) -> str:
    """An id of the raw data a model saw: a hash of the raw manifest plus the holdout cut."""
    manifest = (settings.raw_dir / "_manifest.json").read_bytes()
    digest = hashlib.sha256(manifest + str(holdout_start(settings)).encode()).hexdigest()
    return digest[:16]


def run_tags(context: AssetExecutionContext, settings: VidrecSettings) -> dict[str, str]:
    return {
        "dagster_run_id": context.run.run_id,
        "dagster_asset": context.asset_key.to_user_string(),
        "data_snapshot": data_snapshot(settings),
        "holdout_start": str(holdout_start(settings)),
    }


def holdout_queries_path(settings: VidrecSettings) -> Path:
    return settings.artifacts_dir / "holdout_queries.parquet"


def build_holdout_queries(settings: VidrecSettings) -> HoldoutTask:
    """The holdout task with its queries read through the Feast registry (the `holdout_queries`
    asset does this once per run and stores the queries)."""
    return build_holdout_task(
        interactions=pd.read_parquet(mart_path(settings.marts_dir, Mart.WATCH_INTERACTIONS)),
        store=feature_store(settings),
        holdout_start=holdout_start(settings),
    )


def holdout_task(settings: VidrecSettings) -> HoldoutTask:
    """The holdout task every model asset evaluates on: the split from the marts, the queries the
    `holdout_queries` asset stored (a Feast point-in-time read costs seconds; four assets share it)."""
    path = holdout_queries_path(settings)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize the holdout_queries asset first")
    return task_with_stored_queries(
        interactions=pd.read_parquet(mart_path(settings.marts_dir, Mart.WATCH_INTERACTIONS)),
        queries=pd.read_parquet(path),
        holdout_start=holdout_start(settings),
    )


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def prefixed_metrics(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{name.replace('@', '_at_')}": float(value) for name, value in metrics.items()}


def metric_table(rows: dict[str, dict[str, float]], keys: list[str]) -> str:
    header = "| method | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys) + "\n"
    body = "".join(
        f"| {method} | " + " | ".join(f"{values.get(key, float('nan')):.4f}" for key in keys) + " |\n"
        for method, values in rows.items()
    )
    return header + body


def registration_metadata(ref: ModelVersionRef) -> dict[str, object]:
    return {
        "mlflow_model": ref.name,
        "mlflow_version": ref.version,
        "mlflow_run_id": ref.run_id,
        "selection_metric": ref.metric_value,
    }


def registration_path(settings: VidrecSettings, asset: AssetKey) -> Path:
    return settings.artifacts_dir / "registrations" / f"{asset.to_python_identifier()}.json"


def record_registration(settings: VidrecSettings, asset: AssetKey, values: dict[str, object]) -> dict[str, object]:
    """Store what a model asset registered (its MLflow version, selection metric, holdout metrics)
    as that asset's output file, and return `values`.

    Downstream assets read it with `registration` instead of the Dagster instance's event log: an
    asset's results reach another through the files it writes, as its bundle does, so a run on a
    fresh instance (or another deployment's) still finds them. Written atomically: a crash leaves
    the previous record."""
    path = registration_path(settings, asset)
    path.parent.mkdir(parents=True, exist_ok=True)
    scalars = {name: value for name, value in values.items() if isinstance(value, str | int | float | bool)}
    write_json_atomically(path, scalars)
    return values


def registration(settings: VidrecSettings, asset: AssetKey) -> dict[str, object]:
    """What `asset` last registered (see `record_registration`)."""
    path = registration_path(settings, asset)
    if not path.exists():
        raise LookupError(f"{asset.to_user_string()} has not been materialized under {settings.home} "
                          f"(no {path.name} in {path.parent}): materialize it first")
    return json.loads(path.read_text())

