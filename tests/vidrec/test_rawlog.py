"""Raw log writes: schema-checked, atomic, and never destructive on failure."""

from __future__ import annotations

import pandas as pd
import pytest

from vidrec.rawlog import RawLogError, read_raw_table, write_raw_table
from vidrec.schema import SUBSCRIPTIONS


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
