"""Raw log writes: schema-checked, atomic, and never destructive on failure."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vidrec.rawlog import RawLogError, read_raw_table, to_arrow, write_raw_table
from vidrec.schema import IMPRESSIONS, SUBSCRIPTIONS, RawTable


def _subscriptions(creator_ids):
    return pd.DataFrame(
        {
            "user_id": [1] * len(creator_ids),
            "creator_id": creator_ids,
            "subscribed_time": pd.to_datetime(["2026-01-01 10:00"] * len(creator_ids)),
        }
    )


def test_round_trip_keeps_rows_and_partitions_by_day(tmp_path):
    frame = _subscriptions([10, 11])
    frame.loc[1, "subscribed_time"] = pd.Timestamp("2026-01-02 08:00")

    write_raw_table(SUBSCRIPTIONS, frame, tmp_path)

    assert sorted(path.name for path in (tmp_path / "subscriptions").iterdir()) == ["day=2026-01-01", "day=2026-01-02"]
    assert sorted(read_raw_table("subscriptions", tmp_path)["creator_id"]) == [10, 11]


def test_missing_column_is_named_and_previous_table_survives(tmp_path):
    write_raw_table(SUBSCRIPTIONS, _subscriptions([10]), tmp_path)

    with pytest.raises(RawLogError, match=r"missing column\(s\) \['creator_id'\]"):
        write_raw_table(SUBSCRIPTIONS, _subscriptions([12]).drop(columns=["creator_id"]), tmp_path)

    assert list(read_raw_table("subscriptions", tmp_path)["creator_id"]) == [10]
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_uncastable_values_are_reported_with_the_table(tmp_path):
    frame = _subscriptions([10]).astype({"creator_id": object})
    frame.loc[0, "creator_id"] = "ten"
    with pytest.raises(RawLogError, match="subscriptions: cannot convert"):
        write_raw_table(SUBSCRIPTIONS, frame, tmp_path)


def test_rewrite_replaces_the_table(tmp_path):
    write_raw_table(SUBSCRIPTIONS, _subscriptions([10, 11]), tmp_path)
    write_raw_table(SUBSCRIPTIONS, _subscriptions([12]), tmp_path)
    assert list(read_raw_table("subscriptions", tmp_path)["creator_id"]) == [12]


def test_unknown_table_is_rejected(tmp_path):
    with pytest.raises(RawLogError, match="unknown raw table 'clicks'"):
        read_raw_table("clicks", tmp_path)


def test_empty_table_is_written_with_its_schema_and_reads_back_empty(tmp_path):
    write_raw_table(SUBSCRIPTIONS, _subscriptions([]), tmp_path)

    assert list((tmp_path / "subscriptions").glob("*/*.parquet"))
    frame = read_raw_table("subscriptions", tmp_path)
    assert frame.empty and list(frame.columns) == SUBSCRIPTIONS.schema.names


def _impressions(**columns) -> pd.DataFrame:
    """One simulated-style impression (no serving columns) plus `columns`."""
    return pd.DataFrame({
        "request_id": ["r1"], "user_id": [1], "video_id": [7], "surface": ["home"], "position": [0],
        "impression_time": pd.to_datetime(["2026-01-01 10:00"]), "source": ["ann"], "source_score": [0.5],
        **columns,
    })


def test_optional_columns_a_writer_leaves_out_are_written_as_nulls(tmp_path):
    table = to_arrow(IMPRESSIONS, _impressions())

    assert table.schema == IMPRESSIONS.schema
    row = table.to_pylist()[0]
    assert {column: row[column] for column in IMPRESSIONS.optional_columns} == dict.fromkeys(
        IMPRESSIONS.optional_columns)
    assert (row["request_id"], row["source_score"]) == ("r1", 0.5)


def test_optional_columns_a_writer_knows_are_kept(tmp_path):
    frame = _impressions(score=[31.5], propensity=[0.97], explored=[False],
                         head_predictions=[{"watch_time": 25.5, "like": 0.2}], model_versions=[{"ranker": "4"}])

    write_raw_table(IMPRESSIONS, frame, tmp_path)

    row = read_raw_table("impressions", tmp_path).iloc[0]
    assert (row["score"], row["propensity"], row["explored"], row["reason"]) == (31.5, 0.97, False, None)
    assert dict(row["head_predictions"]) == {"watch_time": 25.5, "like": 0.2}
    assert dict(row["model_versions"]) == {"ranker": "4"}


def test_a_missing_required_column_is_still_an_error_naming_the_optional_ones(tmp_path):
    with pytest.raises(RawLogError, match=r"missing column\(s\) \['surface'\].*optional: \['explored'"):
        to_arrow(IMPRESSIONS, _impressions().drop(columns=["surface"]))


def test_files_written_before_a_column_existed_read_back_with_nulls(tmp_path):
    old_columns = IMPRESSIONS.required_columns
    old_schema = pa.schema([IMPRESSIONS.schema.field(column) for column in old_columns])
    (tmp_path / "impressions" / "day=2026-01-01").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(_impressions(), schema=old_schema, preserve_index=False),
                   tmp_path / "impressions" / "day=2026-01-01" / "part-0.parquet")

    frame = read_raw_table("impressions", tmp_path)

    assert list(frame.columns) == IMPRESSIONS.schema.names
    assert frame[sorted(IMPRESSIONS.optional_columns)].isna().all().all()


def test_a_key_column_cannot_be_optional():
    with pytest.raises(ValueError, match=r"key columns \['user_id'\] cannot be optional"):
        RawTable("follows", SUBSCRIPTIONS.schema, "subscribed_time", ("user_id",), "", frozenset({"user_id"}))
