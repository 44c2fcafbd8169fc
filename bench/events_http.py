"""Events per second that a running service acknowledges over HTTP on POST /events (202).

    # a throwaway home holding only a raw-log manifest: /events needs the log, not models
    .venv/bin/python bench/events_http.py --prepare /tmp/events-http-home
    VIDREC_HOME=/tmp/events-http-home VIDREC_SERVE_ACCESS_LOG=false .venv/bin/vidrec serve &
    .venv/bin/python bench/events_http.py --url http://127.0.0.1:3000 [--events 20000] \\
        [--batch-sizes 10,100,1000] [--clients 1,8] [--api-key KEY]

The same event streams as bench/events_intake.py (sessions of impressions, clicks, watches and
likes, cut into requests of the batch size), sent by `--clients` concurrent HTTP clients, each
posting its next request as soon as the previous one is answered (closed loop: this measures
capacity, not latency at a given rate). A request counts when it is answered 202; anything else
is counted by status and its events are not. Against bench/events_intake.py the difference is
what HTTP costs: BentoML's JSON parsing and strict validation, the API guard, the event loop
handing the append to the route's threads. The client runs on the same machine as the service.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from collections import Counter
from pathlib import Path

import httpx

from vidrec.rawlog import RawManifest

from events_intake import event_stream


async def client_run(client: httpx.AsyncClient, url: str, bodies: list[list[dict]], headers: dict,
                     latencies: list[float], statuses: Counter) -> int:
    """Post `bodies` one after another; the events of those answered 202."""
    acknowledged = 0
    for body in bodies:
        started = time.perf_counter()
        response = await client.post(f"{url}/events", json={"events": body}, headers=headers)
        latencies.append(time.perf_counter() - started)
        statuses[response.status_code] += 1
        if response.status_code == 202:
            acknowledged += len(body)
    return acknowledged


async def measure(url: str, events: int, batch_size: int, clients: int, run: int, headers: dict) -> dict:
    per_client = events // clients
    streams = [event_stream(run * 1000 + client, per_client) for client in range(clients)]
    bodies = [[stream[start:start + batch_size] for start in range(0, len(stream), batch_size)] for stream in streams]
    latencies: list[float] = []
    statuses: Counter = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        acknowledged = await asyncio.gather(*(client_run(client, url, own, headers, latencies, statuses)
                                              for own in bodies))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "events_per_second": sum(acknowledged) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "statuses": dict(statuses),
    }


def prepare(home: Path) -> None:
    """A home whose raw log exists (a manifest and nothing else), so /events accepts appends."""
    raw_dir = home / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    RawManifest(source="bench", parameters={}, row_counts={}, notes=[]).write(raw_dir)
    print(f"prepared {raw_dir}: start the service with VIDREC_HOME={home}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the running service, e.g. http://127.0.0.1:3000")
    parser.add_argument("--prepare", type=Path, metavar="HOME", help="create a throwaway home with a raw log and exit")
    parser.add_argument("--events", type=int, default=20_000, help="events per cell (batch size 1 sends a tenth)")
    parser.add_argument("--batch-sizes", default="10,100,1000")
    parser.add_argument("--clients", default="1,8", help="concurrent HTTP clients")
    parser.add_argument("--api-key", default=None,
                        help="sent as `Authorization: Bearer KEY` when VIDREC_API_KEY is set")
    args = parser.parse_args()
    if args.prepare is not None:
        prepare(args.prepare)
        return
    if not args.url:
        parser.error("--url is required (or --prepare HOME)")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    print("| clients | batch size | events | events/s acknowledged | request p50 ms | request p99 ms | statuses |")
    print("|---|---|---|---|---|---|---|")
    grid = itertools.product(map(int, args.clients.split(",")), map(int, args.batch_sizes.split(",")))
    for run, (clients, batch_size) in enumerate(grid, start=1):
        events = args.events // 10 if batch_size == 1 else args.events
        result = asyncio.run(measure(args.url.rstrip("/"), events, batch_size, clients, run, headers))
        print(f"| {clients} | {batch_size} | {events} | {result['events_per_second']:,.0f} | {result['p50_ms']:.1f} "
              f"| {result['p99_ms']:.1f} | {result['statuses']} |", flush=True)


if __name__ == "__main__":
    main()
