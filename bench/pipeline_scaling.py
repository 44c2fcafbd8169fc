"""How the pipeline's cost grows with the data: `vidrec simulate` at several multiples of the default
size, then `vidrec pipeline` on each, each in a fresh home; wall time and peak memory per run and
per step, and a least-squares line of wall time against impressions (its slope: seconds per
million impressions; and the log-log exponent, 1.0 for linear growth).

    .venv/bin/python bench/pipeline_scaling.py --scales 1,10,100 [--base DIR] [--stop-after-minutes M]

A scale s simulates s × the default users (events grow with users) and √s × the default videos (a
catalog grows slower than its audience), over the default days. Scales run smallest first; once a
run fails or takes longer than --stop-after-minutes, the larger scales are skipped and reported as
not measured, with where the last one broke.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from pipeline_profile import PipelineProfile, run_pipeline, step_table

DEFAULT_USERS = 2000
DEFAULT_VIDEOS = 3000


@dataclass
class ScaleRun:
    scale: float
    users: int
    videos: int
    impressions: int
    simulate_seconds: float
    profile: PipelineProfile


class SimulationFailed(RuntimeError):
    """The simulator could not write a scale's raw logs (out of memory, say): where scaling broke."""


def simulate(home: Path, users: int, videos: int) -> float:
    environment = {**os.environ, "VIDREC_HOME": str(home)}
    command = [str(Path(sys.executable).parent / "vidrec"), "simulate", "--users", str(users), "--videos", str(videos)]
    started = time.perf_counter()
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise SimulationFailed(f"vidrec simulate --users {users} --videos {videos} failed "
                               f"(exit {result.returncode}): {result.stderr[-500:].strip()}")
    return time.perf_counter() - started


def count_impressions(home: Path) -> int:
    pattern = str(home / "raw" / "impressions" / "**" / "*.parquet")
    with duckdb.connect() as connection:
        return connection.execute(f"select count(*) from read_parquet('{pattern}')").fetchone()[0]


def fit_line(runs: list[ScaleRun]) -> str:
    """Wall seconds = a + b × impressions (b per million), and the log-log exponent."""
    if len(runs) < 2:
        return "fewer than two measured scales: no fit"
    x = np.array([run.impressions for run in runs], dtype=float)
    y = np.array([run.profile.wall_seconds for run in runs])
    slope, intercept = np.polyfit(x, y, 1)
    exponent, _ = np.polyfit(np.log(x), np.log(y), 1)
    return (f"wall seconds ≈ {intercept:.0f} + {slope * 1e6:.1f} × (impressions / 1M) over {len(runs)} scales; "
            f"log-log exponent {exponent:.2f} (1.0 = linear)")


def summary_table(runs: list[ScaleRun]) -> str:
    lines = ["| scale | users | videos | impressions | simulate s | pipeline wall s | peak RSS (MiB) | slowest step |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        slowest = max(run.profile.steps, key=lambda step: step.seconds, default=None)
        slowest_text = f"{slowest.step} {slowest.seconds:.0f} s" if slowest else "—"
        status = "" if run.profile.returncode == 0 else f" (exit {run.profile.returncode})"
        lines.append(f"| {run.scale:g}× | {run.users:,} | {run.videos:,} | {run.impressions:,} | "
                     f"{run.simulate_seconds:.0f} | {run.profile.wall_seconds:.0f}{status} | "
                     f"{run.profile.peak_rss_bytes / 2**20:.0f} | {slowest_text} |")
    return "\n".join(lines)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--scales", default="1,10,100", help="comma-separated multiples of the default size")
    parser.add_argument("--base", type=Path, help="where the homes go (default: a new temporary directory)")
    parser.add_argument("--stop-after-minutes", type=float, default=60.0,
                        help="skip larger scales once a run takes longer than this")
    parser.add_argument("--keep", action="store_true", help="keep the homes afterwards")
    args = parser.parse_args()
    try:
        args.scales = sorted(float(value) for value in args.scales.split(",") if value.strip())
    except ValueError:
        parser.error(f"--scales must be comma-separated numbers, got {args.scales!r}")
    if not args.scales or min(args.scales) <= 0:
        parser.error("--scales needs at least one positive multiple")
    return args


def main() -> None:
    args = _parse_args()
    base = args.base or Path(tempfile.mkdtemp(prefix="vidrec-scaling-"))
    runs: list[ScaleRun] = []
    skipped: list[float] = []
    broke = ""
    for scale in args.scales:
        if skipped or (runs and (runs[-1].profile.returncode != 0
                                 or runs[-1].profile.wall_seconds > args.stop_after_minutes * 60)):
            skipped.append(scale)
            continue
        home = base / f"scale-{scale:g}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        users, videos = round(DEFAULT_USERS * scale), round(DEFAULT_VIDEOS * math.sqrt(scale))
        print(f"scale {scale:g}×: simulating {users:,} users and {videos:,} videos in {home}", flush=True)
        try:
            simulate_seconds = simulate(home, users, videos)
        except SimulationFailed as failure:
            broke = f"the {scale:g}× simulation broke: {failure}"
            print(broke, flush=True)
            skipped.append(scale)
            continue
        impressions = count_impressions(home)
        profile = run_pipeline(home, home / "bench-pipeline.log")
        runs.append(ScaleRun(scale, users, videos, impressions, simulate_seconds, profile))
        print(f"scale {scale:g}×: {impressions:,} impressions, pipeline {profile.wall_seconds:.0f} s "
              f"(exit {profile.returncode}), peak {profile.peak_rss_bytes / 2**20:.0f} MiB", flush=True)
        if not args.keep:
            log = home / "bench-pipeline.log"
            kept = base / f"scale-{scale:g}.log"
            shutil.copy(log, kept)
            shutil.rmtree(home, ignore_errors=True)
    print()
    print(summary_table(runs))
    print()
    print(fit_line([run for run in runs if run.profile.returncode == 0]))
    for run in runs:
        print(f"\n#### {run.scale:g}×: steps, slowest first\n")
        print(step_table(run.profile, top=12))
    if broke:
        print(f"\nnot measured: {', '.join(f'{scale:g}×' for scale in skipped)} — {broke}")
    elif skipped:
        last = runs[-1]
        reason = (f"failed (exit {last.profile.returncode}, log {base / f'scale-{last.scale:g}.log'})"
                  if last.profile.returncode else f"took {last.profile.wall_seconds / 60:.0f} min")
        print(f"\nnot measured: {', '.join(f'{scale:g}×' for scale in skipped)} — the {last.scale:g}× run {reason}")


if __name__ == "__main__":
    main()
