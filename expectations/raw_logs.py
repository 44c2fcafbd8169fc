"""Suites for the raw log tables, derived from `vidrec.schema` so the two cannot drift apart.

Every table gets: exactly the schema's column set; primary-key columns not null and unique
together; id columns (`*_id`, except the string `request_id`) not null and positive; timestamps
not null and between `earliest` and `now` (a raw event cannot come from the future); booleans not
null (except optional columns, which are null where the writer did not know them). Then the
table's own rules: watch_seconds ≥ 0, position ≥ 0, surface in SURFACES, video durations positive,
demographic and category columns within the schema's vocabularies, and an impression's
source_score (nullable: not every log records it) a rank score in (0, 1].

The value constraints are expectations/row_rules.py's, which quarantines the rows that break them
before they reach the validated layer: the orchestrator runs these suites on the validated tables,
where they must pass (a failure there is a rule the row level missed, or a key repeated across
day partitions, which per-day rules cannot see).
"""

from __future__ import annotations

from datetime import UTC, datetime

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
import pyarrow as pa
from great_expectations.expectations import Expectation

from expectations.row_rules import NON_NEGATIVE, POSITIVE, RANK_SCORES, VOCABULARIES
from expectations.validation import ValidationOutcome, validate_frame
from vidrec.schema import EARLIEST_PLAUSIBLE_TIME, EARLIEST_PUBLICATION_TIME, RAW_TABLES, RawTable


def raw_suite(
    table_name: str,
    now: datetime | None = None,
    earliest: datetime = EARLIEST_PLAUSIBLE_TIME,
    check_uniqueness: bool = True,
) -> gx.ExpectationSuite:
    """The suite for raw table `table_name` (a key of `vidrec.schema.RAW_TABLES`).

    `now` is the latest plausible event time (timezone-naive UTC, like the logs; default: the
    current time). `check_uniqueness=False` skips the primary-key uniqueness check, the one
    expectation whose cost grows faster than a scan.
    """
    table = _raw_table(table_name)
    latest = now if now is not None else datetime.now(UTC).replace(tzinfo=None)
    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(table.schema.names), exact_match=True)
    ]
    expectations += _key_expectations(table, check_uniqueness)
    for schema_field in table.schema:
        expectations += _type_expectations(table, schema_field, earliest, latest)
    for column, vocabulary in VOCABULARIES.get(table.name, {}).items():
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(vocabulary)),
        ]
    for column in NON_NEGATIVE.get(table.name, ()):
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0),
        ]
    for column in POSITIVE.get(table.name, ()):
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True),
        ]
    for column in RANK_SCORES.get(table.name, ()):
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=1, strict_min=True)
        )
    return gx.ExpectationSuite(name=f"raw_{table.name}", expectations=_deduplicated(expectations))


def validate_raw_table(
    table_name: str,
    frame: pd.DataFrame,
    now: datetime | None = None,
    earliest: datetime = EARLIEST_PLAUSIBLE_TIME,
    check_uniqueness: bool = True,
) -> ValidationOutcome:
    """Validate one raw table's frame (all partitions or one day) against its suite."""
    suite = raw_suite(table_name, now=now, earliest=earliest, check_uniqueness=check_uniqueness)
    return validate_frame(frame, suite)


def _raw_table(table_name: str) -> RawTable:
    try:
        return RAW_TABLES[table_name]
    except KeyError:
        raise ValueError(
            f"unknown raw table {table_name!r}; expected one of {sorted(RAW_TABLES)}"
        ) from None


def _key_expectations(table: RawTable, check_uniqueness: bool) -> list[Expectation]:
    expectations: list[Expectation] = [
        gxe.ExpectColumnValuesToNotBeNull(column=column) for column in table.primary_key
    ]
    if check_uniqueness:
        if len(table.primary_key) == 1:
            expectations.append(gxe.ExpectColumnValuesToBeUnique(column=table.primary_key[0]))
        else:
            expectations.append(
                gxe.ExpectCompoundColumnsToBeUnique(column_list=list(table.primary_key))
            )
    return expectations


def _type_expectations(
    table: RawTable, schema_field: pa.Field, earliest: datetime, latest: datetime
) -> list[Expectation]:
    """Rules every column of a given kind follows: ids, timestamps, flags, token lists."""
    column, dtype = schema_field.name, schema_field.type
    if column.endswith("_id") and pa.types.is_integer(dtype):
        return [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True),
        ]
    if column == "request_id":
        return [gxe.ExpectColumnValuesToNotBeNull(column=column)]
    if pa.types.is_timestamp(dtype):
        # A catalogue can hold content published long before any logged event (MovieLens lists
        # films from the 1920s): only events, not publication dates, are bounded by `earliest`.
        lower = EARLIEST_PUBLICATION_TIME if column == "upload_time" else earliest
        return [
            gxe.ExpectColumnValuesToNotBeNull(column=column),
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=lower, max_value=latest),
        ]
    if (pa.types.is_boolean(dtype) or pa.types.is_list(dtype)) and column not in table.optional_columns:
        return [gxe.ExpectColumnValuesToNotBeNull(column=column)]
    return []


def _deduplicated(expectations: list[Expectation]) -> list[Expectation]:
    """Drop repeats (a key column is also an id column), keeping the first occurrence."""
    seen: set[str] = set()
    unique = []
    for expectation in expectations:
        key = f"{expectation.expectation_type}:{sorted(expectation.configuration.kwargs.items())}"
        if key not in seen:
            seen.add(key)
            unique.append(expectation)
    return unique
