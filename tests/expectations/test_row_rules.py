"""Row rules on raw events: one small file per case, one case per reason."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expectations.row_rules import RawFile, References, RuleSettings, judge_rows
from vidrec.rawlog import to_arrow
from vidrec.schema import RAW_TABLES

DAY = date(2026, 1, 2)
RULES = RuleSettings(now=datetime(2026, 2, 1), max_watch_ratio=3.0)
# Users 1 and 2; video 10 lasts 100 s, video 11 200 s.
REFERENCES = References(user_ids=pa.array([1, 2], pa.int64()),
                        videos=pa.table({"video_id": [10, 11], "duration_seconds": [100.0, 200.0]}))


def watch(**overrides) -> dict:
    return {"user_id": 1, "video_id": 10, "watch_time": datetime(2026, 1, 2, 10, 0), "watch_seconds": 30.0,
            "liked": False, "shared": False, "disliked": False, **overrides}


def impression(**overrides) -> dict:
    return {"request_id": "r1", "user_id": 1, "video_id": 10, "surface": "home", "position": 0,
            "impression_time": datetime(2026, 1, 2, 10, 0), "source": "ann", "source_score": 1.0, **overrides}


def write(tmp_path: Path, table_name: str, rows: list[dict] | pa.Table, name: str = "part-0.parquet",
          day: date | None = DAY) -> RawFile:
    """Rows as one raw file of `day`: typed by the raw schema, or an Arrow table written as it is."""
    directory = tmp_path / table_name / (f"day={day.isoformat()}" if day else "elsewhere")
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(rows, list):
        rows = to_arrow(RAW_TABLES[table_name], pd.DataFrame(rows))
    pq.write_table(rows, directory / name)
    return RawFile(directory / name, (directory / name).relative_to(tmp_path).as_posix(), day)


def judge(table_name: str, *files: RawFile, rules: RuleSettings = RULES):
    return judge_rows(table_name, list(files), REFERENCES, rules)


def reasons_of(verdicts) -> list[list[str]]:
    return verdicts.quarantined.column("reasons").to_pylist()


def test_clean_rows_pass_with_the_raw_schema(tmp_path):
    verdicts = judge("watches", write(tmp_path, "watches", [watch(), watch(video_id=11, watch_seconds=600.0)]))

    assert verdicts.quarantined.num_rows == 0 and verdicts.rows_in == 2
    assert verdicts.clean.drop_columns(["source_file", "source_row"]).schema == RAW_TABLES["watches"].schema
    assert verdicts.clean.column("watch_seconds").to_pylist() == [30.0, 600.0]


def test_a_value_that_does_not_cast_is_quarantined_and_castable_text_is_typed(tmp_path):
    rows = pa.table({"user_id": [1, 1], "video_id": [10, 11], "watch_time": [datetime(2026, 1, 2, 10)] * 2,
                     "watch_seconds": ["abc", "12.5"], "liked": [False] * 2, "shared": [False] * 2,
                     "disliked": [False] * 2})
    verdicts = judge("watches", write(tmp_path, "watches", rows))

    assert reasons_of(verdicts) == [["type:watch_seconds"]]
    assert verdicts.quarantined.column("watch_seconds").to_pylist() == ["abc"]  # the raw value, as text
    assert verdicts.clean.column("watch_seconds").to_pylist() == [12.5]


def test_a_fractional_id_is_not_rounded_into_another_id(tmp_path):
    rows = pa.table({"user_id": [1.0, 1.5], "video_id": [10, 10], "watch_time": [datetime(2026, 1, 2, 10)] * 2,
                     "watch_seconds": [1.0, 2.0], "liked": [False] * 2, "shared": [False] * 2,
                     "disliked": [False] * 2})
    verdicts = judge("watches", write(tmp_path, "watches", rows))

    assert reasons_of(verdicts) == [["type:user_id"]]
    assert verdicts.clean.column("user_id").to_pylist() == [1]


def test_a_null_id_is_quarantined(tmp_path):
    rows = pa.Table.from_pylist([watch(), watch(user_id=None)], schema=RAW_TABLES["watches"].schema)
    assert reasons_of(judge("watches", write(tmp_path, "watches", rows))) == [["null:user_id"]]


def test_an_event_outside_its_files_day_is_quarantined(tmp_path):
    verdicts = judge("watches", write(tmp_path, "watches", [watch(watch_time=datetime(2026, 1, 3, 0, 0))]))
    assert reasons_of(verdicts) == [["outside_day:watch_time"]]


def test_an_event_from_the_future_is_quarantined(tmp_path):
    future_day = date(2026, 3, 1)
    verdicts = judge("watches", write(tmp_path, "watches", [watch(watch_time=datetime(2026, 3, 1, 10))],
                                      day=future_day))
    assert reasons_of(verdicts) == [["future:watch_time"]]


def test_an_event_before_any_plausible_log_is_quarantined(tmp_path):
    verdicts = judge("watches", write(tmp_path, "watches", [watch(watch_time=datetime(1990, 1, 1, 10))],
                                      day=date(1990, 1, 1)))
    assert reasons_of(verdicts) == [["too_early:watch_time"]]


def test_watch_seconds_must_lie_within_zero_and_k_times_the_videos_duration(tmp_path):
    rows = [watch(watch_seconds=-1.0), watch(video_id=11, watch_seconds=600.0),
            watch(watch_time=datetime(2026, 1, 2, 11), watch_seconds=300.1)]
    verdicts = judge("watches", write(tmp_path, "watches", rows))

    assert verdicts.quarantined.column("watch_seconds").to_pylist() == ["-1.0", "300.1"]
    assert reasons_of(verdicts) == [["out_of_range:watch_seconds"]] * 2
    assert verdicts.clean.column("watch_seconds").to_pylist() == [600.0]  # exactly 3 × 200 s


def test_a_negative_position_is_quarantined(tmp_path):
    verdicts = judge("impressions", write(tmp_path, "impressions", [impression(position=-1)]))
    assert reasons_of(verdicts) == [["negative:position"]]


def test_ids_missing_from_the_users_and_videos_tables_are_quarantined(tmp_path):
    verdicts = judge("impressions", write(tmp_path, "impressions", [impression(user_id=99, video_id=98)]))
    assert reasons_of(verdicts) == [["unknown:user_id", "unknown:video_id"]]


def test_a_value_outside_the_schemas_vocabulary_is_quarantined(tmp_path):
    verdicts = judge("impressions", write(tmp_path, "impressions", [impression(surface="fridge")]))
    assert reasons_of(verdicts) == [["not_in_vocabulary:surface"]]


def test_a_repeated_key_keeps_the_first_copy_and_quarantines_the_rest(tmp_path):
    first = write(tmp_path, "watches", [watch(watch_seconds=30.0)], name="part-0.parquet")
    later = write(tmp_path, "watches", [watch(watch_seconds=31.0), watch(watch_seconds=32.0)], name="part-1.parquet")
    verdicts = judge("watches", later, first)  # the order files are given in does not matter

    assert verdicts.clean.column("watch_seconds").to_pylist() == [30.0]
    assert reasons_of(verdicts) == [["duplicate_key"]] * 2
    assert verdicts.quarantined.column("source_row").to_pylist() == [0, 1]


def test_a_repeated_key_keeps_its_clean_copy_when_the_first_fails_another_rule(tmp_path):
    rows = [watch(watch_seconds=-5.0), watch(watch_seconds=40.0)]
    verdicts = judge("watches", write(tmp_path, "watches", rows))

    assert verdicts.clean.column("watch_seconds").to_pylist() == [40.0]
    assert reasons_of(verdicts) == [["out_of_range:watch_seconds", "duplicate_key"]]  # a repeat of the kept key


def test_a_file_lacking_a_required_column_quarantines_its_rows_and_optional_columns_may_be_absent(tmp_path):
    no_liked = to_arrow(RAW_TABLES["watches"], pd.DataFrame([watch()])).drop_columns(["liked"])
    required_only = to_arrow(RAW_TABLES["impressions"], pd.DataFrame([impression()])).select(
        RAW_TABLES["impressions"].required_columns)

    assert reasons_of(judge("watches", write(tmp_path, "watches", no_liked))) == [["missing_column:liked"]]
    assert judge("impressions", write(tmp_path, "impressions", required_only)).quarantined.num_rows == 0


def test_an_unreadable_file_is_one_quarantined_row_naming_the_file(tmp_path):
    broken = write(tmp_path, "watches", [watch()], name="part-1.parquet")
    broken.path.write_bytes(b"not parquet")
    verdicts = judge("watches", write(tmp_path, "watches", [watch(video_id=11)]), broken)

    (reasons,) = reasons_of(verdicts)
    assert reasons[0].startswith("unreadable_file: ")
    assert verdicts.quarantined.column("source_file").to_pylist() == ["watches/day=2026-01-02/part-1.parquet"]
    assert verdicts.clean.num_rows == 1 and verdicts.reason_counts == {"unreadable_file": 1}


def test_a_file_with_a_wrong_column_type_does_not_break_the_read_of_the_others(tmp_path):
    times_as_text = to_arrow(RAW_TABLES["watches"], pd.DataFrame([watch()])).set_column(
        2, "watch_time", pa.array(["yesterday"]))
    clean = write(tmp_path, "watches", [watch(video_id=11)], name="part-0.parquet")
    verdicts = judge("watches", clean, write(tmp_path, "watches", times_as_text, name="part-1.parquet"))

    assert verdicts.clean.column("video_id").to_pylist() == [11]
    assert reasons_of(verdicts) == [["type:watch_time"]]


def test_every_failing_row_carries_every_reason_its_source_file_and_row(tmp_path):
    rows = [watch(), watch(user_id=99, watch_time=datetime(2026, 3, 5, 10), watch_seconds=1e6)]
    verdicts = judge("watches", write(tmp_path, "watches", rows))

    (row,) = verdicts.quarantined.to_pylist()
    assert row["reasons"] == ["outside_day:watch_time", "future:watch_time", "unknown:user_id",
                              "out_of_range:watch_seconds"]
    assert (row["source_file"], row["source_row"]) == ("watches/day=2026-01-02/part-0.parquet", 1)
    assert verdicts.reason_counts["future:watch_time"] == 1 and verdicts.quarantined_share == 0.5


def test_every_tables_clean_rows_have_exactly_its_schema(tmp_path):
    user = {"user_id": 1, "signup_time": datetime(2026, 1, 2, 8), "country": "US", "device": "tv",
            "age_bucket": "18-24", "gender": "female"}
    video = {"video_id": 10, "creator_id": 5, "category": "music", "duration_seconds": 100.0,
             "upload_time": datetime(2026, 1, 2, 9), "title_tokens": ["lofi"]}
    rows = {"users": user, "videos": video, "impressions": impression(), "watches": watch(),
            "searches": {"user_id": 1, "search_time": datetime(2026, 1, 2, 9), "query_tokens": ["cats"]},
            "subscriptions": {"user_id": 1, "creator_id": 5, "subscribed_time": datetime(2026, 1, 2, 9)}}
    for table_name, row in rows.items():
        verdicts = judge(table_name, write(tmp_path, table_name, [row]))

        assert verdicts.quarantined.num_rows == 0, (table_name, verdicts.quarantined.to_pylist())
        assert verdicts.clean.drop_columns(["source_file", "source_row"]).schema == RAW_TABLES[table_name].schema


def test_events_need_the_users_and_videos_they_are_judged_against(tmp_path):
    with pytest.raises(ValueError, match="needs the known users"):
        judge_rows("watches", [write(tmp_path, "watches", [watch()])], References(), RULES)
