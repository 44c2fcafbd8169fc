"""Running `vidrec pipeline` under observation: wall time, peak memory of the process tree, and the
same two per Dagster step (asset or check), read from the run's own log.

Dagster logs a STEP_START and a STEP_SUCCESS (or STEP_FAILURE) line per step, each stamped to the
second, and the success line says how long the step ran to the millisecond. Memory is sampled from
the whole process tree (dbt and Spark run as children) every `interval` seconds with its wall-clock
time; a step's peak is the largest sample between its start and end stamps. Under the in-process
executor one step runs at a time, so the peak belongs to that step; where steps overlap (a
multiprocess executor) each overlapping step is charged the tree's peak of its window.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

_LINE = re.compile(r"^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}) - dagster - \w+ - [^-]+ - [0-9a-f-]+ - "
                   r"(?:\d+ - )?(?P<step>[\w.\[\]-]+) - "
                   r"(?P<event>STEP_START|STEP_SUCCESS|STEP_FAILURE) - (?P<text>.*)$")
_DURATION = re.compile(r" in (?:(?P<minutes>\d+)m)?(?:(?P<seconds>[\d.]+)s)?(?:(?P<ms>\d+)ms)?\.?$")


@dataclass
class StepProfile:
    step: str
    started: float  # epoch seconds (to the second)
    ended: float
    seconds: float  # Dagster's own duration when it printed one, else ended - started
    succeeded: bool
    peak_rss_bytes: int = 0


@dataclass
class PipelineProfile:
    returncode: int
    wall_seconds: float
    peak_rss_bytes: int
    steps: list[StepProfile] = field(default_factory=list)
    log_path: Path | None = None


def tree_rss_bytes(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # it exited between the listing and the read
            total += member.memory_info().rss
    return total


def parse_steps(log_text: str) -> list[StepProfile]:
    """Steps in the order they started, from Dagster's STEP_* log lines."""
    started: dict[str, float] = {}
    steps: list[StepProfile] = []
    for line in log_text.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        stamp = datetime.strptime(match["stamp"], "%Y-%m-%d %H:%M:%S %z").timestamp()
        step, event = match["step"], match["event"]
        if event == "STEP_START":
            started[step] = stamp
            continue
        begin = started.pop(step, stamp)
        steps.append(StepProfile(step, begin, stamp, _duration(match["text"], stamp - begin), event == "STEP_SUCCESS"))
    return sorted(steps, key=lambda profile: profile.started)


def _duration(text: str, fallback: float) -> float:
    match = _DURATION.search(text)
    if not match or not any(match.groupdict().values()):
        return fallback
    return (float(match["minutes"] or 0) * 60 + float(match["seconds"] or 0) + float(match["ms"] or 0) / 1000)


def run_pipeline(home: Path, log_path: Path, extra_env: dict[str, str] | None = None,
                 interval: float = 0.2, job: str | None = None) -> PipelineProfile:
    """Run `vidrec pipeline [--job job]` with VIDREC_HOME=home, its output to `log_path`, and profile it."""
    environment = {**os.environ, **(extra_env or {}), "VIDREC_HOME": str(home)}
    command = [str(Path(sys.executable).parent / "vidrec"), "pipeline", *(["--job", job] if job else [])]
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        watcher = psutil.Process(process.pid)
        while process.poll() is None:
            samples.append((time.time(), tree_rss_bytes(watcher)))
            time.sleep(interval)
    wall = time.perf_counter() - started
    steps = parse_steps(log_path.read_text(errors="replace"))
    for step in steps:
        window = [rss for stamp, rss in samples if step.started <= stamp < step.ended + 1.0]
        step.peak_rss_bytes = max(window, default=0)
    peak = max((rss for _, rss in samples), default=0)
    return PipelineProfile(process.returncode, wall, peak, steps, log_path)


def step_table(profile: PipelineProfile, top: int | None = None) -> str:
    """Markdown: each step's seconds, share of the wall time and peak RSS, slowest first."""
    steps = sorted(profile.steps, key=lambda step: step.seconds, reverse=True)[:top]
    lines = ["| step | seconds | share of wall | peak RSS (MiB) |", "|---|---|---|---|"]
    for step in steps:
        status = "" if step.succeeded else " (failed)"
        lines.append(f"| {step.step}{status} | {step.seconds:.1f} | {step.seconds / profile.wall_seconds:.0%} | "
                     f"{step.peak_rss_bytes / 2**20:.0f} |")
    accounted = sum(step.seconds for step in profile.steps)
    lines.append(f"| (outside steps: start-up, dbt parse, between steps) | {profile.wall_seconds - accounted:.1f} | "
                 f"{(profile.wall_seconds - accounted) / profile.wall_seconds:.0%} | |")
    return "\n".join(lines)
