"""The raw source's declared column types (what the distributed profile's Spark tables over the raw
files declare, macros/spark_tables.sql) are the raw schema's, vidrec/schema.py, column for column."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import yaml

from vidrec.schema import RAW_TABLES

SOURCES_YML = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "staging" / "_raw__sources.yml"


def spark_type(arrow_type: pa.DataType) -> str:
    """The Spark SQL type of a raw column's Arrow type (the raw logs' naive timestamps: timestamp_ntz)."""
    if pa.types.is_list(arrow_type):
        return f"array<{spark_type(arrow_type.value_type)}>"
    if pa.types.is_map(arrow_type):
        return f"map<{spark_type(arrow_type.key_type)}, {spark_type(arrow_type.item_type)}>"
    if pa.types.is_timestamp(arrow_type):
        assert arrow_type.tz is None, f"raw timestamps are naive UTC, got {arrow_type}"
        return "timestamp_ntz"
    names = {
        pa.int64(): "bigint", pa.int32(): "int", pa.string(): "string", pa.float64(): "double", pa.bool_(): "boolean",
    }
    return names[arrow_type]


def test_every_raw_column_is_declared_with_its_spark_type() -> None:
    (source,) = [source for source in yaml.safe_load(SOURCES_YML.read_text())["sources"] if source["name"] == "raw"]
    declared = {
        table["name"]: [(column["name"], column["data_type"]) for column in table["columns"]]
        for table in source["tables"]
    }
    expected = {
        name: [(field.name, spark_type(field.type)) for field in table.schema] for name, table in RAW_TABLES.items()
    }
    assert declared == expected
