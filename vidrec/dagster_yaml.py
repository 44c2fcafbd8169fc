"""Dagster's instance file, DAGSTER_HOME/dagster.yaml, written from the settings at command time.

Where Dagster keeps its runs, event logs and schedules follows `VIDREC_PROFILE`, like every other
piece of state: SQLite files under `settings.dagster_home` by default (exactly the layout Dagster
picks when the file says nothing, so the runs of an older VIDREC_HOME stay visible), PostgreSQL
(`settings.dagster_postgres_url`, through dagster-postgres) in the production profile. The CLI
writes the file before it starts `dagster` or `bentoml`, never at import, so the file always
matches the settings of the command that runs.

vidrec owns one key of the file, `storage`; every other key (run coordinator, concurrency,
telemetry, ...) is the operator's and is kept as it was. Rewriting the file never touches stored
runs: switching profiles points Dagster at the other store and leaves the first one where it is.
This module imports neither Dagster nor anything above `vidrec/`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from vidrec.settings import VidrecSettings

FILE_NAME = "dagster.yaml"
STORAGE_KEY = "storage"
# Dagster's older per-store keys: it refuses a file that has them beside `storage`.
PER_STORE_KEYS = ("run_storage", "event_log_storage", "schedule_storage")
HEADER = (
    "# Dagster instance settings, rewritten by every `vidrec` command from the VIDREC_* settings.\n"
    "# vidrec owns `storage` (from VIDREC_PROFILE); other keys you add here are kept, comments are not.\n"
)


class DagsterConfigError(ValueError):
    """An existing dagster.yaml that vidrec cannot merge its storage into without losing something."""


def storage_config(settings: VidrecSettings) -> dict[str, Any]:
    """The `storage` value of dagster.yaml for the settings' profile."""
    if settings.profile == "production":
        return {"postgres": {"postgres_url": settings.dagster_postgres_url}}
    return {"sqlite": {"base_dir": str(settings.dagster_home)}}


def write_dagster_yaml(settings: VidrecSettings) -> Path:
    """Write (or update) `settings.dagster_home`/dagster.yaml; returns its path.

    The file is replaced atomically and only when its content changes, and readable by its owner
    only: in production it holds the PostgreSQL URL, password included if the URL has one.
    """
    path = settings.dagster_home / FILE_NAME
    config = {**_operator_config(path), STORAGE_KEY: storage_config(settings)}
    text = HEADER + yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
    if path.exists() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{FILE_NAME}.")
    try:
        with os.fdopen(handle, "w") as file:  # mkstemp's file is already owner-only (0600)
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _operator_config(path: Path) -> dict[str, Any]:
    """The existing file's keys other than `storage`, or an error that leaves the file as it is."""
    if not path.exists():
        return {}
    try:
        existing = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise DagsterConfigError(f"{path} is not valid YAML ({error}); fix or delete it") from None
    if existing is None:  # an empty or comment-only file (what vidrec wrote before it set storage)
        return {}
    if not isinstance(existing, dict):
        raise DagsterConfigError(f"{path} must hold a mapping of Dagster settings, found {type(existing).__name__}")
    if clashing := [key for key in PER_STORE_KEYS if key in existing]:
        raise DagsterConfigError(
            f"{path} sets {', '.join(clashing)}, but vidrec sets `storage` from VIDREC_PROFILE and Dagster "
            "refuses both: remove those keys (runs already stored stay where they are)"
        )
    return {key: value for key, value in existing.items() if key != STORAGE_KEY}
