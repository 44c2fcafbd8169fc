"""Acknowledged events per second of the event intake alone (serving/events), by batch size and writers.

    .venv/bin/python bench/events_intake.py [--events 20000] [--batch-sizes 1,10,100,1000] \
        [--processes 1,2] [--clients 1,8] [--dir /tmp/events-bench]

A writer process stands for a BentoML worker, a client for a request in flight in it (a thread
calling `append`, as the route's threads do). Each client appends its own stream of sessions (a
served list of 10 impressions, a click on each, a watch of each, a like on every other) cut into
requests of the given batch size, so a session's later events often land in a later request and
rewrite the file of an earlier one, as a real client's would. Requests that wait while a batch is
written are written together (group commit); processes share one raw log and take turns. A
request counts when `append` returns: committed to SQLite, its files fsynced and renamed into
place. JSON parsing (BentoML's job, timed separately as `parse µs/event`) and HTTP are left out.
The raw log sits under --dir: point it at the disk VIDREC_HOME uses.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import shutil
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import TypeAdapter

from serving.events.intake import EventIntake, IntakeLimits
from serving.events.schemas import Event, EventBatch
from vidrec.rawlog import RawManifest

SESSION_VIDEOS = 10
START = datetime(2026, 1, 5, tzinfo=UTC)


def session_events(writer: int, session: int) -> list[dict]:
    """One session of user `writer * 10**6 + session`: impressions and clicks first, then watches and likes."""
    user = writer * 1_000_000 + session + 1
    request = f"bench-{writer}-{session}"
    started = (START + timedelta(seconds=session)).isoformat()
    shown, finished = [], []
    for slot in range(SESSION_VIDEOS):
        video = 1 + (session * 7 + slot) % 5000
        playback = dict(user_id=user, video_id=video, watch_time=started)
        shown.append(dict(kind="impression", event_id=f"{request}-i{slot}", user_id=user, video_id=video,
                          request_id=request, surface="home", position=slot, impression_time=started))
        shown.append(dict(kind="click", event_id=f"{request}-c{slot}", **playback))
        finished.append(dict(kind="watch", event_id=f"{request}-w{slot}", watch_seconds=5.0 * slot, **playback))
        if slot % 2 == 0:
            finished.append(dict(kind="like", event_id=f"{request}-l{slot}", **playback))
    return shown + finished


def event_stream(writer: int, count: int) -> list[dict]:
    events: list[dict] = []
    session = 0
    while len(events) < count:
        events += session_events(writer, session)
        session += 1
    return events[:count]


def client_requests(client: int, count: int, batch_size: int) -> list[list]:
    adapter = TypeAdapter(list[Event])
    bodies = event_stream(client, count)
    return [adapter.validate_python(bodies[start:start + batch_size], strict=False)
            for start in range(0, len(bodies), batch_size)]


def write_stream(raw_dir: Path, writer: int, clients: int, count: int, batch_size: int, start_at: float,
                 results) -> None:
    """One writer process: parse its clients' requests, wait for the common start, append them, report latencies."""
    requests = [client_requests(writer * 1000 + client, count // clients, batch_size) for client in range(clients)]
    intake = EventIntake(raw_dir, IntakeLimits(lock_wait_seconds=60))
    latencies: list[float] = []

    def send(client_requests: list[list]) -> None:
        for request in client_requests:
            started = time.perf_counter()
            intake.append(request)
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=send, args=(client,)) for client in requests]
    while time.time() < start_at:
        time.sleep(0.001)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((time.time(), latencies))


def measure(raw_dir: Path, events: int, batch_size: int, processes: int, clients: int) -> dict:
    RawManifest(source="bench", parameters={}, row_counts={}, notes=[]).write(raw_dir)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 3.0  # every process has parsed its batches and opened the intake by then
    per_process = events // processes
    workers = [context.Process(target=write_stream, args=(raw_dir, writer, clients, per_process, batch_size,
                                                         start_at, results))
               for writer in range(processes)]
    for worker in workers:
        worker.start()
    finished = [results.get(timeout=600) for _ in workers]  # a writer that failed never reports
    for worker in workers:
        worker.join()
    elapsed = max(end for end, _ in finished) - start_at
    latencies = sorted(latency for _, process in finished for latency in process)
    acknowledged = processes * clients * (per_process // clients)
    files = list(raw_dir.glob("*/*/*.parquet"))
    return {
        "events_per_second": acknowledged / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "files": len(files),
        "megabytes": sum(path.stat().st_size for path in files) / 1e6,
    }


def parse_micros_per_event(batch_size: int) -> float:
    """What BentoML spends validating the JSON body (strict pydantic), per event."""
    body = json.dumps({"events": event_stream(0, batch_size)})
    rounds = max(1, 2000 // batch_size)
    started = time.perf_counter()
    for _ in range(rounds):
        EventBatch.model_validate_json(body)
    return 1e6 * (time.perf_counter() - started) / (rounds * batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per run (batch size 1 runs a tenth)")
    parser.add_argument("--batch-sizes", default="1,10,100,1000")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--clients", default="1,8", help="requests in flight per process")
    parser.add_argument("--dir", type=Path, default=None, help="where the raw logs go (default: a temporary dir)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="events-bench-", dir=args.dir))

    print("| processes | clients each | batch size | events | events/s acknowledged | request p50 ms "
          "| request p99 ms | files | MB | parse µs/event |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    grid = itertools.product(*(map(int, values.split(",")) for values in (args.processes, args.clients,
                                                                          args.batch_sizes)))
    for processes, clients, batch_size in grid:
        events = args.events // 10 if batch_size == 1 else args.events
        raw_dir = root / f"p{processes}-c{clients}-b{batch_size}"
        raw_dir.mkdir()
        result = measure(raw_dir, events, batch_size, processes, clients)
        print(f"| {processes} | {clients} | {batch_size} | {events} | {result['events_per_second']:,.0f} | "
              f"{result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['files']} | "
              f"{result['megabytes']:.1f} | {parse_micros_per_event(batch_size):.1f} |", flush=True)
        shutil.rmtree(raw_dir)
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
