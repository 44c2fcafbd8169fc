"""What dbt's incremental models recompute in a build, and the record that decides it.

The incremental models (`int_engagement_states`, see `dbt_project/macros/incremental.sql`) keep
the rows of earlier builds stamped before `incremental_from` and compute the rest. Which day that
is comes from the same judgment as the incremental training frames
(orchestration/incremental_frames.py): the digest of the code that computes the marts and one
digest per day of the validated layer's records, against those of the last build that ran the
incremental models over the whole project. So:

* the first build, a change to the dbt models, macros, vars or feature repository, or a record
  that cannot be read: `--full-refresh`, every row recomputed;
* a new day of logs: `incremental_from` = that day;
* a re-judged or removed old day (a backfill): `incremental_from` = the earliest such day;
* nothing changed: `incremental_from` = the day after the last day, so only the rows every
  build recomputes (each user's next request) are.

A build that selects only part of the project including an incremental model (one model clicked
in the UI) may run it over upstream tables (int_watches_enriched) older than the validated layer,
so it forgets the record, and the next whole build refreshes the model fully. So does a build in
the distributed profile, which builds on Spark and leaves the DuckDB warehouse's model as it was.
The record is written only after dbt succeeded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

from orchestration.incremental_frames import NO_DAY_CHANGED, FrameInputs, reusable_before
from orchestration.json_records import write_json_atomically
from vidrec.settings import VidrecSettings

RECORD_FILE = "dbt_incremental_inputs.json"


@dataclass(frozen=True)
class IncrementalBuild:
    """How a dbt build treats its incremental models: `full_refresh`, or rows from
    `incremental_from` ('YYYY-MM-DD') on recomputed; `why` says which and why."""

    full_refresh: bool
    incremental_from: str | None
    why: str

    @property
    def kind(self) -> str:
        return "full refresh" if self.full_refresh else "incremental"

    def cli_args(self) -> list[str]:
        return ["--full-refresh"] if self.full_refresh else []

    def dbt_vars(self) -> dict:
        return {} if self.incremental_from is None else {"incremental_from": self.incremental_from}


def record_path(settings: VidrecSettings) -> Path:
    return settings.home / RECORD_FILE


def plan_build(settings: VidrecSettings, inputs: FrameInputs) -> IncrementalBuild:
    """The build the current inputs call for, given the last whole build's record."""
    if not settings.incremental_marts:
        return IncrementalBuild(True, None, "incremental marts are off (VIDREC_INCREMENTAL_MARTS)")
    if settings.profile == "distributed":
        return IncrementalBuild(False, None, "the distributed profile builds every model whole")
    cutoff, why = reusable_before(read_record(record_path(settings)), inputs)
    if cutoff is None:
        return IncrementalBuild(True, None, why)
    if cutoff == NO_DAY_CHANGED:
        after_last = max((date.fromisoformat(day) for day in inputs.days), default=date(1970, 1, 1)) + timedelta(days=1)
        return IncrementalBuild(False, after_last.isoformat(), why)
    return IncrementalBuild(False, cutoff.date().isoformat(), why)


def read_record(path: Path) -> FrameInputs | None:
    """The inputs a record at `path` holds; None if there is none or it cannot be read."""
    try:
        recorded = json.loads(path.read_text())
        return FrameInputs(code=recorded["code"], days=dict(recorded["days"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none, or unreadable: the next build refreshes fully


def write_record(path: Path, inputs: FrameInputs) -> None:
    """Record what a successful build was computed from (renamed into place)."""
    write_json_atomically(path, asdict(inputs))


def forget_record(path: Path) -> None:
    path.unlink(missing_ok=True)
