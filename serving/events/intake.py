"""The durable, idempotent, bounded append behind POST /events and the served-impression log.

A request is acknowledged (`append` returns) only once its batch is committed to SQLite and its
rows are in the raw log's Parquet files, all fsynced. The files are the raw log as the importers
write it (vidrec.schema, day partitions: serving.events.raw_rows says how each event kind maps);
SQLite (serving.events.state) remembers which events, impressions and playbacks the log holds.

- **Idempotent**: an event id already logged is a duplicate and writes nothing, whichever worker
  logged it; an id reused for other content refuses the request (409) rather than keep either.
- **One writer at a time**: a batch, from reading the index to showing its files, holds the raw
  log's write lock (`_events/write.lock`, flock, across every worker process), and its index
  changes are one SQLite transaction.
- **Group commit**: requests that arrive while a batch is being written wait, and the next writer
  takes all of them (up to `MAX_GROUP_EVENTS`) as one batch: one transaction, one new file per
  table and day, one fsync each, however many clients send at once.
- **Crash-safe**: files are written under hidden names, committed, then renamed into place;
  serving.events.durable_files has the steps and what follows a kill at each.
- **Bounded**: a worker holding more than `max_pending_events` events not yet written refuses a
  request with 429; a request that cannot start writing within `lock_wait_seconds` gets 503; both
  say when to retry, and neither logs any of the request. Nothing acknowledged is dropped.

The service's own rows of what it served (serving.served_log) come in through `append_served`:
the same queue, group commit, write lock and files, keyed by (request_id, video_id) with no event
id, so a client's impression event of a served item is a duplicate (or, logged first, is completed
by the service's row: serving.events.raw_rows). The served log bounds what it holds itself, so its
rows never count against `max_pending_events` and never make a client's request wait for room.

New files are `<table>/day=YYYY-MM-DD/events-<seq>.parquet`, `<seq>` the batch's number;
`committed_batches` lists every batch with the files it created or rewrote: a sensor's cursor.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from serving.events import durable_files
from serving.events.errors import EventConflict, IntakeBacklogFull, IntakeUnavailable
from serving.events.planning import BatchWrite, RequestPlan, plan_request, plan_served
from serving.events.raw_rows import PlaybackEvent, ServedImpression
from serving.events.schemas import MAX_EVENTS_PER_BATCH, EventsAccepted, ImpressionEvent
from serving.events.state import DATABASE_NAME, BatchRecord, IntakeState, state_dir
from vidrec.rawlog import MANIFEST_NAME

logger = logging.getLogger(__name__)

LOCK_NAME = "write.lock"
# The most events one batch takes from the queue: bounds a batch's transaction and files.
MAX_GROUP_EVENTS = 5 * MAX_EVENTS_PER_BATCH
# A starting worker waits this long for another's batch before giving up (a batch takes milliseconds).
STARTUP_LOCK_WAIT_SECONDS = 60.0

Events = Sequence[ImpressionEvent | PlaybackEvent]


@dataclass(frozen=True)
class IntakeLimits:
    """How much a worker holds before refusing, and what it tells the client to do then."""

    max_pending_events: int = 20_000  # events of requests waiting in this worker (queued or writing)
    lock_wait_seconds: float = 5.0  # how long a request may wait to start writing (all workers)
    retry_after_seconds: int = 1  # the Retry-After of a 429 or 503

    def __post_init__(self) -> None:
        if self.max_pending_events < MAX_EVENTS_PER_BATCH:
            raise ValueError(
                f"max_pending_events={self.max_pending_events} would refuse a full request forever: "
                f"expected at least {MAX_EVENTS_PER_BATCH} (MAX_EVENTS_PER_BATCH)"
            )


@dataclass(frozen=True)
class Receipt:
    """What one request did: `seq` is the batch that logged it, None when all its events were duplicates."""

    seq: int | None
    accepted: int
    duplicates: int

    def response(self) -> EventsAccepted:
        return EventsAccepted(accepted=self.accepted, duplicates=self.duplicates)


@dataclass
class _Request:
    """A request waiting in this worker for a batch to write it: client events, or the service's own
    served impressions (`served`)."""

    events: Events | Sequence[ServedImpression]
    served: bool = False
    taken: bool = False  # a writer has it: it will be written or refused, whatever the deadline
    receipt: Receipt | None = None
    error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.receipt is not None or self.error is not None

    def outcome(self) -> Receipt:
        if self.error is not None:
            raise self.error
        assert self.receipt is not None, "outcome() of a request no batch has finished"
        return self.receipt


class EventIntake:
    """Appends event batches to the raw log under `raw_dir`; one per worker process, shared by its threads.

    `fault(step)`, called between the steps of a write, exists for tests to kill the process there.
    """

    def __init__(self, raw_dir: Path, limits: IntakeLimits = IntakeLimits(),
                 fault=durable_files.no_fault) -> None:
        self.raw_dir, self.limits, self._fault = Path(raw_dir), limits, fault
        self.state_dir = state_dir(self.raw_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        with self._write_lock(time.monotonic() + STARTUP_LOCK_WAIT_SECONDS):
            # Creating the database and switching it to WAL need SQLite's exclusive lock, which it
            # refuses at once (no busy wait) while another worker opens it: open under the lock.
            self._state = IntakeState(self.state_dir / DATABASE_NAME, limits.lock_wait_seconds)
            self._recover_at_start()
        self._condition = threading.Condition()
        self._queue: list[_Request] = []
        self._writing = False
        self._pending_lock = threading.Lock()
        self._pending_events = 0

    def close(self) -> None:
        self._state.close()
        os.close(self._lock_file)

    # ---- admission: the bound on what a worker holds ------------------------------------
    def submit(self, events: Events) -> Receipt:
        """Admit the request (429 past the bound) and append it: the whole path of POST /events."""
        with self.admitted(len(events)):
            return self.append(events)

    @contextmanager
    def admitted(self, event_count: int) -> Iterator[None]:
        """Count `event_count` events as pending while the block runs, or refuse them (429) past the bound."""
        with self._pending_lock:
            pending = self._pending_events
            if pending + event_count > self.limits.max_pending_events:
                raise IntakeBacklogFull(
                    f"event intake backed up: {pending} events are waiting to be written and "
                    f"{event_count} more would pass the limit of {self.limits.max_pending_events}; "
                    f"retry after {self.limits.retry_after_seconds} s",
                    self.limits.retry_after_seconds,
                )
            self._pending_events += event_count
        try:
            yield
        finally:
            with self._pending_lock:
                self._pending_events -= event_count

    @property
    def pending_events(self) -> int:
        return self._pending_events

    # ---- the queue: whoever finds no batch being written writes everyone's -------------
    def append(self, events: Events) -> Receipt:
        """Log `events` durably and once each; returns only when they are in the raw log.

        Raises `EventConflict` (409) or `IntakeUnavailable` (503: the write lock stayed busy, the
        raw log is missing or a write failed); a refused request logged none of its events.
        """
        return self._append(_Request(events))

    def append_served(self, impressions: Sequence[ServedImpression]) -> Receipt:
        """Log rows the service built of what it served, durably and once per (request_id, video_id);
        returns only when they are in the raw log. `duplicates` counts rows whose impression was
        logged with the service's record before. Raises `IntakeUnavailable` as `append` does (a
        refused call logged none of its rows), never `EventConflict`: there are no event ids."""
        return self._append(_Request(impressions, served=True))

    def _append(self, request: _Request) -> Receipt:
        deadline = time.monotonic() + self.limits.lock_wait_seconds
        with self._condition:
            self._queue.append(request)
        while (batch := self._wait_for_turn(request, deadline)) is not None:
            self._write(batch, deadline)
        return request.outcome()

    def _wait_for_turn(self, request: _Request, deadline: float) -> list[_Request] | None:
        """The requests to write now, when it is this thread's turn; None once `request` is finished."""
        with self._condition:
            while not request.finished:
                if not self._writing:
                    self._writing = True
                    return self._take_batch()
                remaining = deadline - time.monotonic()
                if request.taken:
                    self._condition.wait()
                elif remaining > 0:
                    self._condition.wait(remaining)
                else:
                    self._queue.remove(request)
                    request.error = self._busy()
            return None

    def _take_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        events = 0
        while self._queue and (not batch or events + len(self._queue[0].events) <= MAX_GROUP_EVENTS):
            request = self._queue.pop(0)
            request.taken = True
            batch.append(request)
            events += len(request.events)
        return batch

    def _write(self, batch: list[_Request], deadline: float) -> None:
        """Write `batch` as one, giving each request its receipt or error; then let the next writer go."""
        try:
            with self._write_lock(deadline):
                self._state.begin()
                try:
                    self._write_in_transaction(batch)
                finally:
                    self._state.rollback_if_open()  # only if something failed before the commit
        except BaseException as error:  # noqa: BLE001 - whatever stopped the write is each waiting request's answer
            for request in batch:
                if not request.finished:
                    request.error = error
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()

    @contextmanager
    def _write_lock(self, deadline: float) -> Iterator[None]:
        """The raw log's one writer across processes (flock), waited for until `deadline` (then 503).

        It polls every millisecond rather than blocking, so the wait stays bounded even if the
        holder hangs; the kernel releases a dead holder's lock.
        """
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._busy() from None
                time.sleep(0.001)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _busy(self) -> IntakeUnavailable:
        return IntakeUnavailable(
            f"event intake busy: the raw log's write lock stayed held for {self.limits.lock_wait_seconds} s; "
            f"retry after {self.limits.retry_after_seconds} s",
            self.limits.retry_after_seconds,
        )

    # ---- one batch, under the write lock and in one transaction --------------------------
    def _write_in_transaction(self, batch: list[_Request]) -> None:
        self._require_raw_log()
        unpublished = self._publish_unpublished()
        write = BatchWrite(self._state.next_seq())
        plans: dict[int, RequestPlan] = {}  # by position in `batch`; a conflicting request has none
        for position, request in enumerate(batch):
            try:
                plans[position] = (plan_served(request.events, self._state, write.seq, self.raw_dir) if request.served
                                   else plan_request(request.events, self._state, write.seq))
            except EventConflict as conflict:
                request.error = conflict
                continue
            write.apply(plans[position], self._state)
        try:
            tables = write.tables(self._state, self.raw_dir)  # reads the impressions files it completes
        except OSError as error:
            raise self._write_failed(write.seq, error) from error
        try:
            durable_files.stage(write.seq, tables, self.raw_dir, self._fault)
            durable_files.sync_directories(durable_files.directories_of(
                [file for record in unpublished for file in record.files] + list(tables), self.raw_dir))
        except OSError as error:
            durable_files.discard(write.seq, tables, self.raw_dir)
            raise self._write_failed(write.seq, error) from error
        self._state.mark_published(record.seq for record in unpublished)
        if write.logs_anything:
            created = tuple(sorted(file for file in tables if write.is_new(file)))
            replaced = tuple(sorted(file for file in tables if not write.is_new(file)))
            self._state.record_batch(write.seq, write.accepted, write.duplicates, created, replaced)
        self._fault("before_commit")
        self._state.commit()
        self._fault("committed")
        try:
            durable_files.publish(write.seq, tables, self.raw_dir, self._fault)
        except OSError as error:  # committed: the next batch publishes it
            raise self._write_failed(write.seq, error) from error
        for position, plan in plans.items():
            batch[position].receipt = Receipt(write.seq if plan.logs_anything else None, plan.accepted, plan.duplicates)
        logger.debug("events batch %s: %s requests, %s accepted, %s duplicates",
                     write.seq, len(batch), write.accepted, write.duplicates)

    def _publish_unpublished(self) -> list[BatchRecord]:
        """Rename the files of batches committed but maybe not shown (a kill, a power cut); the caller
        syncs their directories and marks them published in its own commit."""
        unpublished = self._state.unpublished_batches()
        for record in unpublished:
            durable_files.publish(record.seq, record.files, self.raw_dir)
        return unpublished

    def _write_failed(self, seq: int, error: Exception) -> IntakeUnavailable:
        logger.error("events batch %s not written: %s: %s", seq, type(error).__name__, error)
        return IntakeUnavailable(
            f"event intake could not write the raw log ({type(error).__name__}: {error}); "
            f"retry after {self.limits.retry_after_seconds} s",
            self.limits.retry_after_seconds,
        )

    def _require_raw_log(self) -> None:
        """Refuse until the pipeline (or an import) has created the raw log: the raw asset simulates
        into a directory without a manifest, replacing the tables, and would delete appended events."""
        if not (self.raw_dir / MANIFEST_NAME).exists():
            raise IntakeUnavailable(
                f"no raw log under {self.raw_dir} yet ({MANIFEST_NAME} missing): run the pipeline "
                f"or an import first; retry after {self.limits.retry_after_seconds} s",
                self.limits.retry_after_seconds,
            )

    def _recover_at_start(self) -> None:
        """A starting worker shows what a killed one committed and deletes what it never committed
        (called holding the write lock, so no other batch is half written)."""
        self._state.begin()
        try:
            unpublished = self._publish_unpublished()
            durable_files.sync_directories(durable_files.directories_of(
                [file for record in unpublished for file in record.files], self.raw_dir))
            self._state.mark_published(record.seq for record in unpublished)
            self._state.commit()
        finally:
            self._state.rollback_if_open()
        durable_files.remove_orphans(self.raw_dir)
