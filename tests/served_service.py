"""A real `bentoml serve` process for tests: started, waited on until ready, and stopped."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

BENTOML = str(Path(sys.executable).parent / "bentoml")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(target: str, cwd: Path, environment: dict[str, str], log_path: Path,
           ready_within_seconds: float = 120, ready_path: str = "/readyz") -> Iterator[str]:
    """`bentoml serve TARGET` on a free loopback port; yields its URL once `ready_path` answers 200
    (`/livez` for a service expected to start without being ready).

    Its output goes to `log_path`, a file, not a pipe: nobody drains a pipe while tests run, and a
    full one blocks the server's logging (and with it every request).
    """
    port = free_port()
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within_seconds
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"bentoml serve {target} exited:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}{ready_path}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(
                f"bentoml serve {target} not ready within {ready_within_seconds} s:\n{log_path.read_text()}")
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
