"""The `vidrec` CLI: discoverable commands, settings from the environment, clear errors."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from vidrec.cli import main
from vidrec.rawlog import RawManifest, read_raw_table


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("simulate", "pipeline", "serve", "recommend", "ui", "up"):
        assert command in result.output


def test_simulate_writes_raw_logs_under_vidrec_home(tmp_path):
    result = CliRunner().invoke(
        main, ["simulate", "--users", "40", "--videos", "60", "--days", "4", "--seed", "1"],
        env={"VIDREC_HOME": str(tmp_path)},
    )

    assert result.exit_code == 0, result.output
    assert "watches" in result.output
    manifest = RawManifest.read(tmp_path / "raw")
    assert manifest.parameters["users"] == 40
    assert read_raw_table("users", tmp_path / "raw")["user_id"].nunique() == 40


def test_simulate_rejects_a_too_small_population(tmp_path):
    result = CliRunner().invoke(main, ["simulate", "--users", "3"], env={"VIDREC_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "--users" in result.output


def test_recommend_says_how_to_start_the_service_when_it_is_down():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(main, ["recommend", "1", "--url", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert "vidrec serve" in result.output


def test_a_bad_setting_is_a_usage_error_naming_the_variable(tmp_path):
    result = CliRunner().invoke(main, ["simulate"], env={"VIDREC_HOME": str(tmp_path), "VIDREC_SIM_USERS": "many"})
    assert result.exit_code == 2
    assert "VIDREC_SIM_USERS='many'" in result.output
    assert "Traceback" not in result.output


def test_settings_that_contradict_each_other_are_a_usage_error_naming_both(tmp_path):
    result = CliRunner().invoke(main, ["simulate"], env={"VIDREC_HOME": str(tmp_path),
                                                         "VIDREC_SERVED_FEATURES_RETENTION_DAYS": "3"})
    assert result.exit_code == 2
    assert ("invalid setting(s): VIDREC_SERVED_FEATURES_RETENTION_DAYS (3) is shorter than "
            "VIDREC_SERVED_SKEW_WINDOW_DAYS (7)") in " ".join(result.output.split())
    assert "Traceback" not in result.output
