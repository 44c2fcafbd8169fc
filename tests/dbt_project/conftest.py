"""A tiny, hand-made raw dataset and one real `dbt build` over it, shared by the mart tests.

The rows are chosen so every mart value can be worked out by hand (see test_marts.py). The logs
cover 2026-01-01 .. 2026-01-06; the last watch is on 2026-01-06, so with holdout_days=3 the
holdout starts at 2026-01-04 00:00.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dbt.cli.main import dbtRunner, dbtRunnerResult

from vidrec.schema import RAW_TABLES

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"

# Small values so the tiny data exercises history truncation and the per-user cap.
DBT_VARS = {"holdout_days": 3, "history_length": 3, "impression_history_length": 2, "max_examples_per_user": 2}


def t(text: str) -> datetime:
    """A naive UTC timestamp from 'YYYY-MM-DD HH:MM'."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


RAW_ROWS: dict[str, list[dict]] = {
    "users": [
        dict(user_id=1, signup_time=t("2025-12-01 00:00"), country="US", device="mobile",
             age_bucket="18-24", gender="female"),
        dict(user_id=2, signup_time=t("2026-01-02 08:00"), country="IN", device="desktop",
             age_bucket="25-34", gender="male"),
        dict(user_id=3, signup_time=t("2025-12-15 00:00"), country="BR", device="tv",
             age_bucket="35-44", gender="unknown"),
        dict(user_id=4, signup_time=t("2025-12-20 00:00"), country="DE", device="tablet",
             age_bucket="45-54", gender="female"),
    ],
    "videos": [
        dict(video_id=10, creator_id=100, category="music", duration_seconds=100.0,
             upload_time=t("2025-12-20 00:00"), title_tokens=["lofi", "beats"]),
        dict(video_id=11, creator_id=100, category="music", duration_seconds=200.0,
             upload_time=t("2025-12-20 00:00"), title_tokens=["jazz"]),
        dict(video_id=12, creator_id=101, category="gaming", duration_seconds=300.0,
             upload_time=t("2025-12-20 00:00"), title_tokens=["speedrun", "any", "percent"]),
        dict(video_id=13, creator_id=101, category="comedy", duration_seconds=60.0,
             upload_time=t("2025-12-20 00:00"), title_tokens=["cat", "video"]),
        dict(video_id=14, creator_id=102, category="news", duration_seconds=600.0,
             upload_time=t("2026-01-03 10:00"), title_tokens=[]),
    ],
    "watches": [
        # user 1: three watches -> two rollback examples (one train, one holdout)
        dict(user_id=1, video_id=10, watch_time=t("2026-01-01 10:00"), watch_seconds=50.0,
             liked=True, shared=False, disliked=False),
        dict(user_id=1, video_id=10, watch_time=t("2026-01-01 10:00"), watch_seconds=50.0,
             liked=True, shared=False, disliked=False),  # a logged duplicate
        dict(user_id=1, video_id=11, watch_time=t("2026-01-02 12:00"), watch_seconds=200.0,
             liked=False, shared=True, disliked=False),
        dict(user_id=1, video_id=12, watch_time=t("2026-01-05 09:00"), watch_seconds=150.0,
             liked=True, shared=False, disliked=False),
        # user 2: searches first, then two watches at the same instant, then the last watch
        dict(user_id=2, video_id=13, watch_time=t("2026-01-02 09:05"), watch_seconds=60.0,
             liked=False, shared=False, disliked=False),
        dict(user_id=2, video_id=10, watch_time=t("2026-01-02 11:00"), watch_seconds=10.0,
             liked=False, shared=False, disliked=True),
        dict(user_id=2, video_id=12, watch_time=t("2026-01-02 11:00"), watch_seconds=30.0,
             liked=False, shared=False, disliked=False),
        dict(user_id=2, video_id=14, watch_time=t("2026-01-06 20:00"), watch_seconds=300.0,
             liked=True, shared=False, disliked=False),
        # user 4: five watches in one night -> four train examples, capped to the last two
        *[
            dict(user_id=4, video_id=video_id, watch_time=t(f"2026-01-03 0{hour}:00"),
                 watch_seconds=30.0, liked=False, shared=False, disliked=False)
            for hour, video_id in zip(range(1, 6), (10, 11, 12, 13, 10))
        ],
    ],
    "impressions": [
        # shown at 09:00, watched at 09:05: a click
        dict(request_id="r1", user_id=2, video_id=13, surface="home", position=0,
             impression_time=t("2026-01-02 09:00")),
        dict(request_id="r1", user_id=2, video_id=13, surface="home", position=0,
             impression_time=t("2026-01-02 09:00")),  # a logged duplicate
        # shown at 09:00, watched two hours later: not a click
        dict(request_id="r1", user_id=2, video_id=10, surface="home", position=1,
             impression_time=t("2026-01-02 09:00")),
        # what the service logs of an item it served (serving.served_log): the serving columns too
        dict(request_id="r2", user_id=1, video_id=12, surface="watch_next", position=0,
             impression_time=t("2026-01-05 08:58"), source="co_watch", source_score=0.5,
             score=12.5, propensity=0.97, reason="because_you_watched", explored=False,
             head_predictions={"watch_time": 10.0, "click": 0.4, "like": 0.2, "skip": 0.1},
             model_versions={"ranker": "3", "retrieval": "2"}),
        dict(request_id="r3", user_id=1, video_id=14, surface="search", position=0,
             impression_time=t("2026-01-05 23:55")),
        dict(request_id="r4", user_id=1, video_id=11, surface="home", position=2,
             impression_time=t("2026-01-02 11:40")),
    ],
    "searches": [
        dict(user_id=2, search_time=t("2026-01-02 09:00"), query_tokens=["cat", "video"]),
        dict(user_id=1, search_time=t("2026-01-04 10:00"), query_tokens=["lofi", "hip", "hop"]),
    ],
    "subscriptions": [
        dict(user_id=1, creator_id=100, subscribed_time=t("2026-01-01 00:00")),
    ],
}


# Days whose files were written before the schema had its optional columns (the serving ones):
# they lack those columns on disk, as a raw log simulated or imported before them does.
DAYS_WRITTEN_BEFORE_OPTIONAL_COLUMNS = {"impressions": {"2026-01-02"}}


def write_raw_tables(raw_dir: Path, rows_by_table: dict[str, list[dict]],
                     days_before_optional_columns: dict[str, set[str]] | None = None) -> None:
    """Write rows as the raw layout: `<raw_dir>/<table>/day=YYYY-MM-DD/part-0.parquet`; the days
    listed in `days_before_optional_columns` without the table's optional columns."""
    for table_name, rows in rows_by_table.items():
        table = RAW_TABLES[table_name]
        old_days = (days_before_optional_columns or {}).get(table_name, set())
        by_day: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            by_day[row[table.partition_column].strftime("%Y-%m-%d")].append(row)
        for day, day_rows in by_day.items():
            out = raw_dir / table_name / f"day={day}" / "part-0.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            schema = table.schema if day not in old_days else pa.schema(
                [table.schema.field(column) for column in table.required_columns])
            pq.write_table(pa.Table.from_pylist(day_rows, schema=schema), out)


def run_dbt(args: list[str], *, home: Path, dbt_vars: dict) -> dbtRunnerResult:
    """Invoke dbt in-process against `home`, keeping target/ and logs/ out of the checkout."""
    os.environ["VIDREC_WAREHOUSE_PATH"] = str(home / "warehouse.duckdb")
    try:
        return dbtRunner().invoke(
            [
                *args,
                "--project-dir", str(DBT_PROJECT_DIR),
                "--profiles-dir", str(DBT_PROJECT_DIR),
                "--target-path", str(home / "dbt_target"),
                "--log-path", str(home / "dbt_logs"),
                "--vars", json.dumps(dbt_vars),
                "--no-use-colors",
                "--quiet",
            ]
        )
    finally:
        del os.environ["VIDREC_WAREHOUSE_PATH"]


class BuiltMarts:
    """The result of a real `dbt build` over the tiny raw data."""

    def __init__(self, home: Path, result: dbtRunnerResult) -> None:
        self.home = home
        self.marts_dir = home / "marts"
        self.result = result

    def warehouse_rows(self, model: str, where: str = "true", order_by: str = "all") -> list[dict]:
        """Rows of a staging or intermediate model, from the warehouse dbt built them in."""
        # not read_only: dbt-duckdb keeps its connection to the file open in this process, and
        # DuckDB refuses a second one with another configuration
        with duckdb.connect(str(self.home / "warehouse.duckdb")) as con:
            relation = con.sql(f"select * from {model} where {where} order by {order_by}")
            return [dict(zip(relation.columns, values)) for values in relation.fetchall()]

    def query(self, sql: str) -> list[tuple]:
        """Run SQL where `{marts}` is the marts directory."""
        with duckdb.connect() as con:
            return con.sql(sql.format(marts=self.marts_dir)).fetchall()

    def rows(self, mart: str, where: str = "true", order_by: str = "all") -> list[dict]:
        with duckdb.connect() as con:
            relation = con.sql(
                f"select * from read_parquet('{self.marts_dir / mart}.parquet') "
                f"where {where} order by {order_by}"
            )
            return [dict(zip(relation.columns, values)) for values in relation.fetchall()]


@pytest.fixture(scope="session")
def built_marts(tmp_path_factory: pytest.TempPathFactory) -> BuiltMarts:
    home = tmp_path_factory.mktemp("vidrec_home")
    write_raw_tables(home / "raw", RAW_ROWS, DAYS_WRITTEN_BEFORE_OPTIONAL_COLUMNS)
    (home / "marts").mkdir()
    dbt_vars = {"validated_dir": str(home / "raw"), "marts_dir": str(home / "marts"), **DBT_VARS}
    result = run_dbt(["build"], home=home, dbt_vars=dbt_vars)
    return BuiltMarts(home, result)
