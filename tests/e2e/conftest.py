"""A whole pipeline run on a tiny simulated dataset, shared by the end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance

from orchestration.definitions import build_definitions
from vidrec.settings import VidrecSettings

TINY_DATA = {"VIDREC_SIM_USERS": "150", "VIDREC_SIM_VIDEOS": "240", "VIDREC_SIM_DAYS": "10"}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VidrecSettings, object, DagsterInstance]]:
    """Materialize every asset (with every check) into a temporary VIDREC_HOME."""
    home = tmp_path_factory.mktemp("vidrec_home")
    saved = {key: os.environ.get(key) for key in [*TINY_DATA, "VIDREC_HOME"]}
    os.environ.update({**TINY_DATA, "VIDREC_HOME": str(home)})
    try:
        settings = VidrecSettings()
        definitions = build_definitions(settings)
        instance = DagsterInstance.ephemeral()
        result = definitions.resolve_job_def("refresh_everything").execute_in_process(instance=instance)
        yield settings, result, instance, definitions
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def service_url(pipeline_run) -> Iterator[str]:
    """The real BentoML service over loopback HTTP, serving the champions of `pipeline_run`."""
    settings = pipeline_run[0]
    port = _free_port()
    environment = {**os.environ, "VIDREC_HOME": str(settings.home), "BENTOML_HOME": str(settings.home / "bentoml")}
    # A file, not a pipe: nobody drains a pipe while tests run, and a full one blocks the server's logging.
    log_path = settings.home / "bentoml_serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:RecommendationService",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"bentoml serve exited:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("service not ready within 120 s")
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
