"""DAGSTER_HOME/dagster.yaml follows the profile, keeps the operator's keys and loses no stored run."""

from __future__ import annotations

import stat

import pytest
import yaml
from click.testing import CliRunner
from dagster import DagsterInstance, job, op

from vidrec.cli import main
from vidrec.dagster_yaml import DagsterConfigError, storage_config, write_dagster_yaml
from vidrec.settings import VidrecSettings

# What vidrec wrote before the profile chose Dagster's storage: a comment, so Dagster's defaults.
OLD_VIDREC_FILE = "# Dagster instance settings; defaults keep everything in this directory.\n"


@op
def say_done() -> str:
    return "done"


@job
def tiny_job():
    say_done()


def _run_tiny_job(settings: VidrecSettings) -> str:
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:
        return tiny_job.execute_in_process(instance=instance).run_id
    finally:
        instance.dispose()


def _stored_run_ids(settings: VidrecSettings) -> set[str]:
    instance = DagsterInstance.from_config(str(settings.dagster_home))
    try:
        return {run.run_id for run in instance.get_runs()}
    finally:
        instance.dispose()


def _written(settings: VidrecSettings) -> dict:
    return yaml.safe_load((settings.dagster_home / "dagster.yaml").read_text())


def test_default_profile_keeps_runs_in_sqlite_under_dagster_home(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    write_dagster_yaml(settings)

    run_id = _run_tiny_job(settings)

    assert _written(settings)["storage"] == {"sqlite": {"base_dir": str(settings.dagster_home)}}
    assert (settings.dagster_home / "history" / "runs.db").exists()
    assert (settings.dagster_home / "history" / "runs" / f"{run_id}.db").exists()


def test_production_profile_points_dagster_at_its_own_database_beside_mlflows(tmp_path):
    settings = VidrecSettings(home=tmp_path, profile="production",
                              postgres_url="postgresql://vidrec:s3cret@db.internal:5433/recs")

    write_dagster_yaml(settings)

    assert _written(settings)["storage"] == {
        "postgres": {"postgres_url": "postgresql://vidrec:s3cret@db.internal:5433/recs_dagster"}
    }
    # the file may hold a password: its owner reads it, nobody else
    assert stat.S_IMODE((settings.dagster_home / "dagster.yaml").stat().st_mode) == 0o600


def test_distributed_profile_keeps_dagster_on_sqlite(tmp_path):
    settings = VidrecSettings(home=tmp_path, profile="distributed")
    assert storage_config(settings) == {"sqlite": {"base_dir": str(settings.dagster_home)}}


def test_runs_of_an_older_home_stay_visible_after_the_rewrite(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    settings.dagster_home.mkdir(parents=True)
    (settings.dagster_home / "dagster.yaml").write_text(OLD_VIDREC_FILE)
    older_run = _run_tiny_job(settings)

    write_dagster_yaml(settings)

    assert _stored_run_ids(settings) == {older_run}


def test_switching_to_production_and_back_loses_no_run(tmp_path):
    default = VidrecSettings(home=tmp_path)
    write_dagster_yaml(default)
    run_id = _run_tiny_job(default)

    write_dagster_yaml(VidrecSettings(home=tmp_path, profile="production"))
    write_dagster_yaml(default)

    assert _stored_run_ids(default) == {run_id}


def test_the_operators_own_keys_are_kept_and_an_unchanged_file_is_not_rewritten(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    path = settings.dagster_home / "dagster.yaml"
    settings.dagster_home.mkdir(parents=True)
    path.write_text("telemetry:\n  enabled: false\nrun_queue:\n  max_concurrent_runs: 2\n")

    write_dagster_yaml(settings)
    first = path.stat()
    write_dagster_yaml(settings)

    assert _written(settings) == {
        "telemetry": {"enabled": False},
        "run_queue": {"max_concurrent_runs": 2},
        "storage": {"sqlite": {"base_dir": str(settings.dagster_home)}},
    }
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    instance = DagsterInstance.from_config(str(settings.dagster_home))  # and Dagster reads them
    try:
        assert instance.get_settings("telemetry") == {"enabled": False}
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
    finally:
        instance.dispose()


@pytest.mark.parametrize(
    ("existing", "named"),
    [
        ("run_storage:\n  module: somewhere\n  class: Elsewhere\n", "run_storage"),
        ("storage: [unclosed\n", "not valid YAML"),
        ("- a list\n- of things\n", "must hold a mapping"),
    ],
)
def test_a_file_vidrec_cannot_merge_into_is_an_error_that_leaves_it_as_it_was(tmp_path, existing, named):
    settings = VidrecSettings(home=tmp_path)
    path = settings.dagster_home / "dagster.yaml"
    settings.dagster_home.mkdir(parents=True)
    path.write_text(existing)

    with pytest.raises(DagsterConfigError, match=named) as raised:
        write_dagster_yaml(settings)

    assert str(path) in str(raised.value)
    assert path.read_text() == existing
    assert [entry.name for entry in settings.dagster_home.iterdir()] == ["dagster.yaml"]  # no temporary left


def test_vidrec_prepare_writes_the_file_and_names_dagster_home(tmp_path):
    result = CliRunner().invoke(main, ["prepare"], env={"VIDREC_HOME": str(tmp_path)})

    assert result.exit_code == 0, result.output
    assert f"DAGSTER_HOME={tmp_path / 'dagster'} (default profile)" in result.output
    assert yaml.safe_load((tmp_path / "dagster" / "dagster.yaml").read_text())["storage"] == {
        "sqlite": {"base_dir": str(tmp_path / "dagster")}
    }
