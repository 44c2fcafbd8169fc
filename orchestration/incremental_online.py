"""Which event-time range a load of the online store covers: the new days only, where that is safe.

The online store keeps each entity's latest feature row. Every feature row depends only on events
before its timestamp (the point-in-time contract the marts are tested for), so after a new day of
logs only rows stamped from that day on can be new or changed, and loading them alone leaves the
same store as loading the whole range: an entity with a new row gets it, the others keep theirs.
Which day that is comes from the judgment the incremental frames and dbt builds use
(orchestration/incremental_frames.py): the feature code's digest and one digest per day of the
validated layer, against those of the last load.

That holds while rows are only added: new days, the day of the last load's last event (its logs
may still have been arriving), and days after it (the last load covered none of their rows:
subscriptions, say, stamped later than the logs, reach no feature view). A backfill that
re-judges an older day may also remove rows (events now quarantined, a corrected file), and an
entity whose rows from that day on all vanished would keep a value loaded from them. So a change
to a day before the last load's last event that the last load saw loads the whole range, as do a
first load, changed feature code, and a registry without an earlier load of every view (a
registry deleted or rebuilt). The record is written after a load succeeded.

One case it cannot see: an online store emptied behind the registry's back (a Redis flushed
without its registry). Load it whole with VIDREC_INCREMENTAL_MARTS=false, or delete the record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from orchestration.incremental_frames import NO_DAY_CHANGED, FrameInputs, reusable_before
from vidrec.settings import VidrecSettings

RECORD_FILE = "online_store_inputs.json"


@dataclass(frozen=True)
class OnlineLoad:
    """Rows stamped from `since` (UTC) on are loaded; None: the whole range. `why` says why."""

    since: pd.Timestamp | None
    why: str


def record_path(settings: VidrecSettings):
    return settings.feast_dir / RECORD_FILE


def views_never_loaded(store: FeatureStore, views: list[str]) -> list[str]:
    """Those of `views` the registry records no load of."""
    return sorted(name for name in views if store.get_feature_view(name).most_recent_end_time is None)


def plan_online_load(settings: VidrecSettings, inputs: FrameInputs, never_loaded: list[str]) -> OnlineLoad:
    """The range the current inputs call for, given the last load's record and the views the
    registry records no load of."""
    if not settings.incremental_marts:
        return OnlineLoad(None, "incremental marts are off (VIDREC_INCREMENTAL_MARTS)")
    if never_loaded:
        return OnlineLoad(None, f"the registry holds no earlier load of {', '.join(never_loaded)}")
    previous, last_event_day = read_load_record(record_path(settings))
    cutoff, why = reusable_before(previous, inputs)
    if cutoff is None:
        return OnlineLoad(None, why)
    if cutoff == NO_DAY_CHANGED:
        return OnlineLoad(pd.Timestamp(last_event_day, tz="UTC"), why)  # the same rows again: the same store
    rejudged = sorted(day for day in previous.days
                      if previous.days[day] != inputs.days.get(day) and day < last_event_day)
    if rejudged:
        return OnlineLoad(None, f"{why}; {rejudged[0]} was loaded before and re-judged, so rows may have vanished")
    return OnlineLoad(cutoff, why)


def read_load_record(path: Path) -> tuple[FrameInputs | None, str]:
    """The inputs of the last load and the day ('YYYY-MM-DD') of its last event."""
    try:
        recorded = json.loads(path.read_text())
        return FrameInputs(code=recorded["code"], days=dict(recorded["days"])), str(recorded["last_event_day"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""  # none, or unreadable: load the whole range


def write_load_record(path: Path, inputs: FrameInputs, last_event: pd.Timestamp) -> None:
    """Record what a successful load covered (renamed into place)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({**asdict(inputs), "last_event_day": last_event.date().isoformat()},
                                  indent=1, sort_keys=True))
    partial.replace(path)
