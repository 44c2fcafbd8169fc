"""Training frames recomputed only from the first day whose data changed.

A frame row's point-in-time features depend only on events before its timestamp: that is what
`get_historical_features` guarantees and what the leak checks hold the marts to. Raw event days
are partitions, and the validated layer records per day what it judged (`_source.json`: the raw
files, the catalogue, the rules). So after a new day of logs (a retrain of the closed loop, a
daily schedule) the rows of every earlier day would come back from Feast exactly as the last
run computed them. This module keeps the last frame's feature values beside it, with what they
were computed from, and asks Feast only for the rows it cannot reuse:

* nothing is reused when the code that computes features (the feature repository, the dbt
  models and macros, the dbt vars) differs from the last run's;
* otherwise rows stamped before the earliest day whose validated records differ (a new day, a
  re-judged day, a day gone) are reused; a change to the catalogue or the rules re-judges every
  day, so it recomputes everything, as it should.

The example's own columns (labels, split, weights) always come from the current mart; only the
columns Feast adds are reused. `tests/orchestration/test_incremental_frames.py` holds the
incremental frame equal to a whole recomputation after a new day and after a changed old day.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from feature_repo.training_frames import TIMESTAMP, entity_timestamps
from orchestration.assets.validated_files import RECORD_FILE
from orchestration.dbt_manifest import DBT_PROJECT_DIR
from orchestration.partitions import PARTITIONED_TABLES, day_directories
from vidrec.settings import VidrecSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"
ROWS_FILE = "rows.parquet"
MANIFEST_FILE = "manifest.json"
NO_DAY_CHANGED = pd.Timestamp.max.tz_localize("UTC")  # every row may be reused


@dataclass(frozen=True)
class FrameInputs:
    """What a frame's feature values were computed from."""

    code: str  # digest of the feature repository, the dbt models and macros, and the dbt vars
    days: dict[str, str]  # day → digest of its validated records, over every event table


@dataclass(frozen=True)
class Reuse:
    """How a frame was assembled: rows reused from the last run, rows asked of Feast, and the
    time from which rows were recomputed (None: all rows or none were reused; why says which)."""

    reused_rows: int
    computed_rows: int
    recomputed_from: pd.Timestamp | None
    why: str


def frame_inputs(settings: VidrecSettings, dbt_vars: dict) -> FrameInputs:
    return FrameInputs(code=_code_digest(dbt_vars), days=_day_digests(settings))


def _code_digest(dbt_vars: dict) -> str:
    digest = hashlib.sha256(json.dumps(dbt_vars, sort_keys=True, default=str).encode())
    sources = [*sorted(FEATURE_REPO_DIR.rglob("*.py")), *sorted((DBT_PROJECT_DIR / "models").rglob("*")),
               *sorted((DBT_PROJECT_DIR / "macros").rglob("*")), DBT_PROJECT_DIR / "dbt_project.yml"]
    for path in sources:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _day_digests(settings: VidrecSettings) -> dict[str, str]:
    records: dict[str, list[str]] = {}
    for table in PARTITIONED_TABLES:
        for day, directory in day_directories(settings.validated_dir / table).items():
            record = directory / RECORD_FILE
            text = record.read_text() if record.is_file() else "unjudged"
            records.setdefault(day, []).append(f"{table}\0{text}")
    return {day: hashlib.sha256("\0".join(sorted(parts)).encode()).hexdigest() for day, parts in records.items()}


def reusable_before(previous: FrameInputs | None, current: FrameInputs) -> tuple[pd.Timestamp | None, str]:
    """Rows stamped before the returned time (UTC) may be reused (NO_DAY_CHANGED: every row);
    None: none may. The reason comes with it."""
    if previous is None:
        return None, "no earlier frame"
    if previous.code != current.code:
        return None, "the feature definitions, dbt models or dbt vars changed"
    changed = sorted(day for day in previous.days.keys() | current.days.keys()
                     if previous.days.get(day) != current.days.get(day))
    if not changed:
        return NO_DAY_CHANGED, "no day changed"
    return pd.Timestamp(changed[0], tz="UTC"), f"days changed from {changed[0]} ({len(changed)} in all)"


def incremental_features(
    cache_dir: Path,
    inputs: FrameInputs,
    examples: pd.DataFrame,
    keys: list[str],
    compute: Callable[[pd.DataFrame], pd.DataFrame],
) -> tuple[pd.DataFrame, Reuse]:
    """What `compute(examples)` returns (every example row in order, its columns, then the
    feature columns `compute` adds), asking `compute` only for rows the last run's values do not
    cover; then records this frame's values for the next run. `keys` identify an example."""
    frame = examples.reset_index(drop=True)
    frame[TIMESTAMP] = entity_timestamps(frame[TIMESTAMP])
    previous, cached = _read_cache(cache_dir)
    cutoff, why = reusable_before(previous, inputs)
    reused = pd.Series(False, index=frame.index)
    if cutoff is not None and cached is not None:
        cached = cached[cached[TIMESTAMP] < cutoff]
        reused = pd.Series(pd.MultiIndex.from_frame(frame[keys]).isin(pd.MultiIndex.from_frame(cached[keys])),
                           index=frame.index)
        reused &= frame[TIMESTAMP] < cutoff
    if not reused.any():
        result = compute(frame)
        feature_columns = [column for column in result.columns if column not in frame.columns]
    else:
        computed = compute(frame[~reused]) if (~reused).any() else None
        feature_columns = [column for column in cached.columns if column not in (*keys, TIMESTAMP)]
        if computed is not None and [c for c in computed.columns if c not in frame.columns] != feature_columns:
            raise RuntimeError(f"the frame cache in {cache_dir} holds other feature columns than Feast returns; "
                               f"delete the directory to recompute the frame whole")
        from_cache = frame[reused].merge(cached[[*keys, *feature_columns]], on=keys, how="left",
                                         validate="one_to_one")
        from_cache.index = frame.index[reused]
        parts = [from_cache] if computed is None else [from_cache, computed.set_index(frame.index[~reused])]
        result = pd.concat(parts).sort_index()[[*frame.columns, *feature_columns]].reset_index(drop=True)
    _write_cache(cache_dir, inputs, result[[*keys, TIMESTAMP, *feature_columns]], feature_columns)
    recomputed_from = cutoff if reused.any() and cutoff != NO_DAY_CHANGED else None
    return result, Reuse(int(reused.sum()), int((~reused).sum()), recomputed_from, why)


def _read_cache(cache_dir: Path) -> tuple[FrameInputs | None, pd.DataFrame | None]:
    manifest, rows = cache_dir / MANIFEST_FILE, cache_dir / ROWS_FILE
    if not (manifest.is_file() and rows.is_file()):
        return None, None
    try:
        recorded = json.loads(manifest.read_text())
        inputs = FrameInputs(code=recorded["inputs"]["code"], days=dict(recorded["inputs"]["days"]))
        cached = pd.read_parquet(rows)
    except (OSError, ValueError, KeyError, TypeError):
        return None, None  # unreadable: recompute whole, and overwrite it
    if recorded.get("rows_digest") != _file_digest(rows):
        return None, None  # rows and manifest from different runs (a crash between the writes)
    cached[TIMESTAMP] = entity_timestamps(cached[TIMESTAMP])
    return inputs, cached


def _write_cache(cache_dir: Path, inputs: FrameInputs, rows: pd.DataFrame, feature_columns: list[str]) -> None:
    """Rows first, then the manifest naming their digest, each renamed over its target: a crash
    in between leaves a manifest that does not match the rows, which reads as no cache."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial_rows = cache_dir / f"{ROWS_FILE}.partial"
    rows.to_parquet(partial_rows, index=False)
    partial_rows.replace(cache_dir / ROWS_FILE)
    manifest = {"inputs": asdict(inputs), "feature_columns": feature_columns,
                "rows_digest": _file_digest(cache_dir / ROWS_FILE)}
    partial_manifest = cache_dir / f"{MANIFEST_FILE}.partial"
    partial_manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    partial_manifest.replace(cache_dir / MANIFEST_FILE)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
