"""The built Bento serves in the production profile: MLflow on PostgreSQL, Feast online store on Redis.

The pipeline runs on a tiny simulated dataset against the real local PostgreSQL (a database made for
this test and dropped after) and Redis (one database number, flushed before and after); its
`recommendation_bento` asset builds the Bento, and the test serves that built Bento, not the source
tree, so a package missing from the Bento's environment or a file missing from its `include` fails
here rather than in a deployment.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest
import redis
from dagster import DagsterInstance

from orchestration.definitions import build_definitions
from orchestration.refresh import prepare_refresh
from tests.served_service import served
from vidrec.settings import VidrecSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TINY_DATA = {"VIDREC_SIM_USERS": "150", "VIDREC_SIM_VIDEOS": "240", "VIDREC_SIM_DAYS": "10"}
POSTGRES_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
# A database number no other test uses (tests/feature_repo uses 13): this test flushes it. 12 in a
# serial run and on xdist's first worker, 11, 10, ... on the others: a worker must not flush the
# store of another that builds this module's fixtures too (`--dist load` may split the module).
REDIS_DB = 12 - int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
READY_TIMEOUT_SECONDS = 180
pytestmark = pytest.mark.e2e  # the whole pipeline, and the built Bento served over HTTP


def _unreachable_services() -> str | None:
    """Why the production profile cannot run here, or None when Redis and PostgreSQL answer."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as error:
        return f"Redis is not reachable at {REDIS_URL} ({error})"
    try:
        psycopg2.connect(**POSTGRES_ADMIN, connect_timeout=2).close()
    except psycopg2.OperationalError as error:
        detail = " ".join(str(error).split())
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN['host']}:{POSTGRES_ADMIN['port']} ({detail})"
    return None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A uniquely named database on the local PostgreSQL, dropped afterwards."""
    if reason := _unreachable_services():
        pytest.skip(reason)
    database = f"vidrec_bento_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(**POSTGRES_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f"create database {database}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{database}"
    finally:
        admin.cursor().execute(f"drop database if exists {database} with (force)")
        admin.close()


@pytest.fixture(scope="module")
def production_pipeline(postgres_url, tmp_path_factory: pytest.TempPathFactory):
    """Every asset materialized in the production profile; yields the settings and the run result."""
    home = tmp_path_factory.mktemp("vidrec_production_home")
    environment = {
        **TINY_DATA,
        "VIDREC_HOME": str(home),
        "VIDREC_PROFILE": "production",
        "VIDREC_POSTGRES_URL": postgres_url,
        "VIDREC_REDIS_URL": REDIS_URL,
    }
    online_store = redis.Redis.from_url(REDIS_URL)
    online_store.flushdb()
    try:
        with pytest.MonkeyPatch.context() as patch:  # the environment is restored afterwards
            for key, value in environment.items():
                patch.setenv(key, value)
            settings = VidrecSettings()
            instance = DagsterInstance.ephemeral()
            result = build_definitions(settings).resolve_job_def("refresh_everything").execute_in_process(
                instance=instance, tags=prepare_refresh(settings, instance)
            )
            yield settings, result
    finally:
        online_store.flushdb()


@pytest.fixture(scope="module")
def built_bento(production_pipeline) -> tuple[str, Path]:
    """The tag and BENTOML_HOME of the Bento the pipeline's `recommendation_bento` asset built."""
    _, result = production_pipeline
    assert result.success
    metadata = result.asset_materializations_for_node("recommendation_bento")[-1].metadata
    return metadata["bento_tag"].value, Path(metadata["bentoml_home"].value)


@pytest.fixture(scope="module")
def bento_url(production_pipeline, built_bento, tmp_path_factory) -> Iterator[str]:
    """`bentoml serve <tag>` of the built Bento, started outside the source tree, over loopback HTTP."""
    settings, _ = production_pipeline
    tag, bentoml_home = built_bento
    environment = {
        **os.environ,
        **TINY_DATA,
        "VIDREC_HOME": str(settings.home),
        "VIDREC_PROFILE": "production",
        "VIDREC_POSTGRES_URL": settings.postgres_url,
        "VIDREC_REDIS_URL": settings.redis_url,
        "BENTOML_HOME": str(bentoml_home),
    }
    with served(tag, tmp_path_factory.mktemp("elsewhere"), environment, bentoml_home / "bentoml_serve.log",
                READY_TIMEOUT_SECONDS) as url:
        yield url


def test_the_bento_installs_exactly_the_project_dependencies(built_bento):
    tag, bentoml_home = built_bento
    name, version = tag.split(":")
    requirements = (bentoml_home / "bentos" / name / version / "env" / "python" / "requirements.txt").read_text()
    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    installed = [line for line in requirements.splitlines() if line.strip()]
    assert installed[: len(declared)] == declared
    assert {"redis>=5,<7", "psycopg2-binary>=2.9,<3"} <= set(installed)


def test_the_pipeline_wrote_to_postgres_and_redis(production_pipeline):
    settings, _ = production_pipeline
    assert settings.mlflow_tracking_uri.startswith("postgresql+psycopg2://")
    with psycopg2.connect(settings.postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from registered_models where name like 'vidrec-%'")
        assert cursor.fetchone()[0] == 5
    assert redis.Redis.from_url(settings.redis_url).dbsize() > 0
    assert not (settings.feast_dir / "online_store.db").exists()
    assert not (settings.mlflow_dir / "mlflow.db").exists()


def test_the_built_bento_serves_a_personal_recommendation_in_production(production_pipeline, bento_url):
    settings, _ = production_pipeline
    history = pd.read_parquet(settings.marts_dir / "user_watch_history.parquet")
    user = int(history.sort_values("event_timestamp")["user_id"].iloc[-1])

    assert httpx.get(f"{bento_url}/readyz", timeout=10).status_code == 200
    response = httpx.post(f"{bento_url}/recommend", json={"user_id": user, "k": 5, "surface": "home"}, timeout=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["known_user"] is True
    assert len(body["items"]) == 5
    assert {item["source"] for item in body["items"]} != {"popular"}
