"""Open-loop load on a running `/recommend` API: a fixed arrival rate, latency from the schedule.

    VIDREC_HOME=/tmp/vh100k .venv/bin/vidrec serve &
    .venv/bin/python bench/serving_load.py --users-from /tmp/vh100k --rate 100 --duration 60 \\
        [--warmup 5] [--unknown-share 0.05] [--k 20] [--timeout 10] [--metrics] \\
        [--at 30:'sudo service redis-server stop'] [--results-json out.json]

Request i is sent at t0 + i/rate whatever happened to earlier requests, and its latency runs from
that scheduled time, so when the service falls behind the queueing shows in the figures (no
coordinated omission). Bodies are `{"user_id": U, "k": K, "surface": S}`, U a known user of the
corpus (from VIDREC_HOME's raw `users` table, or 1..--max-user-id) except for `--unknown-share` of
requests, which ask for ids beyond the corpus; S is drawn from `--surfaces`. Seeded.

Why not locust: locust simulates users that each wait for an answer before sending again (closed
loop). When the service slows, such users send less, so the load falls exactly when it matters and
the slow period is under-sampled: the reported percentiles hide the queue a fixed-rate client
(a page view does not wait for the previous page's answer) would meet.

The report: offered and achieved rates, p50/p90/p99/max latency, errors by kind (timeouts, 5xx,
4xx, connection errors, unparseable answers), answers whose `degraded` list is non-empty, the
`model_versions` seen in answer order (a hot reload should switch them once), the results of
`--at` commands, a per-second timeline and, with `--metrics`, the service's `vidrec_*` Prometheus
series over the measured phase (scraped as it starts and after its last answer, so the warmup is
left out). Markdown on stdout, everything as JSON with `--results-json`.

The generator shares the machine with the service: its send lag (how late it sent against the
schedule) is reported so a saturated client is told apart from a slow service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
from pathlib import Path

import httpx
import pandas as pd

from serving_load_engine import ScheduledCommand, run_open_loop
from serving_load_report import markdown, summarise
from serving_metrics import MetricSnapshot, metrics_markdown, parse_metrics, summarise_metrics

logger = logging.getLogger("serving_load")
SURFACES = ("home", "watch_next", "search")


def parse_at(value: str) -> ScheduledCommand:
    """`SECONDS:COMMAND` -> ScheduledCommand; argparse reports the ValueError as a usage error."""
    offset, separator, command = value.partition(":")
    try:
        offset_s = float(offset)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--at {value!r}: expected SECONDS:COMMAND, {offset!r} is not a number") from None
    if not separator or not command.strip() or offset_s < 0:
        raise argparse.ArgumentTypeError(f"--at {value!r}: expected SECONDS:COMMAND with SECONDS >= 0 and a command")
    return ScheduledCommand(offset_s, command)


def parse_surfaces(value: str) -> tuple[str, ...]:
    surfaces = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [surface for surface in surfaces if surface not in SURFACES]
    if not surfaces or unknown:
        raise argparse.ArgumentTypeError(
            f"--surfaces {value!r}: expected a comma-separated subset of {', '.join(SURFACES)}")
    return surfaces


def known_user_ids(users_from: Path | None, max_user_id: int | None) -> list[int]:
    """The corpus's users: VIDREC_HOME/raw/users, or 1..max_user_id."""
    if max_user_id is not None:
        return list(range(1, max_user_id + 1))
    users_dir = Path(users_from) / "raw" / "users"
    if not users_dir.exists():
        raise SystemExit(f"--users-from {users_from}: no raw users table at {users_dir} (run `vidrec simulate` there)")
    users = pd.read_parquet(users_dir, columns=["user_id"])["user_id"].astype(int).tolist()
    if not users:
        raise SystemExit(f"--users-from {users_from}: the users table at {users_dir} is empty")
    return users


def request_bodies(
    users: list[int], count: int, unknown_share: float, k: int, surfaces: tuple[str, ...], seed: int
) -> list[dict]:
    """`count` request bodies; unknown users get ids above every known id, so none is in the corpus."""
    rng = random.Random(seed)
    first_unknown = max(users) + 1
    bodies = []
    for _ in range(count):
        user = first_unknown + rng.randrange(1_000_000) if rng.random() < unknown_share else rng.choice(users)
        bodies.append({"user_id": user, "k": k, "surface": rng.choice(surfaces)})
    return bodies


async def scrape_metrics(url: str) -> MetricSnapshot | None:
    """The service's `vidrec_*` series, or None (logged) when /metrics cannot be read."""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{url}/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("could not read %s/metrics: %s", url, error)
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="The service's base URL.")
    parser.add_argument("--rate", type=float, required=True, help="Requests per second (fixed arrival rate).")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds of measured load.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds of load at the same rate before measuring.")
    users = parser.add_mutually_exclusive_group(required=True)
    users.add_argument("--users-from", type=Path, metavar="VIDREC_HOME",
                       help="Draw known users from this home's raw logs.")
    users.add_argument("--max-user-id", type=int, help="Known users are 1..N.")
    parser.add_argument("--unknown-share", type=float, default=0.05,
                        help="Share of requests for users not in the corpus.")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--surfaces", type=parse_surfaces, default=("home",), help="Comma-separated, drawn uniformly.")
    parser.add_argument("--timeout", type=float, default=10.0, help="Seconds before a request counts as a timeout.")
    parser.add_argument("--max-connections", type=int, default=0, help="Client connection limit (0: none).")
    parser.add_argument("--connection-per-request", action="store_true",
                        help="A new connection per request (many independent clients) instead of a keep-alive "
                        "pool, whose few connections each stay with one server worker.")
    parser.add_argument("--at", type=parse_at, action="append", default=[], metavar="SECONDS:COMMAND",
                        help="Run a shell command SECONDS into the measured phase (repeatable).")
    parser.add_argument("--metrics", action="store_true",
                        help="Summarise the service's vidrec_* /metrics over the run.")
    parser.add_argument("--results-json", type=Path, help="Write the whole report here as JSON.")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    problems = []
    if args.rate <= 0:
        problems.append(f"--rate must be > 0, got {args.rate}")
    if args.duration <= 0 or args.warmup < 0:
        problems.append(f"--duration must be > 0 and --warmup >= 0, got {args.duration} and {args.warmup}")
    if not 0 <= args.unknown_share <= 1:
        problems.append(f"--unknown-share must be within [0, 1], got {args.unknown_share}")
    if args.max_user_id is not None and args.max_user_id < 1:
        problems.append(f"--max-user-id must be >= 1, got {args.max_user_id}")
    if args.k < 1 or args.timeout <= 0 or args.max_connections < 0:
        problems.append(f"--k and --timeout must be > 0 and --max-connections >= 0, "
                        f"got {args.k}, {args.timeout}, {args.max_connections}")
    late = [command.offset_s for command in args.at if command.offset_s > args.duration]
    if late:
        problems.append(f"--at offsets {late} fall after the run's {args.duration} s")
    if problems:
        parser.error("; ".join(problems))


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(parser, args)
    url = args.url.rstrip("/")
    users = known_user_ids(args.users_from, args.max_user_id)
    count = round((args.warmup + args.duration) * args.rate)
    bodies = request_bodies(users, count, args.unknown_share, args.k, args.surfaces, args.seed)
    logger.info("%d requests at %g/s to %s/recommend (%g s warmup, %g s measured)",
                count, args.rate, url, args.warmup, args.duration)
    # With --metrics, /metrics is read as the measured phase starts and after it: the difference is the run's.
    run = asyncio.run(
        run_open_loop(
            f"{url}/recommend", bodies, args.rate, args.warmup, args.timeout, args.at, args.max_connections,
            connection_per_request=args.connection_per_request,
            at_measure_start=(lambda: scrape_metrics(url)) if args.metrics else None,
        )
    )
    before = run.extra.get("at_measure_start")
    summary = summarise(run)
    summary["options"] = {key: str(value) if isinstance(value, Path) else value
                          for key, value in vars(args).items() if key != "at"}
    summary["known_users"] = len(users)
    report = markdown(summary)
    if args.metrics:
        after = asyncio.run(scrape_metrics(url))
        if after is not None:
            summary["metrics"] = summarise_metrics(after.minus(before) if before is not None else after)
            summary["metrics_scope"] = "the run" if before is not None else "the service's lifetime"
            report += f"\n\nService metrics over {summary['metrics_scope']}:\n\n" + metrics_markdown(summary["metrics"])
    print(report)
    if args.results_json:
        args.results_json.write_text(json.dumps(summary, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
