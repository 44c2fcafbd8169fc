"""Which event-time range a load of the online store covers: the changed days only, where that is safe.

The online store keeps each entity's latest feature row. Every feature row depends only on events
before its timestamp (the point-in-time contract the marts are tested for), so after a new day of
logs only rows stamped from that day on can be new or changed, and loading them alone leaves the
same store as loading the whole range: an entity with a new row gets it, the others keep theirs.
Which day that is comes from the judgment the incremental frames and dbt builds use
(orchestration/incremental_frames.py): the feature code's digest and one digest per day of the
validated layer, against those of the last load.

That holds while rows are only added. A changed day the last load saw is *grown* when the raw
files it was judged from are still there unchanged (path, size, modification time), with more
beside them, and the catalogue and rules it was judged against are the same: a new day's served
log arriving, say, or more watches on the day the last load ended in. Any other change to such a
day (a corrected or removed raw file, a re-judgment) may remove rows, and an entity whose newest
rows vanished would keep a value loaded from them; so it loads the whole range, as do a first
load, changed feature code, another online store than the last load's (a profile or Redis URL
switched), and a registry without an earlier load of every view (a registry deleted or rebuilt).
The record is written after a load succeeded.

Not seen: an online store emptied behind the registry's back (a Redis flushed without its
registry): load it whole once with VIDREC_INCREMENTAL_MARTS=false, or delete the record. A whole
load replaces a vanished newest row with the entity's new latest one on Redis too (its store
writes without Feast's newer-than-stored check: feature_repo/store.py); an entity whose rows all
vanished keeps its last value in either store until it has a row again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from orchestration.assets.validated_files import RECORD_FILE
from orchestration.incremental_frames import NO_DAY_CHANGED, FrameInputs, reusable_before
from orchestration.json_records import write_json_atomically
from orchestration.partitions import PARTITIONED_TABLES, day_directories
from vidrec.settings import VidrecSettings

LOAD_RECORD_FILE = "online_store_inputs.json"


@dataclass(frozen=True)
class OnlineLoad:
    """Rows stamped from `since` (UTC) on are loaded; None: the whole range. `why` says why."""

    since: pd.Timestamp | None
    why: str


@dataclass(frozen=True)
class DaySources:
    """What a day's validated records were judged from: its raw files ('path size mtime') and a
    digest of what they were judged against (the catalogue and the rules)."""

    files: tuple[str, ...]
    judged_against: str

    def grown_from(self, earlier: DaySources) -> bool:
        """Only rows added since `earlier`: the same judgment over the same files and more."""
        return self.judged_against == earlier.judged_against and set(earlier.files) <= set(self.files)


@dataclass(frozen=True)
class LoadRecord:
    """What the last load covered: the inputs' digests, each day's sources, and the online store."""

    inputs: FrameInputs
    sources: dict[str, DaySources]
    online_store: str


def record_path(settings: VidrecSettings) -> Path:
    return settings.feast_dir / LOAD_RECORD_FILE


def online_store_identity(settings: VidrecSettings) -> str:
    """Which store a load wrote to: Redis's URL in production, the SQLite file otherwise."""
    if settings.profile == "production":
        return f"redis {settings.redis_url}"
    return f"sqlite {settings.feast_dir / 'online_store.db'}"


def day_sources(settings: VidrecSettings) -> dict[str, DaySources]:
    """Each validated day's sources, over every event table."""
    files: dict[str, list[str]] = {}
    against: dict[str, set[str]] = {}
    for table in PARTITIONED_TABLES:
        for day, directory in day_directories(settings.validated_dir / table).items():
            try:
                record = json.loads((directory / RECORD_FILE).read_text())
                judged = [f"{path} {size} {mtime}" for path, size, mtime in record["raw_files"]]
                basis = json.dumps([record["catalog"], record["rules"]], sort_keys=True)
            except (OSError, ValueError, KeyError, TypeError):
                judged, basis = [f"{table}: unjudged"], f"{table}: unjudged"
            files.setdefault(day, []).extend(judged)
            against.setdefault(day, set()).add(hashlib.sha256(basis.encode()).hexdigest())
    return {day: DaySources(tuple(sorted(files[day])), ",".join(sorted(against[day]))) for day in files}


def views_never_loaded(store: FeatureStore, views: list[str]) -> list[str]:
    """Those of `views` the registry records no load of."""
    return sorted(name for name in views if store.get_feature_view(name).most_recent_end_time is None)


def plan_online_load(settings: VidrecSettings, inputs: FrameInputs, sources: dict[str, DaySources],
                     never_loaded: list[str]) -> OnlineLoad:
    """The range the current inputs call for, given the last load's record and the views the
    registry records no load of."""
    if not settings.incremental_marts:
        return OnlineLoad(None, "incremental marts are off (VIDREC_INCREMENTAL_MARTS)")
    if never_loaded:
        return OnlineLoad(None, f"the registry holds no earlier load of {', '.join(never_loaded)}")
    previous = read_load_record(record_path(settings))
    if previous is not None and previous.online_store != online_store_identity(settings):
        return OnlineLoad(None, f"the last load went to another online store ({previous.online_store})")
    cutoff, why = reusable_before(None if previous is None else previous.inputs, inputs)
    if cutoff is None:
        return OnlineLoad(None, why)
    if cutoff == NO_DAY_CHANGED:
        return OnlineLoad(pd.Timestamp(max(inputs.days), tz="UTC") if inputs.days else None, why)
    not_grown = sorted(day for day, earlier in previous.sources.items()
                       if day not in sources or not sources[day].grown_from(earlier))
    if not_grown:
        return OnlineLoad(None, f"{why}; {not_grown[0]} lost or changed raw files or was judged anew, "
                                f"so rows may have vanished")
    return OnlineLoad(cutoff, why)


def read_load_record(path: Path) -> LoadRecord | None:
    """The last load's record; None if there is none or it cannot be read (load the whole range)."""
    try:
        recorded = json.loads(path.read_text())
        return LoadRecord(
            inputs=FrameInputs(code=recorded["inputs"]["code"], days=dict(recorded["inputs"]["days"])),
            sources={day: DaySources(tuple(source["files"]), source["judged_against"])
                     for day, source in recorded["sources"].items()},
            online_store=str(recorded["online_store"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_load_record(path: Path, record: LoadRecord) -> None:
    """Record what a successful load covered (renamed into place)."""
    write_json_atomically(path, asdict(record))
