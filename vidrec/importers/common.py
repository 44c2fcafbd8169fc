"""What every importer shares: the error type, checked file reading, tokenising, and the write.

An importer is two steps. `load_*` reads a dataset directory and builds every raw table in memory
(an `ImportedLogs`), failing with a `DatasetImportError` that names the file and what is wrong
before anything is written. `write_imported` then checks every frame against the raw schema and
only then replaces the raw tables, one atomic write per table, and writes the manifest last.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.rawlog import MANIFEST_NAME, RawLogError, RawManifest, to_arrow, write_raw_table
from vidrec.schema import RAW_TABLES

logger = logging.getLogger(__name__)

_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


class DatasetImportError(ValueError):
    """A dataset cannot be imported; the message names the file and what is missing or wrong."""


@dataclass(frozen=True)
class ImportedLogs:
    """Every raw table of one imported dataset, built in memory and not yet written."""

    source: str
    frames: dict[str, pd.DataFrame]
    parameters: dict
    notes: list[str]

    @property
    def row_counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.frames.items()}


def write_imported(logs: ImportedLogs, raw_dir: Path) -> RawManifest:
    """Replace every raw table under `raw_dir` with `logs`, then write the manifest.

    Every frame is converted to its schema before the first write, so a frame that does not fit
    leaves the previous raw data untouched. The previous manifest is removed just before the first
    write: should a write still fail midway (a full disk), the directory is no longer labelled as
    the previous source, and the pipeline regenerates it instead of trusting a mix.
    """
    missing_tables = sorted(set(RAW_TABLES) - set(logs.frames))
    if missing_tables:
        raise DatasetImportError(f"{logs.source}: importer built no frame for table(s) {missing_tables}")
    for name, table in RAW_TABLES.items():
        try:
            to_arrow(table, logs.frames[name])
        except RawLogError as error:
            raise DatasetImportError(f"{logs.source}: imported data does not fit the raw schema: {error}") from error
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / MANIFEST_NAME).unlink(missing_ok=True)
    row_counts = {name: write_raw_table(table, logs.frames[name], raw_dir) for name, table in RAW_TABLES.items()}
    manifest = RawManifest(source=logs.source, parameters=logs.parameters, row_counts=row_counts, notes=logs.notes)
    manifest.write(raw_dir)
    logger.info("imported %s into %s: %s", logs.source, raw_dir, row_counts)
    return manifest


def empty_frame(table_name: str) -> pd.DataFrame:
    """A table with the schema's columns and zero rows (a layer the dataset does not have)."""
    return RAW_TABLES[table_name].schema.empty_table().to_pandas()


def read_csv_checked(path: Path, required: Sequence[str], **read_options) -> pd.DataFrame:
    """Read a delimited file, naming the file and every missing column when it does not fit."""
    if not path.is_file():
        raise DatasetImportError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, **read_options)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetImportError(f"{path}: cannot read: {error}") from error
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DatasetImportError(
            f"{path.name}: missing column(s) {missing}; expected {list(required)} (file {path})"
        )
    return frame


def numeric_column(frame: pd.DataFrame, column: str, path: Path, allow_missing: bool = False) -> pd.Series:
    """`frame[column]` as numbers; a non-numeric (or, unless allowed, empty) value is an error."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & (frame[column].notna() | (not allow_missing))
    if bad.any():
        example = frame.loc[bad, column].iloc[0]
        raise DatasetImportError(
            f"{path.name}: column {column!r} has {int(bad.sum())} missing or non-numeric value(s), "
            f"e.g. {example!r} (file {path})"
        )
    return values


def require_file(directory: Path, name: str, layout: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise DatasetImportError(f"{path}: file not found ({layout} layout expects {name} in {directory})")
    return path


def title_tokens(title: str) -> list[str]:
    """Lower-cased words of a title, without a trailing release year like "(1995)"."""
    return words(_YEAR_SUFFIX.sub("", title))


def title_year(title: str) -> int | None:
    match = _YEAR_SUFFIX.search(title)
    return int(match.group(1)) if match else None


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def unix_seconds_to_time(seconds: pd.Series) -> pd.Series:
    return pd.to_datetime(seconds.astype("int64"), unit="s").astype("datetime64[us]")


def unix_millis_to_time(millis: pd.Series) -> pd.Series:
    return pd.to_datetime(millis.astype("int64"), unit="ms").astype("datetime64[us]")


def sample_user_ids(user_ids: Sequence[int] | np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """A seeded sample of `limit` distinct user ids (all of them, sorted, when `limit` is None)."""
    unique_ids = np.unique(np.asarray(user_ids, dtype=np.int64))
    if limit is None or limit >= len(unique_ids):
        return unique_ids
    return np.sort(np.random.default_rng(seed).choice(unique_ids, size=limit, replace=False))
