"""A whole pipeline run on a tiny simulated dataset, shared by the end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from orchestration.definitions import build_definitions
from orchestration.refresh import prepare_refresh
from tests.served_service import served
from vidrec.settings import VidrecSettings

TINY_DATA = {"VIDREC_SIM_USERS": "150", "VIDREC_SIM_VIDEOS": "240", "VIDREC_SIM_DAYS": "10"}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VidrecSettings, object, DagsterInstance]]:
    """Materialize every asset (with every check) into a temporary VIDREC_HOME."""
    home = tmp_path_factory.mktemp("vidrec_home")
    with pytest.MonkeyPatch.context() as patch:  # the environment is restored afterwards
        for key, value in {**TINY_DATA, "VIDREC_HOME": str(home)}.items():
            patch.setenv(key, value)
        settings = VidrecSettings()
        definitions = build_definitions(settings)
        instance = DagsterInstance.ephemeral()
        result = definitions.resolve_job_def("refresh_everything").execute_in_process(
            instance=instance, tags=prepare_refresh(settings, instance))
        yield settings, result, instance, definitions


@pytest.fixture(scope="session")
def service_url(pipeline_run) -> Iterator[str]:
    """The real BentoML service over loopback HTTP, serving the champions of `pipeline_run`."""
    settings = pipeline_run[0]
    environment = {**os.environ, "VIDREC_HOME": str(settings.home), "BENTOML_HOME": str(settings.home / "bentoml")}
    with served("serving.service:RecommendationService", PROJECT_ROOT, environment,
                settings.home / "bentoml_serve.log") as url:
        yield url


@pytest.fixture(scope="module")
def serving(pipeline_run):
    """(runtime, recommender) of `pipeline_run`'s champions, in process (no HTTP)."""
    from serving.runtime import ServingRuntime

    runtime = ServingRuntime.open(pipeline_run[0])
    watcher = runtime.champion_watcher()
    assert watcher.poll(), watcher.not_ready_reason
    yield runtime, watcher.current
    runtime.close()
