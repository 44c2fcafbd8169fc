"""Putting a batch's Parquet files into the raw log so that a kill at any moment is harmless.

A batch adds new files and may rewrite files of earlier batches (a playback that gained watch
seconds or a like lives in the file of the batch that first logged it). Readers glob
`<table>/*/*.parquet`, so a file still being written carries a name they skip,
`.<name>.tmp-<seq>`, and becomes visible only by an atomic rename over its final name.

For batch `seq`, the caller holding the raw log's write lock:

1. `stage`: each file is written to its temporary name and fsynced, then `sync_directories`
   makes the names durable;
2. commits the batch to SQLite, with its files and `published = 0`: the batch is now logged;
3. `publish`: renames each temporary file over its final name; then answers the client.

The next batch first calls `publish` again for every batch still marked unpublished (a kill
between 2 and 3 left its temporary files; otherwise the renames are no-ops), syncs those
directories with its own, and marks them published in its own commit: a rename lost to a power
cut is redone, and an fsync per directory is shared by two batches. A kill before 2 leaves only
temporary files, which readers never see and `remove_orphans` deletes when a worker starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

TEMPORARY_MARK = ".tmp-"


def no_fault(step: str) -> None:
    """The production fault hook: nothing happens between steps (tests pass one that kills the process)."""


def temporary_path(final: Path, seq: int) -> Path:
    return final.with_name(f".{final.name}{TEMPORARY_MARK}{seq:012d}")


def directories_of(files: Iterable[str], raw_dir: Path) -> set[Path]:
    return {(raw_dir / relative).parent for relative in files}


def sync_directories(directories: Iterable[Path]) -> None:
    """Make directory entries (a new name, a rename) durable, not only the files' bytes."""
    for directory in sorted(directories):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def make_directories(directory: Path, root: Path) -> None:
    """`directory` and any missing parents below `root`, each new entry synced into its parent."""
    missing = []
    while not directory.exists() and directory != root:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        sync_directories([path.parent])


def stage(seq: int, tables: dict[str, pa.Table], raw_dir: Path, fault: Callable[[str], None] = no_fault) -> None:
    """Step 1 for `tables` (relative path → content): on disk under temporary names, nothing visible."""
    for relative, table in tables.items():
        final = raw_dir / relative
        make_directories(final.parent, raw_dir)
        with temporary_path(final, seq).open("wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        fault("file_staged")


def publish(seq: int, files: Iterable[str], raw_dir: Path, fault: Callable[[str], None] = no_fault) -> None:
    """Step 3: make every file of a committed batch visible. Repeatable: a file already renamed is skipped."""
    for relative in files:
        final = raw_dir / relative
        staged = temporary_path(final, seq)
        if staged.exists():
            staged.rename(final)
        fault("file_published")


def discard(seq: int, files: Iterable[str], raw_dir: Path) -> None:
    """Delete the temporary files of a batch that will not be committed."""
    for relative in files:
        temporary_path(raw_dir / relative, seq).unlink(missing_ok=True)


def remove_orphans(raw_dir: Path) -> list[Path]:
    """Delete temporary files no committed batch will publish (call after publishing every committed one)."""
    orphans = [path for path in raw_dir.glob(f"*/*/.*{TEMPORARY_MARK}*") if path.is_file()]
    for path in orphans:
        logger.warning("removing %s, left by a batch that was never committed", path)
        path.unlink()
    return orphans
