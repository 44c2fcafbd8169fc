"""One real BentoML service per arm, on loopback, all reading the loop's home.

Each arm's service is `bentoml serve` of the project's service with its policy's settings
overrides (orchestration.closed_loop.policies), so the loop talks to what production runs, over HTTP.
They share the home: one registry, one online store, one raw log (the event intake's write lock
serialises their served-impression logs).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

SERVICE_TARGET = "serving.service:RecommendationService"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bentoml() -> str:
    candidate = Path(sys.executable).parent / "bentoml"
    return str(candidate) if candidate.exists() else "bentoml"


@contextlib.contextmanager
def arm_services(environments: Mapping[str, Mapping[str, str]], log_dir: Path,
                 ready_within_seconds: float = 180) -> Iterator[dict[str, str]]:
    """{arm: URL} of one ready service per arm (`environments`: the arm's whole environment);
    each logs to `log_dir/<arm>.log`. All are stopped on exit, whatever happened."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen] = {}
    urls: dict[str, str] = {}
    try:
        for arm, environment in environments.items():
            port = _free_port()
            with (log_dir / f"{arm}.log").open("wb") as log:
                processes[arm] = subprocess.Popen(
                    [_bentoml(), "serve", SERVICE_TARGET, "--host", "127.0.0.1", "--port", str(port)],
                    cwd=PROJECT_ROOT, env=dict(environment), stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            urls[arm] = f"http://127.0.0.1:{port}"
        for arm, url in urls.items():
            _wait_until_ready(arm, url, processes[arm], log_dir / f"{arm}.log", ready_within_seconds)
        yield urls
    finally:
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)


def _wait_until_ready(arm: str, url: str, process: subprocess.Popen, log_path: Path, within_seconds: float) -> None:
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"arm {arm!r}: its service exited during start-up (log: {log_path})")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"arm {arm!r}: its service was not ready within {within_seconds:.0f} s (log: {log_path})")
