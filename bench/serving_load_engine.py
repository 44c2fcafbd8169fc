"""The open-loop engine of bench/serving_load.py: send on a fixed schedule, time from the schedule.

Request i of a phase is due at `start + i / rate` and is sent then, whether or not earlier
requests have been answered; its latency runs from that due time to the end of its answer. A
service that stalls therefore shows the stall in every request that fell due during it (queueing
at the client, in the kernel's accept queue or in the server all count), which is what a product
page calling the API sees. A closed-loop generator (each simulated user waits for its answer
before the next request, as in locust) sends less exactly when the service slows down and so
measures the service at a lower load than asked for: coordinated omission.

Scenario hooks (`ScheduledCommand`) run shell commands at an offset from the start of the measured
phase, in the same event loop, without delaying the sends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

# Error kinds, as counted in the report.
TIMEOUT = "timeout"
SERVER_ERROR = "http_5xx"
CLIENT_ERROR = "http_4xx"
CONNECTION_ERROR = "connection"
INVALID_RESPONSE = "invalid_response"  # a 2xx answer whose body is not the documented JSON object
ERROR_KINDS = (TIMEOUT, SERVER_ERROR, CLIENT_ERROR, CONNECTION_ERROR, INVALID_RESPONSE)

WARMUP = "warmup"
MEASURED = "measured"


@dataclass(frozen=True)
class Outcome:
    """One request's fate. Times are seconds from the start of the measured phase (negative in warmup)."""

    index: int
    phase: str
    body: dict
    due_s: float  # when the schedule said to send it
    sent_s: float  # when the engine actually sent it (later than due_s when the client lags)
    finished_s: float
    status: int | None  # HTTP status; None when no answer came
    error: str | None  # one of ERROR_KINDS, None on success
    degraded: tuple[str, ...] = ()  # the answer's `degraded` list (empty when absent)
    model_versions: tuple[tuple[str, str], ...] | None = None  # sorted items of `model_versions`
    known_user: bool | None = None
    detail: str = ""  # the exception or the start of an error body

    @property
    def latency_ms(self) -> float:
        """From the scheduled send to the end of the answer: includes any queueing."""
        return (self.finished_s - self.due_s) * 1000

    @property
    def service_ms(self) -> float:
        """From the actual send to the end of the answer (what a closed-loop tool would report)."""
        return (self.finished_s - self.sent_s) * 1000


@dataclass(frozen=True)
class ScheduledCommand:
    """A shell command to run `offset_s` seconds after the measured phase starts (`--at`)."""

    offset_s: float
    command: str


@dataclass
class CommandRun:
    offset_s: float
    command: str
    started_s: float | None = None
    finished_s: float | None = None
    exit_status: int | None = None
    output_tail: str = ""


@dataclass
class LoadRun:
    """Everything one run produced; `monotonic_start` is the measured phase's t=0 on `time.monotonic()`."""

    outcomes: list[Outcome]
    commands: list[CommandRun]
    monotonic_start: float
    rate: float
    duration_s: float
    warmup_s: float
    extra: dict = field(default_factory=dict)


def classify_answer(status: int, text: str) -> tuple[str | None, dict | None]:
    """The error kind of an HTTP answer (None when it is a usable recommendation) and its JSON body."""
    if status >= 500:
        return SERVER_ERROR, None
    if status >= 400:
        return CLIENT_ERROR, None
    try:
        body = json.loads(text)
    except ValueError:
        return INVALID_RESPONSE, None
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return INVALID_RESPONSE, None
    return None, body


async def _send(
    session: aiohttp.ClientSession, url: str, index: int, phase: str, body: dict, due: float, origin: float
) -> Outcome:
    sent = time.monotonic()
    status, error, answer, detail = None, None, None, ""
    try:
        async with session.post(url, json=body) as response:
            status = response.status
            text = await response.text()
        error, answer = classify_answer(status, text)
        if error:
            detail = text[:200]
    except TimeoutError as exc:
        error, detail = TIMEOUT, repr(exc)
    except (aiohttp.ClientError, OSError) as exc:
        # Refused, reset, closed mid-answer, malformed HTTP: the service did not answer.
        error, detail = CONNECTION_ERROR, repr(exc)[:200]
    finished = time.monotonic()
    versions = degraded = known_user = None
    if answer is not None:
        raw_versions = answer.get("model_versions")
        versions = (tuple(sorted((str(k), str(v)) for k, v in raw_versions.items()))
                    if isinstance(raw_versions, dict) else None)
        degraded = answer.get("degraded") or ()  # absent today: the service does not report fallbacks yet
        known_user = answer.get("known_user")
    return Outcome(
        index=index,
        phase=phase,
        body=body,
        due_s=due - origin,
        sent_s=sent - origin,
        finished_s=finished - origin,
        status=status,
        error=error,
        degraded=tuple(str(item) for item in (degraded or ())),
        model_versions=versions,
        known_user=known_user if isinstance(known_user, bool) else None,
        detail=detail,
    )


async def _run_command(run: CommandRun, origin: float) -> None:
    await asyncio.sleep(max(0.0, origin + run.offset_s - time.monotonic()))
    run.started_s = time.monotonic() - origin
    process = await asyncio.create_subprocess_shell(
        run.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    run.finished_s = time.monotonic() - origin
    run.exit_status = process.returncode
    run.output_tail = output.decode(errors="replace")[-500:]


async def run_open_loop(
    url: str,
    bodies: Sequence[dict],
    rate: float,
    warmup_s: float,
    timeout_s: float,
    commands: Sequence[ScheduledCommand] = (),
    max_connections: int = 0,
    at_measure_start: Callable[[], Awaitable[object]] | None = None,
    connection_per_request: bool = False,
) -> LoadRun:
    """Send `bodies` in order at `rate` per second; the first `warmup_s * rate` are the warmup.

    Waits for every answer (or its timeout) before returning. `max_connections` 0 means no limit,
    so the client never holds a due request back for want of a connection. `at_measure_start` is
    awaited (beside the sends) when the measured phase starts; its result is `extra["at_measure_start"]`.

    `connection_per_request` opens a connection per request, as many independent clients would,
    instead of reusing a few keep-alive ones: a reused connection stays with the server worker
    that accepted it, so a handful of them can split the load unevenly between workers.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    n_warmup = round(warmup_s * rate)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=max_connections, force_close=connection_per_request)
    loop_start = time.monotonic() + 0.05  # a moment to set up before the first due time
    origin = loop_start + n_warmup / rate  # t=0 of the measured phase
    runs = [CommandRun(command.offset_s, command.command) for command in commands]
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        command_tasks = [asyncio.create_task(_run_command(run, origin)) for run in runs]
        start_task = asyncio.create_task(_at(origin, at_measure_start)) if at_measure_start else None
        request_tasks = []
        for index, body in enumerate(bodies):
            due = loop_start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            phase = WARMUP if index < n_warmup else MEASURED
            request_tasks.append(asyncio.create_task(_send(session, url, index, phase, body, due, origin)))
        outcomes = list(await asyncio.gather(*request_tasks))
        await asyncio.gather(*command_tasks)
        extra = {"at_measure_start": await start_task} if start_task else {}
    return LoadRun(
        outcomes=outcomes,
        commands=runs,
        monotonic_start=origin,
        rate=rate,
        duration_s=(len(bodies) - n_warmup) / rate,
        warmup_s=n_warmup / rate,
        extra=extra,
    )


async def _at(origin: float, action: Callable[[], Awaitable[object]]) -> object:
    await asyncio.sleep(max(0.0, origin - time.monotonic()))
    return await action()
