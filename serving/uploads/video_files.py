"""The rows of the raw log's videos table that a worker has not read yet, file by file.

An upstream system adds videos by writing a Parquet file of the `vidrec.schema.VIDEOS` schema
under `<raw_dir>/videos/day=YYYY-MM-DD/` (the raw log's layout, `vidrec.rawlog`); dbt reads the
same files at the next pipeline run. A look must stay cheap at any size of the table, so it lists
the files and reads only those whose (size, modification time, inode) differ from the last look.
An import (`vidrec simulate`, `vidrec import ...`) replaces the whole table by swapping its
directory: the new files reuse the old names (`part-0.parquet`) but not their inodes, so every
one is read again. Rows already served are told apart downstream, by the live index.

Only `*/*.parquet` is read, as dbt reads the table, and hidden names are skipped: a writer's
temporary file (`.<name>.tmp-<seq>`, serving.events) is invisible until renamed into place. A file that
cannot be read (still being written without that care, or corrupt) or does not fit the schema is
logged once and read again only when it changes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vidrec.schema import VIDEOS

logger = logging.getLogger(__name__)

# What a file looked like when it was last read: (size, modification time in ns, inode).
FileSignature = tuple[int, int, int]


class VideoFilesError(ValueError):
    """A videos file that does not hold the VIDEOS schema; the message names the file and why."""


class NewVideoFiles:
    """Reads each new or changed Parquet file of one videos table directory once."""

    def __init__(self, videos_dir: Path):
        self.videos_dir = videos_dir
        self._read: dict[Path, FileSignature] = {}

    def read_new(self) -> pd.DataFrame:
        """The rows of every file that is new or changed since the last call, with exactly the
        VIDEOS columns and types (empty when nothing changed, or the table does not exist yet)."""
        listed = self._listing()
        for gone in self._read.keys() - listed.keys():
            del self._read[gone]  # removed (or swapped away): read again should it come back
        frames = []
        for path, signature in sorted(listed.items()):
            if self._read.get(path) == signature:
                continue
            self._read[path] = signature
            try:
                frames.append(read_videos_file(path))
            except (OSError, pa.ArrowException, VideoFilesError) as error:
                logger.warning("videos file %s skipped until it changes: %s", path, error)
        if not frames:
            return empty_videos()
        return pd.concat(frames, ignore_index=True)

    def _listing(self) -> dict[Path, FileSignature]:
        """Every visible `<day>/<file>.parquet` under the table with its signature."""
        listed: dict[Path, FileSignature] = {}
        try:
            days = [entry for entry in os.scandir(self.videos_dir) if entry.is_dir() and _visible(entry.name)]
        except FileNotFoundError:  # no raw log yet, or caught between an import's two renames
            return listed
        for day in days:
            try:
                entries = list(os.scandir(day.path))
            except FileNotFoundError:  # swapped away while listed
                continue
            for entry in entries:
                if not (entry.name.endswith(".parquet") and _visible(entry.name)):
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                listed[Path(entry.path)] = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        return listed


def read_videos_file(path: Path) -> pd.DataFrame:
    """One file's rows in the VIDEOS schema; VideoFilesError names a missing or mistyped column."""
    table = pq.read_table(path)
    expected = VIDEOS.schema.names
    missing = [column for column in expected if column not in table.column_names]
    if missing:
        raise VideoFilesError(f"missing column(s) {missing}; the videos table has {expected}")
    try:
        table = table.select(expected).cast(VIDEOS.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise VideoFilesError(f"columns do not convert to the videos schema {VIDEOS.schema}: {error}") from error
    return table.to_pandas()


def empty_videos() -> pd.DataFrame:
    return VIDEOS.schema.empty_table().to_pandas()


def _visible(name: str) -> bool:
    return not name.startswith(".")
