"""Reading and writing raw event logs in the one layout every layer agrees on.

Writes are atomic per table: partitions go to a staging directory that replaces the table only
once every partition is written, so a failed import never leaves half a table behind and never
destroys the table that was there before.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vidrec.schema import RAW_TABLES, RawTable

logger = logging.getLogger(__name__)

MANIFEST_NAME = "_manifest.json"
EMPTY_PARTITION = "_empty"


class RawLogError(ValueError):
    """Raw data does not match the raw event schema; the message names what is wrong."""


def to_arrow(table: RawTable, frame: pd.DataFrame) -> pa.Table:
    """Validate `frame` against the table's schema and convert it, naming any mismatch.

    Optional columns the frame lacks (what only some writers know, see vidrec.schema) are written
    as nulls, so the file still has every column of the schema.
    """
    missing = [column for column in table.required_columns if column not in frame.columns]
    if missing:
        raise RawLogError(f"{table.name}: missing column(s) {missing}; expected {table.schema.names} "
                          f"(optional: {sorted(table.optional_columns)})")
    for column in table.primary_key:
        if frame[column].isna().any():
            raise RawLogError(f"{table.name}: key column {column!r} has null values")
    absent = [column for column in table.schema.names if column not in frame.columns]
    try:
        supplied = pa.Table.from_pandas(frame[[column for column in table.schema.names if column in frame.columns]],
                                        schema=_schema_without(table.schema, absent), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
        raise RawLogError(f"{table.name}: cannot convert to the raw schema: {error}") from error
    for column in absent:
        schema_field = table.schema.field(column)
        supplied = supplied.add_column(table.schema.get_field_index(column), schema_field,
                                       pa.nulls(len(supplied), schema_field.type))
    return supplied


def _schema_without(schema: pa.Schema, columns: list[str]) -> pa.Schema:
    return pa.schema([schema_field for schema_field in schema if schema_field.name not in columns])


def write_raw_table(table: RawTable, frame: pd.DataFrame, raw_dir: Path) -> int:
    """Write one table as day partitions, replacing the previous version atomically.

    Returns the number of rows written.
    """
    arrow_table = to_arrow(table, frame)
    days = pd.to_datetime(frame[table.partition_column]).dt.strftime("%Y-%m-%d")
    raw_dir.mkdir(parents=True, exist_ok=True)
    staging = raw_dir / f".{table.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        day_values = days.to_numpy()
        if len(frame) == 0:
            # Readers glob `<table>/*/*.parquet`; an empty table still needs one file with the schema.
            (staging / EMPTY_PARTITION).mkdir()
            pq.write_table(arrow_table, staging / EMPTY_PARTITION / "part-0.parquet")
        for day in sorted(set(day_values)):
            mask = pa.array(day_values == day)
            partition_dir = staging / f"day={day}"
            partition_dir.mkdir()
            pq.write_table(arrow_table.filter(mask), partition_dir / "part-0.parquet")
        _swap_into_place(staging, raw_dir / table.name)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    logger.info("wrote %s rows of %s", len(frame), table.name)
    return len(frame)


def _swap_into_place(staging: Path, target: Path) -> None:
    previous = target.with_name(f".{target.name}.previous")
    if previous.exists():
        shutil.rmtree(previous)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    if previous.exists():
        shutil.rmtree(previous)


def read_raw_table(table_name: str, raw_dir: Path) -> pd.DataFrame:
    """Read one raw table back as a DataFrame with exactly the schema's columns."""
    if table_name not in RAW_TABLES:
        raise RawLogError(f"unknown raw table {table_name!r}; expected one of {sorted(RAW_TABLES)}")
    table = RAW_TABLES[table_name]
    files = sorted((raw_dir / table_name).glob("*/*.parquet"))
    if not files:
        raise RawLogError(f"no raw data for table {table_name!r} under {raw_dir}")
    arrow_table = pa.concat_tables(pq.read_table(path, schema=table.schema) for path in files)
    return arrow_table.to_pandas()


@dataclass(frozen=True)
class RawManifest:
    """What produced the raw logs in a directory, so the pipeline knows whether to regenerate."""

    source: str
    parameters: dict
    row_counts: dict[str, int]
    notes: list[str]

    def write(self, raw_dir: Path) -> None:
        path = raw_dir / MANIFEST_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True))
        tmp.replace(path)

    @classmethod
    def read(cls, raw_dir: Path) -> RawManifest | None:
        path = raw_dir / MANIFEST_NAME
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))
