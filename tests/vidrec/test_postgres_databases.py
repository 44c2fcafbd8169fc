"""The production profile's databases are created on the real local PostgreSQL when missing, and a
server that is down is one clear error naming its URL (password hidden)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, job, op

from vidrec.cli import main
from vidrec.dagster_yaml import write_dagster_yaml
from vidrec.postgres_databases import PostgresUnavailableError, ensure_database, ensure_databases, redacted
from vidrec.settings import VidrecSettings

SERVER = "postgresql://postgres@127.0.0.1:5432"


def _server_is_up() -> bool:
    try:
        psycopg2.connect(f"{SERVER}/postgres", connect_timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


needs_postgres = pytest.mark.skipif(not _server_is_up(), reason=f"PostgreSQL is not reachable at {SERVER}")


def _existing_databases() -> set[str]:
    with psycopg2.connect(f"{SERVER}/postgres") as connection, connection.cursor() as cursor:
        cursor.execute("select datname from pg_database")
        names = {name for (name,) in cursor.fetchall()}
    connection.close()
    return names


@pytest.fixture
def database_name() -> Iterator[str]:
    """A name no database has yet; whatever the test creates under it (and `<it>_dagster`) is dropped."""
    name = f"vidrec_test_{uuid.uuid4().hex[:8]}"
    yield name
    admin = psycopg2.connect(f"{SERVER}/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        for database in (name, f"{name}_dagster"):
            cursor.execute(f'drop database if exists "{database}" with (force)')
    admin.close()


def _dead_server_url(database: str = "vidrec", password: str | None = None) -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credentials = f"postgres:{password}" if password else "postgres"
    return f"postgresql://{credentials}@127.0.0.1:{port}/{database}"


@needs_postgres
def test_a_missing_database_is_created_once(database_name):
    url = f"{SERVER}/{database_name}"

    created = ensure_databases(url, f"{url}_dagster")
    again = ensure_databases(url, f"{url}_dagster")

    assert created == [database_name, f"{database_name}_dagster"]
    assert again == []
    assert {database_name, f"{database_name}_dagster"} <= _existing_databases()


@needs_postgres
def test_vidrec_prepare_creates_the_databases_of_mlflow_and_dagster(tmp_path, database_name):
    environment = {"VIDREC_HOME": str(tmp_path), "VIDREC_PROFILE": "production",
                   "VIDREC_POSTGRES_URL": f"{SERVER}/{database_name}"}
    result = CliRunner().invoke(main, ["prepare"], env=environment)

    assert result.exit_code == 0, result.output
    assert f"created PostgreSQL database '{database_name}'" in result.output
    assert f"created PostgreSQL database '{database_name}_dagster'" in result.output
    assert {database_name, f"{database_name}_dagster"} <= _existing_databases()


@needs_postgres
def test_dagster_stores_runs_in_the_created_database(tmp_path, database_name):
    settings = VidrecSettings(home=tmp_path, profile="production", postgres_url=f"{SERVER}/{database_name}")
    ensure_databases(settings.postgres_url, settings.dagster_postgres_url)
    write_dagster_yaml(settings)

    @op
    def say_done() -> str:
        return "done"

    @job
    def tiny_job():
        say_done()

    instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:
        run_id = tiny_job.execute_in_process(instance=instance).run_id
    finally:
        instance.dispose()

    with psycopg2.connect(settings.dagster_postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("select run_id, status from runs")
        assert cursor.fetchall() == [(run_id, "SUCCESS")]
    connection.close()
    assert not (settings.dagster_home / "history").exists()


def test_a_server_that_is_down_is_an_error_naming_its_url_without_the_password():
    url = _dead_server_url(password="s3cret")

    with pytest.raises(PostgresUnavailableError) as raised:
        ensure_database(url)

    assert redacted(url) in str(raised.value)
    assert "postgres:***@" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_the_cli_stops_before_starting_dagster_when_postgres_is_down(tmp_path):
    url = _dead_server_url()
    result = CliRunner().invoke(
        main, ["pipeline"],
        env={"VIDREC_HOME": str(tmp_path), "VIDREC_PROFILE": "production", "VIDREC_POSTGRES_URL": url},
    )

    assert result.exit_code == 1
    assert f"cannot connect to PostgreSQL at {url} (" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "dagster" / "dagster.yaml").exists()


def test_a_postgres_url_without_a_database_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(
        main, ["pipeline"],
        env={"VIDREC_HOME": str(tmp_path), "VIDREC_PROFILE": "production",
             "VIDREC_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432"},
    )

    assert result.exit_code == 2
    assert "VIDREC_POSTGRES_URL" in result.output
    assert "postgresql://user[:password]@host[:port]/database" in result.output
