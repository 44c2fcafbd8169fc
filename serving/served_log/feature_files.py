"""The served-feature log on disk: what the service writes and the skew checks read.

Layout: `<served_features_dir>/day=YYYY-MM-DD/part-<uuid>.parquet`, the day of the requests'
time (the request clock's: the data clock on simulated data). Each file is written whole under a
temporary name and renamed, so a reader never sees half a file and a killed writer leaves none.

One row per served item of a sampled request: the keys (`KEY_COLUMNS`) and every ranker input
as it was fed, typed by its kind so values of one feature read alike from every file:

| kind | stored as | how |
|---|---|---|
| numeric, request_numeric | float64 | missing → NaN |
| categorical, request_categorical | string | an integral number as its integer (`12`, not `12.0`); missing → null |
| list (bags: the watch history) | list<string> | each element as a categorical; missing → null |

Strings for ids and categories because serving feeds some ids as floats (the video cache keeps
numbers in one float matrix) and the offline store gives integers: one spelling compares them.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REQUEST_ID = "request_id"
USER_ID = "user_id"
VIDEO_ID = "video_id"
POSITION = "position"
REQUEST_TIME = "request_time"  # naive UTC timestamp of the request
RANKER_VERSION = "ranker_version"
DEGRADED = "degraded"  # the request's fallbacks (its response's `degraded`), comma-separated; "" if none
KEY_COLUMNS = (REQUEST_ID, USER_ID, VIDEO_ID, POSITION, REQUEST_TIME, RANKER_VERSION, DEGRADED)
KEY_TYPES = {REQUEST_ID: pa.string(), USER_ID: pa.int64(), VIDEO_ID: pa.int64(), POSITION: pa.int64(),
             REQUEST_TIME: pa.timestamp("us"), RANKER_VERSION: pa.string(), DEGRADED: pa.string()}
NUMERIC_KINDS = ("numeric", "request_numeric")
CATEGORICAL_KINDS = ("categorical", "request_categorical")
LIST_KIND = "list"
DAY_PREFIX = "day="
KINDS_METADATA = b"vidrec.kinds"  # the schema's metadata key: {column: kind} of the feature columns


def day_dir(directory: Path, day: datetime) -> Path:
    return directory / f"{DAY_PREFIX}{day:%Y-%m-%d}"


def arrow_type(kind: str) -> pa.DataType:
    if kind in NUMERIC_KINDS:
        return pa.float64()
    if kind in CATEGORICAL_KINDS:
        return pa.string()
    if kind == LIST_KIND:
        return pa.list_(pa.string())
    raise ValueError(f"unknown served-feature kind {kind!r}; expected one of "
                     f"{[*NUMERIC_KINDS, *CATEGORICAL_KINDS, LIST_KIND]}")


def stored_value(value: object, kind: str) -> object:
    """`value` as a column of `kind` stores it (see the module's table)."""
    if kind in NUMERIC_KINDS:
        return math.nan if _missing(value) else float(value)
    if kind in CATEGORICAL_KINDS:
        return None if _missing(value) else category_token(value)
    if _missing(value):
        return None
    return [category_token(element) for element in value]


def category_token(value: object) -> str:
    """One spelling of a category or id: integral numbers as integers, anything else as str."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def write_day_file(directory: Path, day: datetime, rows: list[Mapping[str, object]],
                   kinds: Mapping[str, str]) -> Path:
    """Write `rows` (keys and stored values of `kinds`' columns) as one new file of `day`."""
    schema = pa.schema([*(pa.field(name, KEY_TYPES[name]) for name in KEY_COLUMNS),
                        *(pa.field(name, arrow_type(kind)) for name, kind in kinds.items())],
                       metadata={KINDS_METADATA: json.dumps(dict(kinds)).encode()})
    table = pa.Table.from_pylist([dict(row) for row in rows], schema=schema)
    target = day_dir(directory, day)
    target.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    temporary = target / f".{name}.tmp"
    pq.write_table(table, temporary)
    os.replace(temporary, target / name)
    return target / name


def served_feature_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{DAY_PREFIX}*/part-*.parquet"))


def read_recent(directory: Path, window_days: float) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every row of the last `window_days` days, counted back from the newest request in the
    log, and the kinds of its feature columns (a column any file has, by the newest file's kind);
    an empty frame (key columns only) when nothing was logged. Days older than the window's first
    day are not opened."""
    days = logged_days(directory)
    if not days:
        return empty_frame(), {}
    newest_day = days[-1][0]
    first_day = newest_day - timedelta(days=math.ceil(window_days))
    paths = [path for day, folder in days if day >= first_day for path in sorted(folder.glob("part-*.parquet"))]
    if not paths:
        return empty_frame(), {}
    kinds: dict[str, str] = {}
    for path in sorted(paths, key=lambda path: path.stat().st_mtime):
        kinds.update(json.loads(pq.read_schema(path).metadata[KINDS_METADATA]))
    # a row written twice (a rename that landed though its flush reported failure) counts once
    frame = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True).drop_duplicates(
        [REQUEST_ID, POSITION])
    newest = frame[REQUEST_TIME].max()
    recent = frame[frame[REQUEST_TIME] >= newest - pd.Timedelta(days=window_days)]
    return recent.sort_values([REQUEST_TIME, REQUEST_ID, POSITION], kind="stable").reset_index(drop=True), kinds


def logged_days(directory: Path) -> list[tuple[datetime, Path]]:
    """(day, directory) of every `day=YYYY-MM-DD` directory of the log, oldest first; anything
    else there (a note, a stray `day=` name that is no date) is not part of the log."""
    days = [(day, entry) for entry in directory.glob(f"{DAY_PREFIX}*") if (day := day_of(entry)) is not None]
    return sorted(days)


def day_of(entry: Path) -> datetime | None:
    """The day a `day=YYYY-MM-DD` directory holds; None for anything else."""
    if not entry.is_dir() or not entry.name.startswith(DAY_PREFIX):
        return None
    try:
        return datetime.strptime(entry.name.removeprefix(DAY_PREFIX), "%Y-%m-%d")
    except ValueError:
        return None


def empty_frame(columns: Iterable[str] = KEY_COLUMNS) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
