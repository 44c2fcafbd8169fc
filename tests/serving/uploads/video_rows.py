"""Rows of the raw log's videos table, and Parquet files of them written where an upstream writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vidrec.schema import VIDEOS


def video_row(video_id: int | None, **overrides: object) -> dict:
    """A valid upload (music, 90 s, uploaded 2026-01-10 12:00) unless `overrides` say otherwise."""
    return {"video_id": video_id, "creator_id": 7, "category": "music", "duration_seconds": 90.0,
            "upload_time": pd.Timestamp("2026-01-10 12:00"), "title_tokens": ["live", "piano"], **overrides}


def write_videos(videos_dir: Path, rows: list[dict], name: str, day: str = "2026-01-10") -> Path:
    """`rows` as `<videos_dir>/day=<day>/<name>.parquet` in the VIDEOS schema."""
    path = videos_dir / f"day={day}" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=VIDEOS.schema), path)
    return path
