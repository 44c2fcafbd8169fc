"""Working out what a request's events add to the raw log, and gathering requests into one batch.

`plan_request` reads the log's index (serving.events.state) and decides, event by event: a
duplicate (logged before, or earlier in the request), a conflict (an id reused for other content:
the whole request is refused, nothing applied), a new impression row, or a change to a playback.
It writes nothing, so a refused request leaves no trace. `BatchWrite` applies planned requests to
the index, in the one transaction of their batch, and builds the batch's files: one new file per
table and day, plus a rewrite of every earlier file holding a playback that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from serving.events.errors import EventConflict
from serving.events.raw_rows import (
    Playback,
    PlaybackEvent,
    PlaybackKey,
    content_digest,
    impression_row,
    raw_time,
    watch_row,
)
from serving.events.schemas import ImpressionEvent
from serving.events.state import IntakeState
from vidrec.schema import IMPRESSIONS, WATCHES, RawTable


def batch_file(table: RawTable, day: str, seq: int) -> str:
    """Where batch `seq` puts its new rows of `table` for `day`, relative to the raw log."""
    return f"{table.name}/day={day}/events-{seq:012d}.parquet"


@dataclass
class RequestPlan:
    """One request's events against the log as it stands (earlier requests of the batch included)."""

    event_digests: list[tuple[str, bytes]] = field(default_factory=list)  # new ids to remember
    accepted: int = 0
    duplicates: int = 0
    impression_rows: list[dict] = field(default_factory=list)
    impression_keys: set[tuple[str, int]] = field(default_factory=set)
    # playback → (as logged before the request or None, after it, the file that holds its row)
    playbacks: dict[PlaybackKey, tuple[Playback | None, Playback, str]] = field(default_factory=dict)

    def changed_playbacks(self) -> list[tuple[PlaybackKey, Playback, str]]:
        return [(key, after, file) for key, (before, after, file) in self.playbacks.items() if before != after]


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
    remembers_events: bool = False
    impression_rows: dict[str, list[dict]] = field(default_factory=dict)  # file → rows
    watch_files: set[str] = field(default_factory=set)  # files holding a new or changed playback

    def apply(self, plan: RequestPlan, state: IntakeState) -> None:
        """Record a planned request in the index (inside the batch's transaction)."""
        state.record_events(self.seq, plan.event_digests)
        state.record_impressions(plan.impression_keys)
        changed = plan.changed_playbacks()
        state.store_playbacks(changed)
        for row in plan.impression_rows:
            day = row["impression_time"].strftime("%Y-%m-%d")
            self.impression_rows.setdefault(batch_file(IMPRESSIONS, day, self.seq), []).append(row)
        self.watch_files.update(file for _, _, file in changed)
        self.accepted += plan.accepted
        self.duplicates += plan.duplicates
        self.remembers_events |= bool(plan.event_digests)

    def tables(self, state: IntakeState) -> dict[str, pa.Table]:
        """Every file the batch creates or rewrites, whole. A rewritten file gets all its playbacks as
        they stand now, so a playback's one row is always the fold of every event logged for it."""
        tables = {file: _arrow(IMPRESSIONS, rows) for file, rows in self.impression_rows.items()}
        for file in sorted(self.watch_files):
            tables[file] = _arrow(WATCHES, [watch_row(key, playback) for key, playback in state.playbacks_in(file)])
        return tables

    def is_new(self, file: str) -> bool:
        return file.endswith(f"-{self.seq:012d}.parquet")


def _arrow(table: RawTable, rows: list[dict]) -> pa.Table:
    """Rows as a table of exactly the raw schema (types, column order), as vidrec.rawlog writes it."""
    return pa.Table.from_pylist(rows, schema=table.schema)
