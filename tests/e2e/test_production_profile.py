"""The production profile, whole: `vidrec pipeline` and the service with VIDREC_PROFILE=production.

The pipeline runs the way an operator runs it (the `vidrec pipeline` command, so the CLI writes
dagster.yaml and creates the databases) on the tiny simulated data of the other e2e tests, against
the real local PostgreSQL and Redis; then the service answers one /recommend. Each test checks one
piece of state where the profile puts it: Dagster's run and materializations in PostgreSQL, MLflow's
registry in PostgreSQL, the online features in Redis, nothing in the default profile's local files.

Isolation, so the module runs beside the rest of the suite under pytest-xdist: a database named for
this session (MLflow's; Dagster's is `<it>_dagster`), which the CLI creates and the module drops;
Redis database 14, which no other test uses (tests/serving/test_bento_production.py counts down from
12 per worker, tests/feature_repo uses 13), flushed before and after. One file is one unit of the
suite's scheduler (`--dist loadgroup`), so no two workers build this module at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest
import redis
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from feature_repo.store import PROJECT as FEAST_PROJECT
from models.registry import CHAMPION_ALIAS, SERVED_ARTIFACTS
from tests.served_service import served
from vidrec.settings import VidrecSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VIDREC = str(Path(sys.executable).parent / "vidrec")
TINY_DATA = {"VIDREC_SIM_USERS": "150", "VIDREC_SIM_VIDEOS": "240", "VIDREC_SIM_DAYS": "10"}
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/14"
PIPELINE_TIMEOUT_SECONDS = 1800
# Feature views keyed by user that the pipeline materializes for every active user.
USER_FEATURE_VIEWS = ("user_profile", "user_activity", "user_watch_history")
STAGES = ("USER_FEATURES", "RETRIEVAL", "CANDIDATE_FEATURES", "RANKING", "POLICY")


@dataclass(frozen=True)
class ProductionRun:
    settings: VidrecSettings
    environment: dict[str, str]  # what `vidrec` and the service were started with


def _unreachable_services() -> str | None:
    """Why the production profile cannot run here, or None when Redis and PostgreSQL answer."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as error:
        return f"Redis is not reachable at {REDIS_URL} ({error}); .ci/run starts it"
    try:
        psycopg2.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=2).close()
    except psycopg2.OperationalError as error:
        return f"PostgreSQL is not reachable at {POSTGRES_SERVER} ({' '.join(str(error).split())}); .ci/run starts it"
    return None


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionRun]:
    """`vidrec pipeline` in the production profile over a fresh database and Redis database 14."""
    if reason := _unreachable_services():
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("vidrec_production_profile")
    vidrec_environment = {
        **TINY_DATA,
        "VIDREC_HOME": str(home),
        "VIDREC_PROFILE": "production",
        "VIDREC_POSTGRES_URL": f"{POSTGRES_SERVER}/vidrec_e2e_{uuid.uuid4().hex[:8]}",
        "VIDREC_REDIS_URL": REDIS_URL,
    }
    environment = {**os.environ, **vidrec_environment, "BENTOML_HOME": str(home / "bentoml")}
    settings = VidrecSettings(**{key.removeprefix("VIDREC_").lower(): value
                                 for key, value in vidrec_environment.items()})
    online_store = redis.Redis.from_url(REDIS_URL)
    online_store.flushdb()
    try:
        log_path = home / "vidrec_pipeline.log"
        with log_path.open("wb") as log:
            finished = subprocess.run([VIDREC, "pipeline"], cwd=PROJECT_ROOT, env=environment, stdout=log,
                                      stderr=subprocess.STDOUT, timeout=PIPELINE_TIMEOUT_SECONDS)
        assert finished.returncode == 0, f"vidrec pipeline failed:\n{log_path.read_text()[-6000:]}"
        yield ProductionRun(settings, environment)
    finally:
        online_store.flushdb()
        _drop_databases(settings.postgres_url, settings.dagster_postgres_url)


def _drop_databases(*postgres_urls: str) -> None:
    admin = psycopg2.connect(f"{POSTGRES_SERVER}/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        for url in postgres_urls:
            database = url.rsplit("/", 1)[1]
            assert database.startswith("vidrec_e2e_")  # never anything this module did not create
            cursor.execute(f'drop database if exists "{database}" with (force)')
    admin.close()


def _query(postgres_url: str, statement: str) -> list[tuple]:
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        rows = cursor.fetchall()
    connection.close()
    return rows


@pytest.fixture(scope="module")
def production_service_url(production) -> Iterator[str]:
    """The BentoML service of the source tree, started in the production profile. Its stage budgets
    are generous: this module checks where state lives, and on a loaded machine a 50 ms Redis read
    that ran out of budget would answer from the fallbacks instead."""
    generous_budgets = {f"VIDREC_BUDGET_{stage}_SECONDS": "10" for stage in STAGES}
    with served("serving.service:RecommendationService", PROJECT_ROOT, {**production.environment, **generous_budgets},
                production.settings.home / "bentoml_serve.log", ready_within_seconds=180) as url:
        yield url


@pytest.fixture(scope="module")
def recent_user(production) -> int:
    history = pd.read_parquet(production.settings.marts_dir / "user_watch_history.parquet")
    return int(history.sort_values("event_timestamp")["user_id"].iloc[-1])


def test_dagster_yaml_points_dagster_at_its_own_postgres_database(production):
    settings = production.settings
    written = (settings.dagster_home / "dagster.yaml").read_text()

    assert f"postgres_url: {settings.dagster_postgres_url}" in written
    assert settings.dagster_postgres_url.endswith("_dagster")
    assert settings.dagster_postgres_url != settings.postgres_url


def test_dagster_recorded_the_run_in_postgres(production):
    settings = production.settings

    runs = _query(settings.dagster_postgres_url, "select pipeline_name, status from runs")
    materialized = {json.loads(key)[-1] for (key,) in _query(
        settings.dagster_postgres_url,
        "select distinct asset_key from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'",
    )}

    assert runs == [("refresh_everything", "SUCCESS")]
    assert {"online_feature_store", "champion_models", "recommendation_bento"} <= materialized
    assert not (settings.dagster_home / "history").exists()  # the default profile's SQLite runs
    assert not (settings.dagster_home / "schedules").exists()


def test_dagster_reads_the_same_run_through_the_written_instance_file(production):
    instance = DagsterInstance.from_config(str(production.settings.dagster_home))
    try:
        [run] = instance.get_runs()
        bento = instance.get_latest_materialization_event(AssetKey("recommendation_bento"))
    finally:
        instance.dispose()

    assert (run.job_name, run.status) == ("refresh_everything", DagsterRunStatus.SUCCESS)
    assert bento is not None and bento.run_id == run.run_id


def test_mlflow_keeps_the_registry_and_champions_in_postgres(production):
    settings = production.settings

    champions = dict(_query(
        settings.postgres_url,
        f"select name, version::text from registered_model_aliases where alias = '{CHAMPION_ALIAS}'",
    ))
    ready_versions = set(_query(settings.postgres_url, "select name, version::text from model_versions "
                                                       "where status = 'READY'"))

    assert set(champions) == {artifact.name for artifact in SERVED_ARTIFACTS.values()}
    assert set(champions.items()) <= ready_versions
    assert not (settings.mlflow_dir / "mlflow.db").exists()


def test_online_features_live_in_redis(production, recent_user):
    settings = production.settings
    entity_key = EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(int64_val=recent_user)])
    online_store = redis.Redis.from_url(settings.redis_url)

    stored_fields = online_store.hkeys(_redis_key(FEAST_PROJECT, entity_key, entity_key_serialization_version=3))

    assert {f"_ts:{view}".encode() for view in USER_FEATURE_VIEWS} <= set(stored_fields)
    assert online_store.dbsize() > 150  # users, videos and requests: more keys than users alone
    assert not (settings.feast_dir / "online_store.db").exists()


def test_the_service_recommends_from_postgres_champions_and_redis_features(production, production_service_url,
                                                                          recent_user):
    champions = dict(_query(
        production.settings.postgres_url,
        f"select name, version::text from registered_model_aliases where alias = '{CHAMPION_ALIAS}'",
    ))

    request = {"user_id": recent_user, "k": 5, "surface": "home"}
    response = httpx.post(f"{production_service_url}/recommend", json=request, timeout=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["known_user"] is True
    assert body["degraded"] == []
    assert len({item["video_id"] for item in body["items"]}) == 5
    assert {item["source"] for item in body["items"]} != {"popular"}
    assert {name: version for name, version in body["model_versions"].items() if name in champions} == champions
