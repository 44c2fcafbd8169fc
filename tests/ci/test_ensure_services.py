""".ci/ensure-services: services that answer are left alone, stopped ones are started, missing ones are
named. The shared PostgreSQL and Redis of this machine are never stopped to test it: a stopped Redis is
a throwaway redis-server on a free port, a stopped PostgreSQL is a PATH of stand-in pg_* commands."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg2
import pytest
import redis

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "ensure-services"
BASH = shutil.which("bash")
needs_both = pytest.mark.skipif(
    not (shutil.which("pg_isready") and shutil.which("redis-server")), reason="PostgreSQL or Redis not installed here"
)


def _run(path: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT)], env={**os.environ, "PATH": path, **environment},
                          capture_output=True, text=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_started_at():
    with psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres") as connection, connection.cursor() as cursor:
        cursor.execute("select pg_postmaster_start_time()")
        started = cursor.fetchone()[0]
    connection.close()
    return started


@needs_both
def test_services_that_answer_are_left_as_they_are():
    postgres_started = _postgres_started_at()
    redis_process = redis.Redis(port=6379).info("server")["process_id"]

    finished = _run(os.environ["PATH"])

    assert finished.returncode == 0, finished.stderr
    assert "PostgreSQL already answers at 127.0.0.1:5432 (left as it is)" in finished.stdout
    assert "Redis already answers at 127.0.0.1:6379 (left as it is)" in finished.stdout
    assert _postgres_started_at() == postgres_started
    assert redis.Redis(port=6379).info("server")["process_id"] == redis_process


@needs_both
def test_a_stopped_redis_is_started_and_waited_for(tmp_path):
    port = _free_port()
    try:
        finished = _run(os.environ["PATH"], VIDREC_CI_REDIS_PORT=str(port))

        assert finished.returncode == 0, finished.stderr
        assert "Redis is installed but stopped: redis-server --port" in finished.stdout
        assert f"Redis at 127.0.0.1:{port} answers" in finished.stdout
        assert redis.Redis(port=port).ping()
    finally:
        with contextlib.suppress(redis.exceptions.ConnectionError):
            redis.Redis(port=port).shutdown(nosave=True)  # the throwaway server this test started


def _stand_ins(directory: Path, scripts: dict[str, str]) -> str:
    """A PATH of `sleep` plus the given commands as small shell scripts."""
    directory.mkdir()
    (directory / "sleep").symlink_to(shutil.which("sleep"))
    for name, body in scripts.items():
        (directory / name).write_text(f"#!{BASH}\n{body}\n")
        (directory / name).chmod(0o755)
    return str(directory)


def test_a_stopped_postgres_cluster_is_started_with_pg_ctlcluster(tmp_path):
    started = tmp_path / "started"
    path = _stand_ins(tmp_path / "bin", {
        "pg_isready": f'[ -e "{started}" ]',  # answers once the cluster has been started
        "pg_lsclusters": 'echo "15 main 5432 down postgres /var/lib/postgresql/15/main log"\n'
                         'echo "14 old 5433 down postgres /var/lib/postgresql/14/old log"',
        "pg_ctlcluster": f'echo "$@" >> "{started}"',
        "redis-cli": "echo PONG",
    })

    finished = _run(path)

    assert finished.returncode == 0, finished.stderr
    assert started.read_text() == "15 main start\n"  # only the cluster on the tests' port
    assert "PostgreSQL is installed but stopped: pg_ctlcluster 15 main start" in finished.stdout
    assert "PostgreSQL at 127.0.0.1:5432 answers" in finished.stdout


def test_a_postgres_that_never_answers_fails_after_the_wait(tmp_path):
    path = _stand_ins(tmp_path / "bin", {
        "pg_isready": "exit 2",
        "pg_lsclusters": 'echo "15 main 5432 down postgres /var/lib/postgresql/15/main log"',
        "pg_ctlcluster": "exit 0",
    })

    finished = _run(path, VIDREC_CI_SERVICE_WAIT_SECONDS="1")

    assert finished.returncode == 1
    assert "PostgreSQL at 127.0.0.1:5432 was started but does not answer after 1 s" in finished.stderr


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ({}, "PostgreSQL is missing (no pg_isready on PATH)"),
        ({"pg_isready": "exit 0"}, "Redis is missing (no redis-cli on PATH)"),
        ({"pg_isready": "exit 0", "redis-cli": "exit 1"}, "redis-server is missing"),
    ],
)
def test_a_machine_without_a_service_fails_naming_what_is_missing(tmp_path, present, missing):
    finished = _run(_stand_ins(tmp_path / "bin", present))

    assert finished.returncode == 1
    assert missing in finished.stderr
