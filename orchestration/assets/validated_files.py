"""The validated and quarantine layers on disk: which raw files a partition is judged from, and
writing a judged partition so a re-run on unchanged data changes nothing and a crash never leaves
half a partition.

Layout, beside the raw logs (`vidrec.settings`): `validated/<table>/day=YYYY-MM-DD/part-0.parquet`
holds the partition's clean rows with exactly the raw schema's columns and types (what dbt's
sources read), `quarantine/<table>/day=YYYY-MM-DD/part-0.parquet` its failing rows (every raw
value as text, the reasons, the source file and row, when the row was first quarantined), and
`validated/<table>/day=.../_source.json` the raw files (name, size, mtime) and catalogue it was
judged from, so a sensor tells which days changed without reading a row. Every validated table
also has `_empty/part-0.parquet`, no rows and the whole schema, so a glob over the table always
matches and always has every column.

Each file is written beside its target and renamed over it (atomic on one filesystem), and only
when its content differs from what is there; quarantine first, validated rows next, the record
last, so a crash in between leaves each file whole and the day still marked changed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expectations.row_rules import SOURCE_FILE, SOURCE_ROW, RawFile, References, RowVerdicts, quarantine_schema
from orchestration.partitions import CATALOG_TABLES, PARTITIONED_TABLES, day_directories
from vidrec.rawlog import EMPTY_PARTITION
from vidrec.schema import RAW_TABLES
from vidrec.settings import VidrecSettings

PART_FILE = "part-0.parquet"
RECORD_FILE = "_source.json"
QUARANTINED_AT = "quarantined_at"


def quarantine_file_schema(table_name: str) -> pa.Schema:
    return quarantine_schema(RAW_TABLES[table_name]).append(pa.field(QUARANTINED_AT, pa.timestamp("us")))


def raw_files_of_day(settings: VidrecSettings, table_name: str, day: str) -> list[RawFile]:
    """The raw files of one day partition (none when the day is gone from the raw log)."""
    directory = settings.raw_dir / table_name / f"day={day}"
    return [_raw_file(settings, path, day) for path in sorted(directory.glob("*.parquet"))]


def raw_files_of_table(settings: VidrecSettings, table_name: str) -> list[RawFile]:
    """Every raw file of a table, each with the day of its directory (None outside a day directory)."""
    table_dir = settings.raw_dir / table_name
    by_directory = {path: day for day, path in day_directories(table_dir).items()}
    return [_raw_file(settings, path, by_directory.get(path.parent))
            for path in sorted(table_dir.glob("*/*.parquet"))]


def _raw_file(settings: VidrecSettings, path: Path, day: str | None) -> RawFile:
    try:
        parsed = date.fromisoformat(day) if day else None
    except ValueError:
        parsed = None  # `day=2026-13-40`: no row is inside it
    return RawFile(path=path, name=path.relative_to(settings.raw_dir).as_posix(), day=parsed)


def _fingerprint(files: list[RawFile]) -> list[list]:
    fingerprint = []
    for raw_file in files:
        stat = raw_file.path.stat()
        fingerprint.append([raw_file.name, stat.st_size, stat.st_mtime_ns])
    return fingerprint


def catalog_fingerprint(settings: VidrecSettings) -> list[list]:
    """The raw users and videos files: an event's `unknown:` and watch-length verdicts depend on them."""
    return [entry for table in CATALOG_TABLES for entry in _fingerprint(raw_files_of_table(settings, table))]


def partition_record(settings: VidrecSettings, table_name: str, files: list[RawFile], rules: dict) -> dict:
    """What a partition was judged from: its raw files, the catalogue (for event tables), the rules' settings."""
    record = {"raw_files": _fingerprint(files), "rules": rules}
    if table_name in PARTITIONED_TABLES:
        record["catalog"] = catalog_fingerprint(settings)
    return record


def changed_days(settings: VidrecSettings, rules: dict) -> list[str]:
    """Days of an event table whose raw files (or the catalogue, or the rules) differ from what
    the validated layer was judged from, including days only one of the two layers has."""
    catalog = catalog_fingerprint(settings)
    changed = set()
    for table in PARTITIONED_TABLES:
        raw_days = day_directories(settings.raw_dir / table)
        validated_days = day_directories(settings.validated_dir / table)
        for day in raw_days.keys() | validated_days.keys():
            files = raw_files_of_day(settings, table, day)
            if not files and day not in validated_days:
                continue  # an empty raw directory: nothing to judge, nothing judged
            record = _read_record(settings.validated_dir / table / f"day={day}")
            if record != {"raw_files": _fingerprint(files), "rules": rules, "catalog": catalog}:
                changed.add(day)
    return sorted(changed)


def _read_record(directory: Path) -> dict | None:
    try:
        return json.loads((directory / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None


def load_references(settings: VidrecSettings) -> References:
    """The validated users' ids and videos' durations: ids of quarantined rows are unknown too,
    so no event in the marts points at a user or video that is not there."""
    for table in CATALOG_TABLES:
        if not (settings.validated_dir / table / EMPTY_PARTITION / PART_FILE).exists():
            raise FileNotFoundError(
                f"the validated {table} table has never been built under {settings.validated_dir}: every event "
                f"would read as of an unknown id; materialize validated/users and validated/videos first "
                f"(`vidrec pipeline` does)")
    users = read_validated_table(settings, "users", columns=["user_id"])
    videos = read_validated_table(settings, "videos", columns=["video_id", "duration_seconds"])
    return References(user_ids=users.column("user_id").combine_chunks(), videos=videos)


def read_validated_table(settings: VidrecSettings, table_name: str, columns: list[str] | None = None) -> pa.Table:
    """Every validated partition of a table (an empty table of its schema when there are none)."""
    schema = RAW_TABLES[table_name].schema
    files = sorted((settings.validated_dir / table_name).glob("*/*.parquet"))
    tables = [pq.read_table(path, columns=columns, schema=schema) for path in files]
    if not tables:
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    return pa.concat_tables(tables)


def write_judged_day(settings: VidrecSettings, table_name: str, day: str, verdicts: RowVerdicts,
                     record: dict, now: datetime) -> bool:
    """Write one day partition of both layers from its verdicts; returns whether anything changed.

    A day with no rows at all (its raw files are gone) is removed from both layers.
    """
    validated = settings.validated_dir / table_name / f"day={day}"
    quarantined = settings.quarantine_dir / table_name / f"day={day}"
    ensure_empty_file(settings, table_name)
    if verdicts.rows_in == 0:
        removed = [directory for directory in (quarantined, validated) if directory.exists()]
        for directory in removed:
            shutil.rmtree(directory)
        return bool(removed)
    quarantine_rows = _with_quarantine_times(table_name, verdicts.quarantined, quarantined / PART_FILE, now)
    changed = False
    if quarantine_rows.num_rows:
        changed |= _replace_if_different(quarantined / PART_FILE, quarantine_rows)
    elif (quarantined / PART_FILE).exists():
        shutil.rmtree(quarantined)
        changed = True
    clean = verdicts.clean.drop_columns([SOURCE_FILE, SOURCE_ROW])
    changed |= _replace_if_different(validated / PART_FILE, clean)
    changed |= _replace_text_if_different(validated / RECORD_FILE, json.dumps(record, indent=1, sort_keys=True))
    return changed


def split_by_day(verdicts: RowVerdicts, files: list[RawFile]) -> dict[str, RowVerdicts]:
    """A whole table's verdicts, per day directory of their source files (for the catalogue tables)."""
    names_by_day: dict[str, list[str]] = {}
    for raw_file in files:
        if raw_file.day is not None:
            names_by_day.setdefault(raw_file.day.isoformat(), []).append(raw_file.name)
    by_day = {}
    for day, names in names_by_day.items():
        in_day = pa.array(names, pa.string())
        by_day[day] = RowVerdicts(
            verdicts.table,
            verdicts.clean.filter(pc.is_in(verdicts.clean.column(SOURCE_FILE), in_day)),
            verdicts.quarantined.filter(pc.is_in(verdicts.quarantined.column(SOURCE_FILE), in_day)),
        )
    return by_day


def remove_days_except(settings: VidrecSettings, table_name: str, days: set[str]) -> list[str]:
    """Remove a table's partitions of both layers outside `days` (a catalogue day gone from raw)."""
    removed = []
    for layer in (settings.quarantine_dir, settings.validated_dir):
        for day, directory in day_directories(layer / table_name).items():
            if day not in days:
                shutil.rmtree(directory)
                removed.append(day)
    return sorted(set(removed))


def ensure_empty_file(settings: VidrecSettings, table_name: str) -> None:
    _replace_if_different(settings.validated_dir / table_name / EMPTY_PARTITION / PART_FILE,
                          RAW_TABLES[table_name].schema.empty_table())


def _with_quarantine_times(table_name: str, rows: pa.Table, existing_path: Path, now: datetime) -> pa.Table:
    """`rows` with when each was first quarantined: a row already in the partition (same source
    file and row) keeps its time, so re-judging unchanged data rewrites nothing."""
    first_seen = {}
    if existing_path.exists():
        existing = pq.read_table(existing_path, columns=[SOURCE_FILE, SOURCE_ROW, QUARANTINED_AT]).to_pylist()
        first_seen = {(row[SOURCE_FILE], row[SOURCE_ROW]): row[QUARANTINED_AT] for row in existing}
    times = [first_seen.get(key, now) for key in zip(rows.column(SOURCE_FILE).to_pylist(),
                                                      rows.column(SOURCE_ROW).to_pylist(), strict=True)]
    return rows.append_column(pa.field(QUARANTINED_AT, pa.timestamp("us")), pa.array(times, pa.timestamp("us"))) \
        .cast(quarantine_file_schema(table_name))


def _replace_if_different(path: Path, table: pa.Table) -> bool:
    if path.exists():
        try:
            if pq.read_table(path).equals(table):
                return False
        except (OSError, pa.ArrowException):
            pass  # unreadable: replace it
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return True


def _replace_text_if_different(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    _atomic_write(path, lambda tmp: tmp.write_text(text))
    return True


def _atomic_write(path: Path, write) -> None:
    """Write through a hidden temporary file beside `path` (no reader's glob matches it), then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
