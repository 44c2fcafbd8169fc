"""dbt's manifest for this repository's project: where the project is, whether the manifest is
older than the project, and re-parsing it. Imports nothing heavy, so the test session's controller
can refresh the manifest before xdist workers import orchestration.assets.transform at once.

Parsing happens before Dagster loads the code, never when it imports it (except under `dagster
dev`, where dagster-dbt's convention of re-parsing on every reload so SQL edits show is kept for a
stale manifest only: every process that loads the code there would otherwise rewrite it): every
`vidrec` command runs `python -m orchestration.dbt_manifest` first, as `vidrec prepare` does for
services started with Dagster's own commands, and the test session's controller parses before
its workers start. Importing the definitions over a stale manifest is an error that says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def parse_dbt_project() -> None:
    """Write target/manifest.json with this environment's dbt (PATH need not include the venv).

    dbt writes into a scratch directory beside the manifest, which is then renamed into place:
    under `dagster dev` every process that loads the code (webserver, daemon, each run's step
    processes) may parse while another reads, and a reader must get the old manifest or the new
    one, never a file half written. The scratch directory starts with the last parse's
    partial_parse.msgpack, so dbt still re-parses only what changed."""
    target = MANIFEST_PATH.parent
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parse-", dir=target) as scratch:
        if (target / PARTIAL_PARSE_FILE).exists():
            shutil.copy2(target / PARTIAL_PARSE_FILE, Path(scratch) / PARTIAL_PARSE_FILE)
        subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), "parse", "--quiet",
             "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
             "--target-path", scratch],
            check=True,
        )
        if (Path(scratch) / PARTIAL_PARSE_FILE).exists():
            os.replace(Path(scratch) / PARTIAL_PARSE_FILE, target / PARTIAL_PARSE_FILE)
        os.replace(Path(scratch) / MANIFEST_PATH.name, MANIFEST_PATH)


def manifest_is_stale() -> bool:
    """True when the manifest is missing or older than any file of the dbt project."""
    if not MANIFEST_PATH.exists():
        return True
    built = MANIFEST_PATH.stat().st_mtime
    sources = [
        path
        for folder in ("models", "macros", "tests")
        for path in (DBT_PROJECT_DIR / folder).rglob("*")
        if path.suffix in (".sql", ".yml")
    ]
    return any(path.stat().st_mtime > built for path in [*sources, DBT_PROJECT_DIR / "dbt_project.yml"])


class StaleDbtManifest(RuntimeError):
    """The dbt project changed after its manifest was written: the assets would not match the SQL."""


def require_fresh_manifest() -> None:
    if manifest_is_stale():
        raise StaleDbtManifest(
            f"dbt's manifest ({MANIFEST_PATH}) is missing or older than the dbt project: run "
            "`vidrec prepare` (or `python -m orchestration.dbt_manifest`) before loading the Dagster "
            "definitions; `vidrec` commands and `dagster dev` do it themselves"
        )


if __name__ == "__main__":
    if manifest_is_stale():
        parse_dbt_project()
        sys.stderr.write(f"dbt manifest re-parsed: {MANIFEST_PATH}\n")
