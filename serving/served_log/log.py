"""A worker's served-impression log: /recommend hands it each answer and returns; a background
thread (serving.served_log.background) writes the rows to the raw log in batches.

The thread turns the answers into rows (serving.served_log.rows) and appends them with
`EventIntake.append_served`: the raw log's write lock, its crash-safe files and its dedupe on
(request_id, video_id), so a client's impression event of a served item is the same row, never
a second one.

Bounded: it holds at most `max_pending` rows. An answer that would pass the bound is dropped and
counted (`vidrec_served_impressions_dropped_total{reason="queue_full"}`), with a warning at most
once a minute. A write the intake refuses (no raw log yet, the write lock busy past its wait, an
I/O error) keeps its rows for the next flush, so they wait in the bound; rows still unwritten
when `close` has tried once more are dropped and counted (reason "shutdown"). A killed process
loses what it held: the log is best effort, unlike POST /events, which acknowledges.
"""

from __future__ import annotations

from serving.events.errors import IntakeRefused
from serving.events.intake import MAX_GROUP_EVENTS, EventIntake
from serving.events.raw_rows import ServedImpression
from serving.served_list import ServedAnswer
from serving.served_log.background import BackgroundRowLog, RateLimitedWarning
from serving.served_log.rows import served_impressions
from serving.serving_metrics import serving_metrics

__all__ = ["RateLimitedWarning", "ServedImpressionLog"]


class ServedImpressionLog(BackgroundRowLog[ServedImpression]):
    """Appends what one worker serves to the raw log under `intake`, in the background."""

    name = "served-impression log"
    retryable = (IntakeRefused,)
    chunk_rows = MAX_GROUP_EVENTS
    destination = "the raw log"

    def __init__(self, intake: EventIntake, max_pending: int, flush_seconds: float) -> None:
        self.intake = intake
        super().__init__(max_pending, flush_seconds)

    def row_count(self, answer: ServedAnswer) -> int:
        return len(answer.response.items)

    def rows_of(self, answer: ServedAnswer) -> list[ServedImpression]:
        return served_impressions(answer)

    def write(self, rows: list[ServedImpression]) -> None:
        receipt = self.intake.append_served(rows)
        metrics = serving_metrics().served_impressions
        metrics.labels(outcome="logged").inc(receipt.accepted)
        metrics.labels(outcome="duplicate").inc(receipt.duplicates)

    def count_dropped(self, reason: str, rows: int) -> None:
        serving_metrics().served_impressions_dropped.labels(reason=reason).inc(rows)
