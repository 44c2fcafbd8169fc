"""How long the served-feature log keeps a day: old `day=` directories are removed whole.

The log grows with traffic (k served items × the sampled share of ranked requests, every day) and
nothing in the pipeline reads a day older than the skew checks' window, so without retention it
only grows. `prune_served_feature_log` keeps the newest `retention_days` days and the newest day
itself, counted back from the log's newest `day=` directory: the same clock the skew checks count
their window on (`feature_files.read_recent`), so a log whose requests carry the data clock
(simulated data, a replay) is pruned by its own days, not by the wall clock, and a service that
stopped logging keeps its last days instead of losing them all. Settings guarantee the retention
covers the checks' window, so a pruned day is never one they read.

A day goes as a whole directory, the unit the writer creates and the checks read. Anything that is
not a `day=YYYY-MM-DD` directory is left where it is and named in the result.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from serving.served_log.feature_files import day_of, logged_days


@dataclass
class PrunedLog:
    """What one pruning pass did: the days removed (oldest first) with their files and bytes,
    the days kept, the newest day the window was counted from (None: nothing logged), and the
    entries it did not recognise and left alone."""

    removed_days: list[str] = field(default_factory=list)
    removed_files: int = 0
    removed_bytes: int = 0
    kept_days: int = 0
    newest_day: str | None = None
    first_kept_day: str | None = None
    unrecognised: list[str] = field(default_factory=list)


def prune_served_feature_log(directory: Path, retention_days: int) -> PrunedLog:
    """Remove every `day=` directory of `directory` older than its newest day − `retention_days`.
    Running it again removes nothing more; a missing directory is an empty log."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, got {retention_days}")
    result = PrunedLog()
    if not directory.is_dir():
        return result
    result.unrecognised = sorted(entry.name for entry in directory.iterdir() if day_of(entry) is None)
    days = logged_days(directory)
    if not days:
        return result
    newest = days[-1][0]
    first_kept = newest - timedelta(days=retention_days)
    result.newest_day, result.first_kept_day = f"{newest:%Y-%m-%d}", f"{first_kept:%Y-%m-%d}"
    for day, path in days:
        if day >= first_kept:
            result.kept_days += 1
            continue
        files = [item for item in path.rglob("*") if item.is_file()]
        result.removed_files += len(files)
        result.removed_bytes += sum(item.stat().st_size for item in files)
        shutil.rmtree(path)
        result.removed_days.append(f"{day:%Y-%m-%d}")
    return result
