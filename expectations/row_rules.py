"""Row-level rules on raw event logs: which rows may reach the warehouse, and why the others may not.

The table-wide suites (expectations/raw_logs.py) say whether a table is good; these rules say which
of its rows are, so clean rows flow on and failing rows go to quarantine with every reason they
fail. Every rule is derived from `vidrec.schema` and the value constraints below (which the suites
import too), so the rules, the suites and the schema cannot drift apart.

A row's reasons are codes `<rule>:<column>` (or a bare rule), counted per code as asset metadata:

- `unreadable_file`: the Parquet file cannot be read at all (one row stands for the whole file);
- `missing_column:c`: the file lacks required column `c`;
- `type:c`: a value that does not cast to the schema's type (DuckDB TRY_CAST; for integer
  columns also a fractional number, which TRY_CAST would round);
- `null:c`: a null where the schema needs a value (keys, ids, times, flags, vocabularies);
- `not_positive:c`: an id or a video duration ≤ 0 (or not finite);
- `outside_day:c`: the event time is not inside the day partition its file sits in;
- `future:c` / `too_early:c`: the event time is after `now` / before the earliest plausible time;
- `negative:c`: a position below 0;
- `out_of_range:c`: watch seconds outside [0, k × the video's duration], a rank score outside (0, 1];
- `not_in_vocabulary:c`: a category, surface or demographic the schema does not list;
- `unknown:user_id` / `unknown:video_id`: an id the (validated) users / videos tables lack;
- `duplicate_key`: a repeated primary key; the first clean copy (else the first copy, in file and
  row order) is kept and every later copy quarantined.

Each raw file is read on its own and cast column by column, so one file with a wrong column type
cannot break the read of the others. The module only reads: what to do with the verdicts (write
the validated and quarantine layers) is the orchestrator's.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from vidrec.schema import (
    AGE_BUCKETS,
    CATEGORIES,
    COUNTRIES,
    DEVICES,
    EARLIEST_PLAUSIBLE_TIME,
    EARLIEST_PUBLICATION_TIME,
    GENDERS,
    RAW_TABLES,
    SURFACES,
    UNKNOWN,
    RawTable,
)

# Columns whose values must come from the schema's vocabularies, per table.
VOCABULARIES: dict[str, dict[str, tuple[str, ...]]] = {
    "users": {
        "country": (*COUNTRIES, UNKNOWN),
        "device": (*DEVICES, UNKNOWN),
        "age_bucket": (*AGE_BUCKETS, UNKNOWN),
        "gender": GENDERS,
    },
    "videos": {"category": (*CATEGORIES, UNKNOWN)},
    "impressions": {"surface": SURFACES},
}
# Numeric columns that must not be negative (min 0) or must be positive, per table.
NON_NEGATIVE: dict[str, tuple[str, ...]] = {
    "impressions": ("position",),
    "watches": ("watch_seconds",),
}
POSITIVE: dict[str, tuple[str, ...]] = {"videos": ("duration_seconds",)}
# Optional scores (null = not logged) that are rank scores 1 / (1 + rank): within (0, 1].
RANK_SCORES: dict[str, tuple[str, ...]] = {"impressions": ("source_score",)}
# Columns every writer supplies but may leave null: the retrieval source and its score, where the
# log does not say (MovieLens, KuaiRand's standard logs). Optional columns are nullable too.
NULLABLE: dict[str, tuple[str, ...]] = {"impressions": ("source", "source_score")}
# Which id columns must name a row of which reference table.
REFERENCES: dict[str, str] = {"user_id": "users", "video_id": "videos"}

DUPLICATE_KEY = "duplicate_key"
UNREADABLE_FILE = "unreadable_file"
# Columns the quarantine adds to the raw values (which it keeps as text: they may not cast).
REASONS, SOURCE_FILE, SOURCE_ROW = "reasons", "source_file", "source_row"


@dataclass(frozen=True)
class RawFile:
    """One raw Parquet file: where it is, the name recorded as its source, its day partition."""

    path: Path
    name: str
    day: date | None  # None: not in a `day=` directory, so no row of it is inside a day


@dataclass(frozen=True)
class References:
    """The rows ids must exist in: known user ids, known videos with their durations."""

    user_ids: pa.Array | None = None
    videos: pa.Table | None = None  # video_id, duration_seconds


@dataclass(frozen=True)
class RuleSettings:
    now: datetime  # timezone-naive UTC, like the logs: the latest plausible event time
    max_watch_ratio: float  # k: watch seconds may reach k × the video's duration


@dataclass
class RowVerdicts:
    """The rows of some raw files, split. `clean` has exactly the table's schema plus
    `source_file` and `source_row`; `quarantined` has every schema column as text (the raw value,
    whatever its type), `reasons`, `source_file` and `source_row` (null for an unreadable file)."""

    table: str
    clean: pa.Table
    quarantined: pa.Table
    reason_counts: Counter = field(default_factory=Counter)

    @property
    def rows_in(self) -> int:
        return self.clean.num_rows + self.quarantined.num_rows

    @property
    def quarantined_share(self) -> float:
        return self.quarantined.num_rows / self.rows_in if self.rows_in else 0.0


def quarantine_schema(table: RawTable) -> pa.Schema:
    """What the quarantine keeps of a failing row."""
    return pa.schema(
        [pa.field(name, pa.string()) for name in table.schema.names]
        + [pa.field(REASONS, pa.list_(pa.string())), pa.field(SOURCE_FILE, pa.string()),
           pa.field(SOURCE_ROW, pa.int64())]
    )


def clean_schema(table: RawTable) -> pa.Schema:
    return pa.schema([*table.schema, pa.field(SOURCE_FILE, pa.string()), pa.field(SOURCE_ROW, pa.int64())])


def judge_rows(table_name: str, files: list[RawFile], references: References, rules: RuleSettings) -> RowVerdicts:
    """Apply every row rule of raw table `table_name` to the rows of `files`.

    Duplicate keys are found among these files only: pass every file of a day for a day
    partition, every file of the table for a whole table.
    """
    table = RAW_TABLES[table_name]
    readable, unreadable = [], []
    for raw_file in sorted(files, key=_file_order):
        try:
            readable.append((raw_file, pq.read_schema(raw_file.path)))
        except (OSError, pa.ArrowException) as error:
            unreadable.append((raw_file, f"{UNREADABLE_FILE}: {error}".replace("\n", " ")))
    with duckdb.connect() as connection:
        connection.execute("set TimeZone = 'UTC'")
        if readable:
            _register_references(connection, table, references)
            connection.execute(_judging_view(table, readable, rules))
            clean = connection.sql(
                f"select {', '.join(_quoted(table.schema.names))}, {SOURCE_FILE}, {SOURCE_ROW} from judged "
                f"where len({REASONS}) = 0 order by file_position, {SOURCE_ROW}"
            ).to_arrow_table()
            quarantined = connection.sql(
                f"select {', '.join(f'{_text(name)} as {_quote(name)}' for name in table.schema.names)}, "
                f"{REASONS}, {SOURCE_FILE}, {SOURCE_ROW} from judged "
                f"where len({REASONS}) > 0 order by file_position, {SOURCE_ROW}"
            ).to_arrow_table()
        else:
            clean = clean_schema(table).empty_table()
            quarantined = quarantine_schema(table).empty_table()
    clean = clean.cast(clean_schema(table))
    quarantined = pa.concat_tables([quarantined.cast(quarantine_schema(table)), _unreadable_rows(table, unreadable)])
    counts = Counter(reason.split(": ")[0] for reasons in quarantined.column(REASONS).to_pylist() for reason in reasons)
    return RowVerdicts(table.name, clean, quarantined, counts)


def _file_order(raw_file: RawFile) -> list:
    """Files in the order their rows count as first: by name, numbers by value (the event
    intake's `events-9.parquet` before `events-10.parquet`)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", raw_file.name)]


def _unreadable_rows(table: RawTable, unreadable: list[tuple[RawFile, str]]) -> pa.Table:
    schema = quarantine_schema(table)
    rows = [{**dict.fromkeys(table.schema.names), REASONS: [reason], SOURCE_FILE: raw_file.name, SOURCE_ROW: None}
            for raw_file, reason in unreadable]
    return pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()


def _register_references(connection: duckdb.DuckDBPyConnection, table: RawTable, references: References) -> None:
    if "user_id" in table.schema.names and table.name != "users":
        if references.user_ids is None:
            raise ValueError(f"{table.name}: judging its user ids needs the known users")
        connection.register("known_users", pa.table({"known_user_id": pa.array(references.user_ids, pa.int64())}))
    if "video_id" in table.schema.names and table.name != "videos":
        if references.videos is None:
            raise ValueError(f"{table.name}: judging its video ids needs the known videos")
        connection.register("known_videos", references.videos.select(["video_id", "duration_seconds"])
                            .rename_columns(["known_video_id", "known_duration_seconds"]))


def _judging_view(table: RawTable, files: list[tuple[RawFile, pa.Schema]], rules: RuleSettings) -> str:
    """rows (every file, typed and as text) → local reasons and references → duplicates → judged."""
    rows = "\nunion all by name\n".join(_file_rows(table, raw_file, schema, position)
                                       for position, (raw_file, schema) in enumerate(files))
    joins, reference_reasons = _reference_rules(table, rules)
    reasons = [*_local_rules(table, rules), *reference_reasons]
    key = _quoted(table.primary_key)
    keyed = " and ".join(f"{column} is not null" for column in key)
    return f"""
        create or replace temp view judged as
        with file_rows as ({rows}),
        reasoned as (
            select file_rows.*,
                list_concat(missing, list_filter([{', '.join(reasons)}]::varchar[], lambda reason: reason is not null))
                    as first_reasons
            from file_rows {joins}
        ),
        ranked as (
            select *, case when {keyed} then row_number() over (
                partition by {', '.join(key)} order by len(first_reasons) > 0, file_position, {SOURCE_ROW}
            ) end as copy_number
            from reasoned
        )
        select * exclude (first_reasons, copy_number),
            case when copy_number > 1 then list_append(first_reasons, '{DUPLICATE_KEY}') else first_reasons end
                as {REASONS}
        from ranked
    """


def _file_rows(table: RawTable, raw_file: RawFile, file_schema: pa.Schema, position: int) -> str:
    """One file's rows: each schema column typed (`c`) and as text (`text c`), the file's missing
    required columns, the source file, row and day."""
    columns, missing = [], []
    for schema_field in table.schema:
        name = schema_field.name
        target = duckdb_type(schema_field.type)
        if name in file_schema.names:
            columns.append(f"{_typed(name, file_schema.field(name).type, schema_field.type)} as {_quote(name)}")
            columns.append(f"cast({_quote(name)} as varchar) as {_text(name)}")
        else:
            columns.append(f"cast(null as {target}) as {_quote(name)}")
            columns.append(f"cast(null as varchar) as {_text(name)}")
            if name not in table.optional_columns:
                missing.append(f"missing_column:{name}")
    day = f"date '{raw_file.day.isoformat()}'" if raw_file.day else "cast(null as date)"
    return (
        f"select {', '.join(columns)}, {_string_list(missing)} as missing, {_literal(raw_file.name)} as {SOURCE_FILE}, "
        f"file_row_number as {SOURCE_ROW}, {day} as source_day, {position} as file_position "
        f"from read_parquet({_literal(str(raw_file.path))}, file_row_number = true)"
    )


def _typed(name: str, source: pa.DataType, target: pa.DataType) -> str:
    column, sql_type = _quote(name), duckdb_type(target)
    if source.equals(target):
        return column
    if pa.types.is_integer(target) and not pa.types.is_integer(source):
        # TRY_CAST rounds 3.7 (or '3.7') to 4: a fractional value is not an id or a position.
        return (f"case when try_cast({column} as double) = try_cast({column} as {sql_type}) "
                f"then try_cast({column} as {sql_type}) end")
    return f"try_cast({column} as {sql_type})"


def _local_rules(table: RawTable, rules: RuleSettings) -> list[str]:
    """Reasons a row fails on its own values (a SQL expression each: the code, or null)."""
    reasons = []
    nullable = set(table.optional_columns) | set(NULLABLE.get(table.name, ()))
    for schema_field in table.schema:
        name, column = schema_field.name, _quote(schema_field.name)
        reasons.append(f"case when {_text(name)} is not null and {column} is null then 'type:{name}' end")
        if name not in nullable:
            reasons.append(f"case when {_text(name)} is null and not list_contains(missing, 'missing_column:{name}') "
                           f"then 'null:{name}' end")
        if name.endswith("_id") and pa.types.is_integer(schema_field.type):
            reasons.append(f"case when {column} <= 0 then 'not_positive:{name}' end")
    reasons += _time_rules(table, rules)
    for name, vocabulary in VOCABULARIES.get(table.name, {}).items():
        reasons.append(f"case when {_quote(name)} not in ({', '.join(map(_literal, vocabulary))}) "
                       f"then 'not_in_vocabulary:{name}' end")
    for name in NON_NEGATIVE.get(table.name, ()):
        if name != "watch_seconds":  # judged against the video's duration (_reference_rules)
            reasons.append(f"case when {_quote(name)} < 0 then 'negative:{name}' end")
    for name in POSITIVE.get(table.name, ()):
        column = _quote(name)
        reasons.append(f"case when not ({column} > 0 and isfinite({column})) then 'not_positive:{name}' end")
    for name in RANK_SCORES.get(table.name, ()):
        reasons.append(f"case when not ({_quote(name)} > 0 and {_quote(name)} <= 1) then 'out_of_range:{name}' end")
    return reasons


def _time_rules(table: RawTable, rules: RuleSettings) -> list[str]:
    name, column = table.partition_column, _quote(table.partition_column)
    earliest = EARLIEST_PUBLICATION_TIME if name == "upload_time" else EARLIEST_PLAUSIBLE_TIME
    return [
        f"case when {column} is not null and (source_day is null or {column} < source_day "
        f"or {column} >= source_day + interval 1 day) then 'outside_day:{name}' end",
        f"case when {column} > {_timestamp(rules.now)} then 'future:{name}' end",
        f"case when {column} < {_timestamp(earliest)} then 'too_early:{name}' end",
    ]


def _reference_rules(table: RawTable, rules: RuleSettings) -> tuple[str, list[str]]:
    """Joins to the reference tables, and the reasons they give."""
    joins, reasons = [], []
    if "user_id" in table.schema.names and table.name != "users":
        joins.append("left join known_users on user_id = known_user_id")
        reasons.append("case when user_id is not null and known_user_id is null then 'unknown:user_id' end")
    if "video_id" in table.schema.names and table.name != "videos":
        joins.append("left join known_videos on video_id = known_video_id")
        reasons.append("case when video_id is not null and known_video_id is null then 'unknown:video_id' end")
    if "watch_seconds" in table.schema.names:
        reasons.append(
            "case when watch_seconds < 0 or isnan(watch_seconds) "
            f"or watch_seconds > {float(rules.max_watch_ratio)!r} * known_duration_seconds "
            "then 'out_of_range:watch_seconds' end"
        )
    return " ".join(joins), reasons


def duckdb_type(arrow_type: pa.DataType) -> str:
    """DuckDB's name for a type of the raw schema."""
    if pa.types.is_list(arrow_type):
        return f"{duckdb_type(arrow_type.value_type)}[]"
    if pa.types.is_map(arrow_type):
        return f"map({duckdb_type(arrow_type.key_type)}, {duckdb_type(arrow_type.item_type)})"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    simple = {pa.int64(): "bigint", pa.int32(): "integer", pa.float64(): "double", pa.string(): "varchar",
              pa.bool_(): "boolean"}
    if arrow_type not in simple:
        raise ValueError(f"no DuckDB type for raw schema type {arrow_type}")
    return simple[arrow_type]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quoted(names) -> list[str]:
    return [_quote(name) for name in names]


def _text(name: str) -> str:
    return _quote(f"text {name}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _string_list(values: list[str]) -> str:
    return f"[{', '.join(map(_literal, values))}]::varchar[]"


def _timestamp(moment: datetime) -> str:
    return f"timestamp '{moment.isoformat(sep=' ')}'"
