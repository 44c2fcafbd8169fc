"""dbt's manifest for this repository's project: where the project is, whether the manifest is
older than the project, and re-parsing it. Imports nothing heavy, so the test session's controller
can refresh the manifest before xdist workers import orchestration.assets.transform at once.

Parsing happens before Dagster loads the code, never when it imports it (except under `dagster
dev`, where dagster-dbt's own convention re-parses on every reload so SQL edits show): every
`vidrec` command runs `python -m orchestration.dbt_manifest` first, as `vidrec prepare` does for
services started with Dagster's own commands, and the test session's controller parses before
its workers start. Importing the definitions over a stale manifest is an error that says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"


def parse_dbt_project() -> None:
    """Write target/manifest.json with this environment's dbt (PATH need not include the venv)."""
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "parse", "--quiet",
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        check=True,
    )


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
