"""What EventRoute answers for each intake outcome, without a server: status, Retry-After, body.

`ResponseContext` stands for the part of `bentoml.Context` the route touches (the response's
status and headers); tests/serving/events/test_events_service.py runs the same route in BentoML.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
from dataclasses import dataclass, field

from serving.events.intake import LOCK_NAME, EventIntake, IntakeLimits
from serving.events.route import EventRoute
from serving.events.schemas import EventsAccepted
from serving.events.state import state_dir
from tests.serving.events.events_data import at, make_raw_log, parsed, playback


@dataclass
class ResponseContext:
    status_code: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    response: ResponseContext = field(default_factory=ResponseContext)


def clicks(prefix: str, count: int) -> list:
    return parsed([playback("click", f"{prefix}{index}", 7, at(f"10:{index // 60:02d}:{index % 60:02d}"))
                   for index in range(count)])


def test_a_logged_batch_is_202_with_its_counts(tmp_path):
    route = EventRoute(EventIntake(make_raw_log(tmp_path / "raw")))
    context = Context()

    answer = asyncio.run(route.answer(clicks("c", 3), context))

    assert context.response.status_code == 202
    assert answer == EventsAccepted(accepted=3, duplicates=0)
    route.close()


def test_a_backed_up_worker_answers_429_with_retry_after_at_once(tmp_path):
    """While a batch of 900 waits for the write lock, 200 more pass the worker's limit of 1000."""
    raw_dir = make_raw_log(tmp_path / "raw")
    route = EventRoute(EventIntake(raw_dir, IntakeLimits(max_pending_events=1000, lock_wait_seconds=30,
                                                         retry_after_seconds=3)))
    waiting_context, refused_context = Context(), Context()

    async def scenario():
        with (state_dir(raw_dir) / LOCK_NAME).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            waiting = asyncio.create_task(route.answer(clicks("a", 900), waiting_context))
            await asyncio.sleep(0.1)  # admitted, and waiting for the lock on the route's thread
            refused = await route.answer(clicks("b", 200), refused_context)
        return refused, await waiting

    refused, accepted = asyncio.run(scenario())

    assert refused_context.response.status_code == 429
    assert refused_context.response.headers == {"Retry-After": "3"}
    assert "900 events are waiting to be written" in json.loads(refused.body)["error"]
    assert (waiting_context.response.status_code, accepted.accepted) == (202, 900)
    route.close()


def test_a_refusal_carries_the_documented_error_body(tmp_path):
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()  # no manifest: the pipeline has not created the raw log
    route = EventRoute(EventIntake(raw_dir))
    context = Context()

    answer = asyncio.run(route.answer(clicks("c", 1), context))

    assert (context.response.status_code, context.response.headers) == (503, {"Retry-After": "1"})
    body = json.loads(answer.body)
    assert set(body) == {"error", "detail"} and "run the pipeline or an import first" in body["error"]
    route.close()
