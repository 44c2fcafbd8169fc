"""Running `vidrec pipeline` under observation: wall time, peak memory of the process tree, and the
same two per Dagster step (asset or check), read from the run's own log; per step also the CPU
seconds the pipeline's processes spent, the CPU seconds the rest of the machine spent, and the
seconds the hypervisor stole from this machine (`/proc/stat`'s steal). The last two say whether a
slow step did more work or got less of the machine, which wall time alone cannot tell on a
shared machine.

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
    usage: Usage | None = None


@dataclass(frozen=True)
class Sample:
    """One look at the machine: when, the pipeline's memory and CPU seconds so far (its process tree,
    exited children included), and the machine's busy and stolen CPU seconds so far (all cores)."""

    stamp: float
    rss_bytes: int
    tree_cpu_seconds: float
    machine_busy_seconds: float
    machine_steal_seconds: float


@dataclass(frozen=True)
class Usage:
    """CPU seconds over a window: the pipeline's, the rest of the machine's, and stolen ones."""

    cpu_seconds: float
    other_cpu_seconds: float
    steal_seconds: float


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


def tree_cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU seconds of `process` and its living descendants, each with the exited
    children it waited for: dbt, say, runs as a child of the Dagster process, and once it exits
    its seconds live on only in that process's children_user and children_system."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # it exited between the listing and the read
            times = member.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def take_sample(process: psutil.Process) -> Sample:
    machine = psutil.cpu_times()
    busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
    return Sample(time.time(), tree_rss_bytes(process), tree_cpu_seconds(process), busy, machine.steal)


def window_usage(samples: list[Sample], start: float, end: float) -> Usage | None:
    """Usage between the last sample at or before `start` and the first at or after `end` (the
    samples nearest a step's second-stamped start and end); None without samples on both sides."""
    before = [sample for sample in samples if sample.stamp <= start]
    after = [sample for sample in samples if sample.stamp >= end]
    if not before or not after:
        return None
    first, last = before[-1], after[0]
    mine = last.tree_cpu_seconds - first.tree_cpu_seconds
    busy = last.machine_busy_seconds - first.machine_busy_seconds
    return Usage(cpu_seconds=mine, other_cpu_seconds=max(busy - mine, 0.0),
                 steal_seconds=last.machine_steal_seconds - first.machine_steal_seconds)


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
    samples: list[Sample] = []
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        watcher = psutil.Process(process.pid)
        while process.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):  # it ended between the poll and the look
                samples.append(take_sample(watcher))
            time.sleep(interval)
    wall = time.perf_counter() - started
    steps = parse_steps(log_path.read_text(errors="replace"))
    for step in steps:
        window = [sample.rss_bytes for sample in samples if step.started <= sample.stamp < step.ended + 1.0]
        step.peak_rss_bytes = max(window, default=0)
        step.usage = window_usage(samples, step.started, step.ended + 1.0)  # stamps are to the second
    peak = max((sample.rss_bytes for sample in samples), default=0)
    return PipelineProfile(process.returncode, wall, peak, steps, log_path)


def step_table(profile: PipelineProfile, top: int | None = None) -> str:
    """Markdown: each step's seconds, share of the wall time, peak RSS and CPU usage, slowest first.
    CPU s: the pipeline's processes (up to the cores × seconds); other CPU s: the rest of the
    machine in the same window; steal s: taken by the hypervisor."""
    steps = sorted(profile.steps, key=lambda step: step.seconds, reverse=True)[:top]
    lines = ["| step | seconds | share of wall | peak RSS (MiB) | CPU s | other CPU s | steal s |",
             "|---|---|---|---|---|---|---|"]
    for step in steps:
        status = "" if step.succeeded else " (failed)"
        usage = (f"{step.usage.cpu_seconds:.1f} | {step.usage.other_cpu_seconds:.1f} | {step.usage.steal_seconds:.1f}"
                 if step.usage else "— | — | —")
        lines.append(f"| {step.step}{status} | {step.seconds:.1f} | {step.seconds / profile.wall_seconds:.0%} | "
                     f"{step.peak_rss_bytes / 2**20:.0f} | {usage} |")
    accounted = sum(step.seconds for step in profile.steps)
    lines.append(f"| (outside steps: start-up, dbt parse, between steps) | {profile.wall_seconds - accounted:.1f} | "
                 f"{(profile.wall_seconds - accounted) / profile.wall_seconds:.0%} | | | | |")
    return "\n".join(lines)
