"""How the simulator's cost grows with its world: `simulate_world` at several multiples of the default
size, in memory (no Parquet writing), one scale after another in this process; seconds, events and
seconds per million events per scale, and the log-log exponent of seconds against events (1.0 for
linear growth).

    .venv/bin/python bench/simulator_scaling.py --scales 1,3,10 [--profile 3] [--candidate-pool-size N]

A scale s has s × the default users and √s × the default videos, as in bench/pipeline_scaling.py.
`--profile s` runs that scale under cProfile as well and prints its 25 costliest functions.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import math
import os
import pstats
import time

import numpy as np

from vidrec.simulator import SimulationConfig, simulate_world

DEFAULT_USERS = 2000
DEFAULT_VIDEOS = 3000


def scaled_config(scale: float, **overrides) -> SimulationConfig:
    """The default config with s × the users and √s × the videos."""
    return dataclasses.replace(
        SimulationConfig(),
        users=round(DEFAULT_USERS * scale),
        videos=round(DEFAULT_VIDEOS * math.sqrt(scale)),
        **overrides,
    )


def time_scale(config: SimulationConfig) -> tuple[float, int]:
    """Seconds to simulate `config`, and the events it logged (impressions + watches + searches)."""
    started = time.perf_counter()
    tables, _ = simulate_world(config)
    seconds = time.perf_counter() - started
    return seconds, sum(len(tables[name]) for name in ("impressions", "watches", "searches"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--scales", default="1,3,10")
    parser.add_argument("--profile", type=float, help="also profile this scale with cProfile")
    parser.add_argument("--candidate-pool-size", type=int, help="override SimulationConfig.candidate_pool_size")
    args = parser.parse_args()
    overrides = {} if args.candidate_pool_size is None else {"candidate_pool_size": args.candidate_pool_size}
    rows = []
    for scale in (float(value) for value in args.scales.split(",")):
        config = scaled_config(scale, **overrides)
        print(f"{scale:g}×: {config.users:,} users, {config.videos:,} videos; load {os.getloadavg()[0]:.2f}",
              flush=True)
        seconds, events = time_scale(config)
        rows.append((scale, config, seconds, events))
        print(f"{scale:g}×: {seconds:.1f} s, {events:,} events, {seconds / events * 1e6:.1f} s per million events",
              flush=True)
    print("\n| scale | users | videos | events | seconds | s per M events | ratio to 1st |")
    print("|---|---|---|---|---|---|---|")
    for scale, config, seconds, events in rows:
        print(f"| {scale:g}× | {config.users:,} | {config.videos:,} | {events:,} | {seconds:.1f} | "
              f"{seconds / events * 1e6:.1f} | {seconds / rows[0][2]:.1f}× |")
    if len(rows) > 1:
        exponent, _ = np.polyfit(np.log([row[3] for row in rows]), np.log([row[2] for row in rows]), 1)
        print(f"\nlog-log exponent of seconds against events: {exponent:.2f} (1.0 = linear)")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(simulate_world, scaled_config(args.profile, **overrides))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
