"""The machinery every served log shares: /recommend hands it an answer and returns; a background
thread turns held answers into rows and writes them in batches.

`offer` takes a lock and appends (microseconds): the request never waits for disk, and nothing
here can fail it. Every `flush_seconds` (and once more on `close`) the thread turns the answers
into rows (`rows_of`) and writes them (`write`), `chunk_rows` at a time.

Bounded: it holds at most `max_pending` rows. An answer that would pass the bound is dropped and
counted (`dropped_counter`, reason "queue_full"), with a warning at most once a minute. A write
that raises one of `retryable` (the destination is away for now) keeps its rows for the next
flush, so they wait in the bound; rows still unwritten when `close` has tried once more are
dropped and counted (reason "shutdown"). A killed process loses what it held: best effort.

Subclasses say what a row is, how many an answer makes and where rows go
(serving.served_log.log for the raw impressions, serving.served_log.feature_log for the
ranker's inputs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from serving.served_list import ServedAnswer

logger = logging.getLogger(__name__)

WARNING_INTERVAL_SECONDS = 60.0
Row = TypeVar("Row")


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


class BackgroundRowLog(Generic[Row]):
    """Answers offered by request threads, written as rows by one background thread."""

    # what the log writes, for thread names and messages ("served-impression log")
    name = "served log"
    # write errors after which the same rows may succeed later: kept, not dropped
    retryable: tuple[type[BaseException], ...] = ()
    chunk_rows = 1_000
    destination = "their destination"  # for the warning when writes are refused

    def __init__(self, max_pending: int, flush_seconds: float) -> None:
        if max_pending < 1 or flush_seconds <= 0:
            raise ValueError(f"max_pending must be at least 1 and flush_seconds positive, got {max_pending} "
                             f"and {flush_seconds}")
        self.max_pending, self.flush_seconds = max_pending, flush_seconds
        self._lock = threading.Lock()
        self._answers: list[ServedAnswer] = []  # offered, not yet turned into rows
        self._pending_rows = 0  # rows of `_answers` plus rows of `_unwritten`: what the bound counts
        self._unwritten: list[Row] = []  # refused by the destination: retried first
        self._flushing = threading.Lock()  # one flush at a time (the thread's, or a caller's)
        self._closing = False
        self._wake = threading.Event()
        self._dropped_warning = RateLimitedWarning()
        self._refused_warning = RateLimitedWarning()
        self._thread = threading.Thread(target=self._run, name=self.name.replace(" ", "-"), daemon=True)
        self._thread.start()

    # ---- what a subclass says ---------------------------------------------------------------
    def row_count(self, answer: ServedAnswer) -> int:
        """The rows `answer` will make at most (what the bound counts); 0: nothing to log."""
        raise NotImplementedError

    def rows_of(self, answer: ServedAnswer) -> list[Row]:
        """The rows of `answer` (at most `row_count(answer)`; those left out count as invalid)."""
        raise NotImplementedError

    def write(self, rows: list[Row]) -> None:
        """Write one chunk; raise one of `retryable` to keep it for the next flush."""
        raise NotImplementedError

    def count_dropped(self, reason: str, rows: int) -> None:
        """Count rows that will never be written (a metric), by reason."""
        raise NotImplementedError

    # ---- the request side -------------------------------------------------------------------
    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def offer(self, answer: ServedAnswer) -> bool:
        """Hold `answer` for the next flush; False when its rows were dropped (the bound, or
        closed) or it has none. Never blocks on the destination and never raises for it."""
        count = self.row_count(answer)
        if count == 0:
            return False
        with self._lock:
            reason = "shutdown" if self._closing else (
                "queue_full" if self._pending_rows + count > self.max_pending else None)
            if reason is None:
                self._answers.append(answer)
                self._pending_rows += count
                return True
        self.count_dropped(reason, count)
        self._dropped_warning.warn("%s dropped %s row(s) (%s): %s of %s rows are waiting to be written",
                                   self.name, count, reason, self._pending_rows, self.max_pending)
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
            logger.error("%s still writing %s s after shutdown began; leaving it", self.name, timeout_seconds)
            return
        if self._pending_rows:
            self.count_dropped("shutdown", self._pending_rows)
            logger.warning("%s: %s row(s) not written before shutdown", self.name, self._pending_rows)

    # ---- the background thread --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            closing = self._wake.wait(self.flush_seconds)
            try:
                self.flush()
            except Exception:  # the thread must outlive any one failure
                logger.exception("%s: a flush failed", self.name)
            if closing:
                return

    def flush(self) -> None:
        """Write every row held now; rows the destination refuses wait for the next flush. The
        thread calls this every `flush_seconds`; a caller may too (it waits for a flush under way)."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            answers, self._answers = self._answers, []
        held = sum(self.row_count(answer) for answer in answers)
        try:
            rows = [row for answer in answers for row in self.rows_of(answer)]
        except Exception:
            self._release(held, "error")
            raise
        self._release(held - len(rows), "invalid_id")
        rows, self._unwritten = self._unwritten + rows, []
        for start in range(0, len(rows), self.chunk_rows):
            chunk = rows[start:start + self.chunk_rows]
            try:
                self.write(chunk)
            except self.retryable as refusal:  # away for now: keep them for the next flush
                self._unwritten = rows[start:]
                self._refused_warning.warn("%s: %s row(s) wait, %s refused them: %s",
                                           self.name, len(self._unwritten), self.destination, refusal)
                return
            except Exception:  # not the destination being away: a retry would fail alike, so these go
                self._unwritten = rows[start + len(chunk):]
                self._release(len(chunk), "error")
                raise
            self._release(len(chunk))

    def _release(self, rows: int, dropped_reason: str | None = None) -> None:
        """`rows` no longer held (written, or dropped for `dropped_reason`)."""
        if not rows:
            return
        with self._lock:
            self._pending_rows -= rows
        if dropped_reason is not None:
            self.count_dropped(dropped_reason, rows)
