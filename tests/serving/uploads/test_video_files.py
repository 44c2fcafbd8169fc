"""Each videos file is read once, again only when it changes, and a bad one never stops the reads."""

from __future__ import annotations

import logging
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.uploads.video_files import NewVideoFiles
from tests.serving.uploads.video_rows import video_row, write_videos
from vidrec.rawlog import write_raw_table
from vidrec.schema import VIDEOS


def test_a_new_file_is_read_once_in_the_videos_schema(tmp_path):
    files = NewVideoFiles(tmp_path / "videos")
    write_videos(tmp_path / "videos", [video_row(1), video_row(2)], "upload-1")

    first, second = files.read_new(), files.read_new()

    assert first["video_id"].tolist() == [1, 2]
    assert list(first.columns) == VIDEOS.schema.names
    assert second.empty and list(second.columns) == VIDEOS.schema.names


def test_only_new_and_rewritten_files_are_read_again(tmp_path):
    files = NewVideoFiles(tmp_path / "videos")
    write_videos(tmp_path / "videos", [video_row(1)], "upload-1")
    files.read_new()

    write_videos(tmp_path / "videos", [video_row(2)], "upload-2", day="2026-01-11")
    write_videos(tmp_path / "videos", [video_row(1), video_row(3)], "upload-1")  # rewritten in place

    assert sorted(files.read_new()["video_id"]) == [1, 2, 3]


def test_no_table_yet_reads_nothing_and_the_first_file_is_found_later(tmp_path):
    files = NewVideoFiles(tmp_path / "videos")
    assert files.read_new().empty

    write_videos(tmp_path / "videos", [video_row(4)], "upload-1")
    assert files.read_new()["video_id"].tolist() == [4]


def test_a_reimport_swapping_the_whole_table_is_read_again_though_its_names_repeat(tmp_path):
    files = NewVideoFiles(tmp_path / "videos")
    write_raw_table(VIDEOS, pd.DataFrame([video_row(1), video_row(2)]), tmp_path)
    assert sorted(files.read_new()["video_id"]) == [1, 2]

    write_raw_table(VIDEOS, pd.DataFrame([video_row(1), video_row(2), video_row(5)]), tmp_path)

    assert sorted(files.read_new()["video_id"]) == [1, 2, 5]  # day=2026-01-10/part-0.parquet again


def test_a_temporary_file_is_invisible_until_renamed_into_place(tmp_path):
    files = NewVideoFiles(tmp_path / "videos")
    written = write_videos(tmp_path / "videos", [video_row(6)], "upload-1")
    temporary = written.with_name(".upload-1.parquet.tmp-000000000001")
    written.rename(temporary)
    assert files.read_new().empty

    os.replace(temporary, written)
    assert files.read_new()["video_id"].tolist() == [6]


def test_an_unreadable_or_misshapen_file_is_logged_once_and_the_others_are_read(tmp_path, caplog):
    files = NewVideoFiles(tmp_path / "videos")
    half_written = tmp_path / "videos" / "day=2026-01-10" / "half.parquet"
    half_written.parent.mkdir(parents=True)
    half_written.write_bytes(b"PAR1 not yet")
    pq.write_table(pa.table({"video_id": [8], "creator_id": [1]}), half_written.with_name("no-category.parquet"))
    write_videos(tmp_path / "videos", [video_row(9)], "good")

    with caplog.at_level(logging.WARNING, logger="serving.uploads.video_files"):
        assert files.read_new()["video_id"].tolist() == [9]
        assert files.read_new().empty

    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2  # once each, not once per look
    assert any("half.parquet" in warning for warning in warnings)
    assert any("no-category.parquet" in warning and "missing column(s) ['category'" in warning for warning in warnings)

    write_videos(tmp_path / "videos", [video_row(10)], "half")  # finished: read now
    assert files.read_new()["video_id"].tolist() == [10]


def test_a_column_of_the_wrong_type_names_the_file_and_the_schema(tmp_path, caplog):
    files = NewVideoFiles(tmp_path / "videos")
    rows = pd.DataFrame([video_row(1)]).assign(duration_seconds="ninety")
    path = tmp_path / "videos" / "day=2026-01-10" / "typed.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path)

    with caplog.at_level(logging.WARNING, logger="serving.uploads.video_files"):
        assert files.read_new().empty

    assert "typed.parquet" in caplog.text and "do not convert to the videos schema" in caplog.text
