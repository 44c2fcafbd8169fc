"""POST /events over HTTP: the status, headers and body each intake outcome is answered with.

The service's `@bentoml.api` method hands its validated events here. The append runs on threads
of its own, not on BentoML's request thread (one per worker by default): a request may wait up to
the lock wait for its turn, and /recommend must not wait behind it. Requests waiting on those
threads are written together as one batch (the intake's group commit), so more threads mean
bigger batches under load, not more writers. Admission (the pending bound) is decided before a
request queues for a thread, so a backed-up worker answers 429 at once.

| outcome                              | status | body             | header      |
|--------------------------------------|--------|------------------|-------------|
| every event logged (now or before)   | 202    | `EventsAccepted` |             |
| an event id reused for other content | 409    | `ErrorResponse`  |             |
| too many events pending here         | 429    | `ErrorResponse`  | Retry-After |
| write lock busy, no raw log, I/O     | 503    | `ErrorResponse`  | Retry-After |

A 400 for an invalid field never gets here: BentoML validates the body against
serving.events.schemas and the API guard rewrites its answer into `ErrorResponse`.

BentoML documents every route as answering 200; `document_event_responses` corrects the spec
(202, and 409 beside the guard's 429 and 503), so clients and the schemathesis contract test
see what the route really answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from serving.api_errors import error_body
from serving.events.errors import IntakeRefused
from serving.events.intake import EventIntake
from serving.events.raw_rows import PlaybackEvent
from serving.events.schemas import EventsAccepted, ImpressionEvent


class EventRoute:
    """Answers POST /events for one worker's `EventIntake`; `threads` requests can be in flight at once."""

    def __init__(self, intake: EventIntake, threads: int = 8) -> None:
        self.intake = intake
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="event-intake")

    async def answer(self, events: Sequence[ImpressionEvent | PlaybackEvent], ctx: Any) -> EventsAccepted | Response:
        """The response for `events`; `ctx` is the request's `bentoml.Context` (status and headers are set on it)."""
        try:
            with self.intake.admitted(len(events)):
                receipt = await asyncio.get_running_loop().run_in_executor(self._executor, self.intake.append, events)
        except IntakeRefused as refusal:
            ctx.response.status_code = refusal.status.value
            if refusal.retry_after_seconds is not None:
                ctx.response.headers["Retry-After"] = str(refusal.retry_after_seconds)
            return Response(error_body(str(refusal)), media_type="application/json")
        ctx.response.status_code = HTTPStatus.ACCEPTED.value
        return receipt.response()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.intake.close()


EVENTS_ROUTE = "/events"
CONFLICT_DESCRIPTION = "An event_id of the batch was sent before with other content; nothing of the batch was logged."


def document_event_responses(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with POST /events answering 202 (BentoML's 200, renamed) and 409 in `ErrorResponse`.

    Run after `serving.api_errors.document_guard_responses`, which defines `ErrorResponse`.
    """
    operation = spec.get("paths", {}).get(EVENTS_ROUTE, {}).get("post")
    if operation is None:
        return spec
    responses = operation["responses"]
    if "200" in responses:
        accepted = responses.pop("200")
        responses[str(HTTPStatus.ACCEPTED.value)] = {**accepted, "description": "Every event is in the raw log "
                                                     "(logged now, or a duplicate of one logged before)."}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    responses[str(HTTPStatus.CONFLICT.value)] = {"description": CONFLICT_DESCRIPTION, **error}
    return spec
