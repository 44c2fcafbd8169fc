"""The production profile's PostgreSQL databases, created when missing.

MLflow (`settings.postgres_url`) and Dagster (`settings.dagster_postgres_url`) create their own
tables, but neither creates the database they live in. A `vidrec` command in the production profile
makes sure both exist before it starts them, so a fresh server needs nothing but the role, and a
server that is down is one clear error naming its URL instead of a traceback from deep inside
whichever tool touched it first. Existing databases are never altered.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import errors, sql

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
# Where CREATE DATABASE is issued from: PostgreSQL's own maintenance database, present on every server.
MAINTENANCE_DATABASE = "postgres"


class PostgresUnavailableError(RuntimeError):
    """The server cannot be reached, or a database cannot be opened nor created there."""


def ensure_databases(*postgres_urls: str) -> list[str]:
    """Create each URL's database where it does not exist yet; returns the names created."""
    return [name for url in postgres_urls if (name := ensure_database(url)) is not None]


def ensure_database(postgres_url: str) -> str | None:
    """The database of `postgres_url`, created if missing (its name is returned then, else None).

    Opening the database itself comes first, so a role that may use but not create databases works
    as long as they exist; only when that fails does it ask the maintenance database whether the
    database is missing, and create it.
    """
    database = urlsplit(postgres_url).path.strip("/")
    try:
        psycopg2.connect(postgres_url, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
        return None
    except psycopg2.OperationalError as open_error:
        first_problem = _one_line(open_error)
    try:
        admin = psycopg2.connect(postgres_url, dbname=MAINTENANCE_DATABASE, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg2.OperationalError:
        raise PostgresUnavailableError(
            f"cannot connect to PostgreSQL at {redacted(postgres_url)} ({first_problem}); start the server or "
            "fix VIDREC_POSTGRES_URL (the production profile keeps MLflow's and Dagster's state there)"
        ) from None
    try:
        admin.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with admin.cursor() as cursor:
            cursor.execute("select 1 from pg_database where datname = %s", (database,))
            if cursor.fetchone() is not None:  # it exists: the first error was about something else
                raise PostgresUnavailableError(
                    f"cannot open database {database!r} at {redacted(postgres_url)}: {first_problem}"
                )
            try:
                cursor.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
            except errors.DuplicateDatabase:  # another command created it in the meantime
                return None
            except psycopg2.Error as create_error:
                raise PostgresUnavailableError(
                    f"database {database!r} does not exist at {redacted(postgres_url)} and cannot be created "
                    f"({_one_line(create_error)}); create it (createdb {database}) or grant the role CREATEDB"
                ) from None
    finally:
        admin.close()
    logger.info("created PostgreSQL database %r at %s", database, redacted(postgres_url))
    return database


def redacted(postgres_url: str) -> str:
    """The URL with its password, if any, replaced by ***: safe to print in an error or a log."""
    parts = urlsplit(postgres_url)
    if parts.password is None:
        return postgres_url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
