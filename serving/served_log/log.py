"""A worker's served-impression log: /recommend hands it each answer and returns; a background
thread writes the rows to the raw log in batches.

`offer` takes a lock and appends (microseconds): the request never waits for disk, and nothing
here can fail it. Every `flush_seconds` (and once more on `close`) the thread turns the answers
into rows (serving.served_log.rows) and appends them with `EventIntake.append_served`: the raw
log's write lock, its crash-safe files and its dedupe on (request_id, video_id), so a client's
impression event of a served item is the same row, never a second one.

Bounded: it holds at most `max_pending` rows. An answer that would pass the bound is dropped and
counted (`vidrec_served_impressions_dropped_total{reason="queue_full"}`), with a warning at most
once a minute. A write the intake refuses (no raw log yet, the write lock busy past its wait, an
I/O error) keeps its rows for the next flush, so they wait in the bound; rows still unwritten
when `close` has tried once more are dropped and counted (reason "shutdown"). A killed process
loses what it held: the log is best effort, unlike POST /events, which acknowledges.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from serving.events.errors import IntakeRefused
from serving.events.intake import MAX_GROUP_EVENTS, EventIntake
from serving.events.raw_rows import ServedImpression
from serving.served_list import ServedAnswer
from serving.served_log.rows import served_impressions
from serving.serving_metrics import serving_metrics

logger = logging.getLogger(__name__)

WARNING_INTERVAL_SECONDS = 60.0


class RateLimitedWarning:
    """A warning logged at most once per interval, saying how many occurrences it stands for."""

    def __init__(self, interval_seconds: float = WARNING_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._clock = interval_seconds, clock
        self._last: float | None = None
        self._unreported = 0
        self._lock = threading.Lock()

    def warn(self, message: str, *args: object) -> None:
        with self._lock:
            self._unreported += 1
            now = self._clock()
            if self._last is not None and now - self._last < self._interval:
                return
            self._last, occurrences, self._unreported = now, self._unreported, 0
        logger.warning(message + " (%s time(s) since the last such warning)", *args, occurrences)  # noqa: G003 - message is the caller's format string


class ServedImpressionLog:
    """Appends what one worker serves to the raw log under `intake`, in the background."""

    def __init__(self, intake: EventIntake, max_pending: int, flush_seconds: float) -> None:
        if max_pending < 1 or flush_seconds <= 0:
            raise ValueError(f"max_pending must be at least 1 and flush_seconds positive, got {max_pending} "
                             f"and {flush_seconds}")
        self.intake, self.max_pending, self.flush_seconds = intake, max_pending, flush_seconds
        self._lock = threading.Lock()
        self._answers: list[ServedAnswer] = []  # offered, not yet turned into rows
        self._pending_rows = 0  # items of `_answers` plus rows of `_unwritten`: what the bound counts
        self._unwritten: list[ServedImpression] = []  # refused by the intake: retried first
        self._flushing = threading.Lock()  # one flush at a time (the thread's, or a caller's)
        self._closing = False
        self._wake = threading.Event()
        self._dropped_warning = RateLimitedWarning()
        self._refused_warning = RateLimitedWarning()
        self._thread = threading.Thread(target=self._run, name="served-impression-log", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def offer(self, answer: ServedAnswer) -> bool:
        """Hold `answer`'s items for the next flush; False when they were dropped (the bound, or
        closed). Never blocks on the raw log and never raises for it."""
        count = len(answer.response.items)
        with self._lock:
            reason = "shutdown" if self._closing else (
                "queue_full" if self._pending_rows + count > self.max_pending else None)
            if reason is None:
                self._answers.append(answer)
                self._pending_rows += count
                return True
        serving_metrics().served_impressions_dropped.labels(reason=reason).inc(count)
        self._dropped_warning.warn("served-impression log dropped %s item(s) (%s): %s of %s rows are waiting "
                                   "to be written", count, reason, self._pending_rows, self.max_pending)
        return False

    def close(self, timeout_seconds: float = 60.0) -> None:
        """Write what is held (one last try), stop the thread, and count what is left as dropped."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._wake.set()
        self._thread.join(timeout_seconds)
        if self._thread.is_alive():
            logger.error("served-impression log still writing %s s after shutdown began; leaving it", timeout_seconds)
            return
        if self._pending_rows:
            serving_metrics().served_impressions_dropped.labels(reason="shutdown").inc(self._pending_rows)
            logger.warning("served-impression log: %s row(s) not written before shutdown", self._pending_rows)

    # ---- the background thread ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            closing = self._wake.wait(self.flush_seconds)
            try:
                self.flush()
            except Exception:  # the thread must outlive any one failure
                logger.exception("served-impression log: a flush failed")
            if closing:
                return

    def flush(self) -> None:
        """Write every row held now; rows the intake refuses wait for the next flush. The thread
        calls this every `flush_seconds`; a caller may too (it waits for a flush under way)."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            answers, self._answers = self._answers, []
        items = sum(len(answer.response.items) for answer in answers)
        try:
            rows = [row for answer in answers for row in served_impressions(answer)]
        except Exception:
            self._release(items, "error")
            raise
        self._release(items - len(rows), "invalid_id")
        rows, self._unwritten = self._unwritten + rows, []
        for start in range(0, len(rows), MAX_GROUP_EVENTS):
            chunk = rows[start:start + MAX_GROUP_EVENTS]
            try:
                receipt = self.intake.append_served(chunk)
            except IntakeRefused as refusal:  # the raw log cannot be written now: keep them for the next flush
                self._unwritten = rows[start:]
                self._refused_warning.warn("served-impression log: %s row(s) wait, the raw log refused them: %s",
                                           len(self._unwritten), refusal)
                return
            except Exception:  # not the raw log being away: a retry would fail alike, so these go
                self._unwritten = rows[start + len(chunk):]
                self._release(len(chunk), "error")
                raise
            metrics = serving_metrics().served_impressions
            metrics.labels(outcome="logged").inc(receipt.accepted)
            metrics.labels(outcome="duplicate").inc(receipt.duplicates)
            self._release(len(chunk))

    def _release(self, rows: int, dropped_reason: str | None = None) -> None:
        """`rows` no longer held (written, or dropped for `dropped_reason`)."""
        if not rows:
            return
        with self._lock:
            self._pending_rows -= rows
        if dropped_reason is not None:
            serving_metrics().served_impressions_dropped.labels(reason=dropped_reason).inc(rows)
