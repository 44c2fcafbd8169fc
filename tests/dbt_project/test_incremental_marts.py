"""The incremental engagement states (int_engagement_states) come out as a whole build's after a
new day and after a re-judged old day, and really keep the rows before the cut.

Each scenario builds the hand-made raw rows of conftest.py into a home of its own, changes the
raw days as a new day of logs or a backfill would, and builds again with the `incremental_from`
var the orchestrator passes (orchestration/incremental_dbt.py). A row stamped before the cut is
tampered with in between: it must survive (the build kept it rather than recomputing it), and
every other row must equal a whole build's over the same raw data. The tiny history lengths
(history 3, impressions 2) make the windows reach across the cut.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from tests.dbt_project.conftest import DBT_VARS, RAW_ROWS, run_dbt, write_raw_tables

ENGAGEMENT_MODELS = ["--select", "+user_engagement_history"]
TAMPERED_LOG = '{"tampered": true}'


def _rows_before(day: str, rows: dict[str, list[dict]] = RAW_ROWS) -> dict[str, list[dict]]:
    """`rows` without the event rows of `day` and later (the users and videos stay)."""
    cut = datetime.fromisoformat(day)
    time_columns = {"watches": "watch_time", "impressions": "impression_time", "searches": "search_time",
                    "subscriptions": "subscribed_time"}
    return {table: [row for row in table_rows if table not in time_columns or row[time_columns[table]] < cut]
            for table, table_rows in rows.items()}


def _build(home: Path, rows: dict[str, list[dict]], extra_vars: dict | None = None, full: bool = False) -> None:
    raw = home / "raw"
    if raw.exists():
        for part in raw.rglob("*.parquet"):
            part.unlink()
    write_raw_tables(raw, rows)
    (home / "marts").mkdir(exist_ok=True)
    dbt_vars = {"validated_dir": str(raw), "marts_dir": str(home / "marts"), **DBT_VARS, **(extra_vars or {})}
    result = run_dbt(["run", *ENGAGEMENT_MODELS, *(["--full-refresh"] if full else [])], home=home,
                     dbt_vars=dbt_vars)
    assert result.success, result.exception


def _engagement(home: Path) -> pd.DataFrame:
    return pd.read_parquet(home / "marts" / "user_engagement_history.parquet")


def _tamper(home: Path, request_id: str) -> None:
    """Overwrite one stored state in the warehouse, as if an earlier build had computed it."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        changed = con.execute("update int_engagement_states set watch_log = ? where request_id = ? returning 1",
                              [TAMPERED_LOG, request_id]).fetchall()
    assert changed, f"no state {request_id} to tamper with"


def _assert_equal_but_the_tampered_row(incremental: pd.DataFrame, whole: pd.DataFrame, tampered: str) -> None:
    keep = incremental["request_id"] != tampered
    assert incremental.loc[~keep, "watch_log"].tolist() == [TAMPERED_LOG]  # kept, not recomputed
    pd.testing.assert_frame_equal(incremental[keep].reset_index(drop=True),
                                  whole[whole["request_id"] != tampered].reset_index(drop=True))


def test_a_new_day_adds_its_requests_and_the_next_request_states_as_a_whole_build_would(tmp_path):
    whole_home, incremental_home = tmp_path / "whole", tmp_path / "incremental"
    _build(whole_home, RAW_ROWS)
    _build(incremental_home, _rows_before("2026-01-05"))
    _tamper(incremental_home, "r4")  # 2026-01-02, before the new days

    _build(incremental_home, RAW_ROWS, {"incremental_from": "2026-01-05"})

    incremental, whole = _engagement(incremental_home), _engagement(whole_home)
    assert {"r2", "r3"} <= set(incremental["request_id"])  # the new days' requests (2026-01-05)
    _assert_equal_but_the_tampered_row(incremental, whole, "r4")


def test_a_rejudged_old_day_recomputes_from_that_day_and_drops_its_vanished_requests(tmp_path):
    without_r1 = {**RAW_ROWS, "impressions": [row for row in RAW_ROWS["impressions"] if row["request_id"] != "r1"]}
    whole_home, incremental_home = tmp_path / "whole", tmp_path / "incremental"
    _build(whole_home, without_r1)
    _build(incremental_home, RAW_ROWS)
    _tamper(incremental_home, "r4")  # 2026-01-02 11:40: on the re-judged day, so recomputed

    _build(incremental_home, without_r1, {"incremental_from": "2026-01-02"})

    incremental = _engagement(incremental_home)
    assert "r1" not in set(incremental["request_id"])
    pd.testing.assert_frame_equal(incremental, _engagement(whole_home))


def test_without_a_cut_or_with_a_full_refresh_every_row_is_recomputed(tmp_path):
    whole_home, home = tmp_path / "whole", tmp_path / "home"
    _build(whole_home, RAW_ROWS)
    _build(home, RAW_ROWS)
    _tamper(home, "r4")
    _build(home, RAW_ROWS)  # an incremental build without incremental_from: a plain `dbt run` by hand
    pd.testing.assert_frame_equal(_engagement(home), _engagement(whole_home))

    _tamper(home, "r4")
    _build(home, RAW_ROWS, {"incremental_from": "2026-01-05"}, full=True)
    pd.testing.assert_frame_equal(_engagement(home), _engagement(whole_home))


def test_a_rebuild_on_unchanged_data_changes_no_row(tmp_path):
    home = tmp_path / "home"
    _build(home, RAW_ROWS)
    before = _engagement(home)

    _build(home, RAW_ROWS, {"incremental_from": "2026-01-07"})  # what an unchanged run passes: after the last day

    pd.testing.assert_frame_equal(_engagement(home), before)


def test_two_requests_at_one_instant_showing_one_video_are_both_history_in_either_build(tmp_path):
    at_noon = datetime(2026, 1, 4, 12, 0)
    twins = [dict(request_id=request_id, user_id=3, video_id=13, surface="home", position=0, impression_time=at_noon)
             for request_id in ("t1", "t2")]
    later = dict(request_id="t3", user_id=3, video_id=10, surface="home", position=0,
                 impression_time=datetime(2026, 1, 5, 9, 0))
    rows = {**RAW_ROWS, "impressions": [*RAW_ROWS["impressions"], *twins, later]}
    whole_home, incremental_home = tmp_path / "whole", tmp_path / "incremental"
    _build(whole_home, rows)
    _build(incremental_home, _rows_before("2026-01-05", rows))  # the twins, not the later request

    _build(incremental_home, rows, {"incremental_from": "2026-01-05"})

    whole = _engagement(whole_home)
    at_t3 = whole.loc[whole["request_id"] == "t3", "impression_log"].item()
    assert json.loads(at_t3)["video_ids"] == [13, 13]  # the last impression_history_length (2): both twins
    pd.testing.assert_frame_equal(_engagement(incremental_home), whole)
