"""A small raw log (the dbt tests' hand-made rows, 2026-01-01 .. 06) and the corruptions the
quarantine tests add to it, so the expected verdicts can be worked out by hand."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetKey, DagsterInstance, load_assets_from_modules, materialize

from orchestration.assets import raw, validated
from orchestration.refresh import prepare_refresh
from orchestration.resources import build_resources
from tests.dbt_project.conftest import RAW_ROWS, write_raw_tables
from vidrec.rawlog import RawManifest, to_arrow
from vidrec.schema import RAW_TABLES
from vidrec.settings import VidrecSettings

CORRUPTED_DAY = "2026-01-02"
# What the corrupted day's watches hold besides the four clean rows the dbt tests wrote:
# `part-1.parquet` (the raw schema's types): a future time, a repeat of a logged watch, two unknown
# ids; `part-2.parquet` (watch_seconds written as text): one castable value, one that is not.
EXPECTED_WATCH_REASONS = {
    ("part-1.parquet", 0): ["outside_day:watch_time", "future:watch_time"],
    ("part-1.parquet", 1): ["duplicate_key"],
    ("part-1.parquet", 2): ["unknown:user_id"],
    ("part-1.parquet", 3): ["unknown:video_id"],
    ("part-2.parquet", 1): ["type:watch_seconds"],
}
CLEAN_PAIR_FROM_THE_TEXT_FILE = (3, 11)  # user 3 watched video 11 for "45" seconds: castable, clean
BAD_PAIRS = {(3, 13), (99, 10), (3, 999), (3, 12)}


def watch(user_id: int, video_id: int, when: datetime, seconds: float = 30.0) -> dict:
    return {"user_id": user_id, "video_id": video_id, "watch_time": when, "watch_seconds": seconds,
            "liked": False, "shared": False, "disliked": False}


def write_tiny_raw_log(home: Path) -> VidrecSettings:
    """The dbt tests' raw rows under `home`/raw, with a manifest (so nothing is simulated)."""
    settings = VidrecSettings(home=home)
    settings.ensure_dirs()
    write_raw_tables(settings.raw_dir, RAW_ROWS)
    RawManifest(source="hand-made", parameters={}, notes=[],
                row_counts={name: len(rows) for name, rows in RAW_ROWS.items()}).write(settings.raw_dir)
    return settings


def corrupt_watches(settings: VidrecSettings) -> None:
    day_dir = settings.raw_dir / "watches" / f"day={CORRUPTED_DAY}"
    typed = [watch(3, 13, datetime(2099, 1, 1, 10)),
             watch(1, 11, datetime(2026, 1, 2, 12), seconds=200.0),  # RAW_ROWS logged it already
             watch(99, 10, datetime(2026, 1, 2, 13)),
             watch(3, 999, datetime(2026, 1, 2, 14))]
    pq.write_table(to_arrow(RAW_TABLES["watches"], pd.DataFrame(typed)), day_dir / "part-1.parquet")
    as_text = pa.table({"user_id": [3, 3], "video_id": [11, 12],
                        "watch_time": [datetime(2026, 1, 2, 15), datetime(2026, 1, 2, 16)],
                        "watch_seconds": ["45", "forty"], "liked": [False, False], "shared": [False, False],
                        "disliked": [False, False]})
    pq.write_table(as_text, day_dir / "part-2.parquet")


def corrupt_users(settings: VidrecSettings) -> None:
    """One user of five from a country the schema does not list (20% of the users quarantined)."""
    user = {"user_id": 5, "signup_time": datetime(2025, 12, 1, 9), "country": "Atlantis", "device": "tv",
            "age_bucket": "18-24", "gender": "female"}
    pq.write_table(to_arrow(RAW_TABLES["users"], pd.DataFrame([user])),
                   settings.raw_dir / "users" / "day=2025-12-01" / "part-1.parquet")


def materialize_layers(settings: VidrecSettings, instance: DagsterInstance | None = None, extra=()):
    """The raw and validated layers (plus `extra` definitions) over every day, one run."""
    instance = instance or DagsterInstance.ephemeral()
    return materialize([*load_assets_from_modules([raw, validated]), *extra], instance=instance,
                       resources=build_resources(settings), tags=prepare_refresh(settings, instance),
                       raise_on_error=False)


def partition_metadata(result, table_name: str, day: str) -> dict:
    """The metadata values of `validated/<table>`'s materialization of `day` in `result`."""
    (event,) = [event for event in result.get_asset_materialization_events()
                if event.asset_key == AssetKey(["validated", table_name]) and event.partition == day]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def snapshot(*directories: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `directories`: its bytes and modification time."""
    return {str(path): (path.read_bytes(), path.stat().st_mtime_ns)
            for directory in directories for path in sorted(directory.rglob("*")) if path.is_file()}
