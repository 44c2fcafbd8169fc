"""Working out what a request's events add to the raw log, and gathering requests into one batch.

`plan_request` reads the log's index (serving.events.state) and decides, event by event: a
duplicate (logged before, or earlier in the request), a conflict (an id reused for other content:
the whole request is refused, nothing applied), a new impression row, or a change to a playback.
`plan_served` does the same for the rows the service logged of what it served: a duplicate, a new
row, or the completion of a client's row of the same impression logged before it (see
serving.events.raw_rows). Neither writes, so a refused request leaves no trace. `BatchWrite`
applies planned requests to the index, in the one transaction of their batch, and builds the
batch's files: one new file per table and day, plus a rewrite of every earlier file holding a
playback that changed or an impression row the service completed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from serving.events.errors import EventConflict
from serving.events.raw_rows import (
    Playback,
    PlaybackEvent,
    PlaybackKey,
    ServedImpression,
    completed_row,
    content_digest,
    impression_row,
    raw_time,
    watch_row,
)
from serving.events.schemas import ImpressionEvent
from serving.events.state import IntakeState, LoggedImpression
from vidrec.schema import IMPRESSIONS, WATCHES, RawTable

logger = logging.getLogger(__name__)

ImpressionKey = tuple[str, int]  # (request_id, video_id)


def batch_file(table: RawTable, day: str, seq: int) -> str:
    """Where batch `seq` puts its new rows of `table` for `day`, relative to the raw log."""
    return f"{table.name}/day={day}/events-{seq:012d}.parquet"


def is_batch_file(file: str, seq: int) -> bool:
    """Whether `file` is one batch `seq` creates (not an earlier batch's, which it would rewrite)."""
    return file.endswith(f"-{seq:012d}.parquet")


@dataclass
class RequestPlan:
    """One request's events against the log as it stands (earlier requests of the batch included)."""

    event_digests: list[tuple[str, bytes]] = field(default_factory=list)  # new ids to remember
    accepted: int = 0
    duplicates: int = 0
    served: bool = False  # the service's own rows (plan_served), not client events
    impression_rows: list[dict] = field(default_factory=list)
    impression_keys: set[ImpressionKey] = field(default_factory=set)
    # a client's impression the service's row completes → (the file holding the client's row, that row)
    completions: dict[ImpressionKey, tuple[str, ServedImpression]] = field(default_factory=dict)
    # playback → (as logged before the request or None, after it, the file that holds its row)
    playbacks: dict[PlaybackKey, tuple[Playback | None, Playback, str]] = field(default_factory=dict)

    def changed_playbacks(self) -> list[tuple[PlaybackKey, Playback, str]]:
        return [(key, after, file) for key, (before, after, file) in self.playbacks.items() if before != after]

    @property
    def logs_anything(self) -> bool:
        """Whether the batch must be recorded for this request: new event ids or new rows."""
        return bool(self.event_digests) or self.accepted > 0


def plan_request(events: Sequence[ImpressionEvent | PlaybackEvent], state: IntakeState, seq: int) -> RequestPlan:
    """What `events` add to the log if written as (part of) batch `seq`; raises `EventConflict`."""
    plan = RequestPlan()
    logged = state.logged_digests(event.event_id for event in events)
    seen: dict[str, bytes] = {}
    for index, event in enumerate(events):
        digest = content_digest(event)
        earlier = seen.get(event.event_id, logged.get(event.event_id))
        if earlier is not None:
            if earlier != digest:
                raise EventConflict(_conflict_message(index, event.event_id, event.event_id in seen))
            plan.duplicates += 1
            continue
        seen[event.event_id] = digest
        plan.event_digests.append((event.event_id, digest))
        if isinstance(event, ImpressionEvent):
            _plan_impression(plan, event, state)
        else:
            _plan_playback(plan, event, state, seq)
    return plan


def plan_served(impressions: Sequence[ServedImpression], state: IntakeState, seq: int, raw_dir: Path) -> RequestPlan:
    """What the service's rows add to the log if written as (part of) batch `seq`: each is new, a
    duplicate (its key logged with the service's record, or earlier in the request), or completes
    a client's row logged before it. A client row whose file is unknown (logged by an intake that
    did not remember files) or gone (a re-import replaced the table) stays as it is."""
    plan = RequestPlan(served=True)
    for served in impressions:
        key = served.key
        if key in plan.impression_keys or key in plan.completions:
            plan.duplicates += 1  # the same item twice in one request
            continue
        logged = state.impression(*key)
        if logged is not None and logged.served:
            plan.duplicates += 1
        elif logged is None:
            plan.impression_rows.append(dict(served.row))
            plan.impression_keys.add(key)
            plan.accepted += 1
        elif logged.file is not None and (is_batch_file(logged.file, seq) or (raw_dir / logged.file).exists()):
            plan.completions[key] = (logged.file, served)
            plan.accepted += 1
        else:
            logger.warning("served impression %s: a client's row of it was logged, but its file %s is unknown "
                           "or gone; left as it is", key, logged.file)
            plan.duplicates += 1
    return plan


def _plan_impression(plan: RequestPlan, event: ImpressionEvent, state: IntakeState) -> None:
    key = (event.request_id, event.video_id)
    if key in plan.impression_keys or state.impression_logged(*key):
        plan.duplicates += 1  # the same impression under another event id: the log holds it once
        return
    plan.impression_rows.append(impression_row(event))
    plan.impression_keys.add(key)
    plan.accepted += 1


def _plan_playback(plan: RequestPlan, event: PlaybackEvent, state: IntakeState, seq: int) -> None:
    key = PlaybackKey.of(event)
    if key not in plan.playbacks:
        logged = state.playback(key)
        if logged is None:
            day = raw_time(event.watch_time).strftime("%Y-%m-%d")
            plan.playbacks[key] = (None, Playback(), batch_file(WATCHES, day, seq))
        else:
            playback, file = logged
            plan.playbacks[key] = (playback, playback, file)
    before, current, file = plan.playbacks[key]
    plan.playbacks[key] = (before, current.folded(event), file)
    plan.accepted += 1


def _conflict_message(index: int, event_id: str, within_request: bool) -> str:
    where = "earlier in this batch" if within_request else "in an earlier batch"
    return (
        f"events.{index}.event_id: {event_id!r} was already sent {where} with different content; "
        "an event id names one event: resend it unchanged, or give a new event a new id"
    )


@dataclass
class BatchWrite:
    """Requests written together as batch `seq`: one transaction, one set of files, one fsync each."""

    seq: int
    accepted: int = 0
    duplicates: int = 0
    logs_anything: bool = False
    impression_rows: dict[str, list[dict]] = field(default_factory=dict)  # file → rows
    # an earlier batch's impressions file → the rows the service completes in it, by key
    completed_impressions: dict[str, dict[ImpressionKey, ServedImpression]] = field(default_factory=dict)
    watch_files: set[str] = field(default_factory=set)  # files holding a new or changed playback

    def apply(self, plan: RequestPlan, state: IntakeState) -> None:
        """Record a planned request in the index (inside the batch's transaction)."""
        state.record_events(self.seq, plan.event_digests)
        logged = []
        for row in plan.impression_rows:
            file = batch_file(IMPRESSIONS, row["impression_time"].strftime("%Y-%m-%d"), self.seq)
            self.impression_rows.setdefault(file, []).append(row)
            logged.append(((row["request_id"], row["video_id"]), LoggedImpression(file, plan.served)))
        for key, (file, served) in plan.completions.items():
            self._complete(file, key, served)
            logged.append((key, LoggedImpression(file, True)))
        state.record_impressions(logged)
        changed = plan.changed_playbacks()
        state.store_playbacks(changed)
        self.watch_files.update(file for _, _, file in changed)
        self.accepted += plan.accepted
        self.duplicates += plan.duplicates
        self.logs_anything |= plan.logs_anything

    def _complete(self, file: str, key: ImpressionKey, served: ServedImpression) -> None:
        """Complete a client's row with the service's: in this batch's rows if it is one of them,
        else when `tables` rewrites its earlier file."""
        if not self.is_new(file):
            self.completed_impressions.setdefault(file, {})[key] = served
            return
        rows = self.impression_rows[file]
        index = next(index for index, row in enumerate(rows) if (row["request_id"], row["video_id"]) == key)
        rows[index] = completed_row(rows[index], served)

    def tables(self, state: IntakeState, raw_dir: Path) -> dict[str, pa.Table]:
        """Every file the batch creates or rewrites, whole. A rewritten file gets all its playbacks as
        they stand now, so a playback's one row is always the fold of every event logged for it; an
        impressions file, its rows as read from the log with the completed ones completed."""
        tables = {file: _arrow(IMPRESSIONS, rows) for file, rows in self.impression_rows.items()}
        for file, completed in sorted(self.completed_impressions.items()):
            rows = pq.read_table(raw_dir / file, schema=IMPRESSIONS.schema).to_pylist()
            tables[file] = _arrow(IMPRESSIONS, [
                completed_row(row, completed[key])
                if (key := (row["request_id"], row["video_id"])) in completed else row
                for row in rows
            ])
        for file in sorted(self.watch_files):
            tables[file] = _arrow(WATCHES, [watch_row(key, playback) for key, playback in state.playbacks_in(file)])
        return tables

    def is_new(self, file: str) -> bool:
        return is_batch_file(file, self.seq)


def _arrow(table: RawTable, rows: list[dict]) -> pa.Table:
    """Rows as a table of exactly the raw schema (types, column order), as vidrec.rawlog writes it."""
    return pa.Table.from_pylist(rows, schema=table.schema)
