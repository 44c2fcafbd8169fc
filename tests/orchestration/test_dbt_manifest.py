"""The Dagster definitions load only over a manifest as new as the dbt project; parsing is done
before they load, not while they are imported."""

import os
from pathlib import Path

import pytest

from orchestration import dbt_manifest


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mart.sql").write_text("select 1 as id")
    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    (tmp_path / "target").mkdir()
    monkeypatch.setattr(dbt_manifest, "DBT_PROJECT_DIR", tmp_path)
    monkeypatch.setattr(dbt_manifest, "MANIFEST_PATH", tmp_path / "target" / "manifest.json")
    return tmp_path


def _age(path: Path, seconds_ago: float) -> None:
    stamp = path.stat().st_mtime - seconds_ago
    os.utime(path, (stamp, stamp))


def test_a_missing_manifest_is_refused_with_the_command_that_fixes_it(project: Path):
    with pytest.raises(dbt_manifest.StaleDbtManifest, match="vidrec prepare"):
        dbt_manifest.require_fresh_manifest()


def test_a_model_edited_after_the_parse_makes_the_manifest_stale(project: Path):
    manifest = project / "target" / "manifest.json"
    manifest.write_text("{}")
    _age(manifest, 60)

    with pytest.raises(dbt_manifest.StaleDbtManifest):
        dbt_manifest.require_fresh_manifest()


def test_a_manifest_newer_than_every_model_loads(project: Path):
    for path in (project / "models" / "mart.sql", project / "dbt_project.yml"):
        _age(path, 60)
    (project / "target" / "manifest.json").write_text("{}")

    dbt_manifest.require_fresh_manifest()
