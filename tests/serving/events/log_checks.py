"""What the intake tests compare: the rows the pipeline would read, an uncrashed intake's rows, leftovers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from serving.events.intake import LOCK_NAME, EventIntake
from serving.events.state import state_dir
from tests.serving.events.events_data import make_raw_log, parsed
from vidrec.rawlog import read_raw_table

PROJECT_ROOT = Path(__file__).resolve().parents[3]
WRITER = Path(__file__).with_name("writer_process.py")


@contextlib.contextmanager
def writer_process(*arguments: str) -> Iterator[subprocess.Popen]:
    """tests/serving/events/writer_process.py running with `arguments`; killed on leaving, whatever happened."""
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), *arguments],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield writer
    finally:
        writer.kill()  # a no-op once it has exited
        writer.communicate()


def raw_rows(raw_dir: Path) -> dict[str, list[tuple]]:
    """Every row the pipeline would read, sorted, per table (an empty list for a table with no file yet)."""
    rows = {}
    for table in ("impressions", "watches"):
        if not list((raw_dir / table).glob("*/*.parquet")):
            rows[table] = []
            continue
        frame = read_raw_table(table, raw_dir)
        frame = frame.astype(object).where(frame.notna(), None)  # NaN != NaN would make equal rows differ
        rows[table] = sorted(frame.itertuples(index=False, name=None))
    return rows


def oracle(tmp_path: Path, name: str, *batches: list[dict]) -> dict[str, list[tuple]]:
    """The rows an intake that never crashed logs for `batches`."""
    raw_dir = make_raw_log(tmp_path / name)
    intake = EventIntake(raw_dir)
    for batch in batches:
        intake.submit(parsed(batch))
    intake.close()
    return raw_rows(raw_dir)


def leftovers(raw_dir: Path) -> list[str]:
    """Hidden files under the raw tables: temporary files nobody will publish or delete."""
    return sorted(str(path.relative_to(raw_dir)) for path in raw_dir.glob("*/*/.*"))


@contextlib.contextmanager
def write_lock_held_elsewhere(raw_dir: Path) -> Iterator[None]:
    """Another writer in the middle of a batch: the raw log's write lock taken through another file handle."""
    with (state_dir(raw_dir) / LOCK_NAME).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
