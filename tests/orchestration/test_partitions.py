"""Day partitions: registered from the day directories present, runs named by the narrowest range."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance

from orchestration.partitions import NoDaysError, days_between, days_with_data, range_tags, register_days
from orchestration.refresh import main as refresh_main
from orchestration.refresh import prepare_refresh
from tests.orchestration.quarantine_data import write_tiny_raw_log
from vidrec.settings import VidrecSettings

START, END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def test_the_days_are_those_any_event_table_holds_raw_or_validated(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    for directory in ("raw/watches/day=2026-01-02", "raw/searches/day=2026-01-01", "raw/users/day=1999-01-01",
                      "validated/impressions/day=2026-01-05", "raw/watches/_empty"):
        (tmp_path / directory).mkdir(parents=True)

    # users are the catalogue, not partitioned; a validated day whose raw files are gone stays a day
    assert days_with_data(settings) == ["2026-01-01", "2026-01-02", "2026-01-05"]


def test_a_run_spans_the_narrowest_range_holding_the_days_asked_for():
    instance = DagsterInstance.ephemeral()
    register_days(instance, ["2026-01-03", "2026-01-01", "2026-01-02"])
    register_days(instance, ["1997-09-20"])  # an import of older data, registered later

    assert instance.get_dynamic_partitions("raw_days") == ["2026-01-01", "2026-01-02", "2026-01-03", "1997-09-20"]
    assert range_tags(instance, ["2026-01-02"]) == {START: "2026-01-02", END: "2026-01-02"}
    assert range_tags(instance, ["1997-09-20", "2026-01-02"]) == {START: "2026-01-02", END: "1997-09-20"}
    assert register_days(instance, ["2026-01-02"]) == []  # registering is idempotent


def test_unknown_days_are_refused_with_what_is_known():
    instance = DagsterInstance.ephemeral()
    register_days(instance, ["2026-01-01", "2026-01-02"])

    with pytest.raises(NoDaysError, match=r"2026-02-01 is not a partition .* from 2026-01-01 to 2026-01-02"):
        days_between(instance, "2026-01-01", "2026-02-01")
    with pytest.raises(NoDaysError, match="register them first"):
        range_tags(instance, ["2030-01-01"])


def test_preparing_a_refresh_registers_every_day_and_names_the_whole_range_or_a_backfill(tmp_path):
    settings = write_tiny_raw_log(tmp_path)
    instance = DagsterInstance.ephemeral()

    everything = prepare_refresh(settings, instance)
    backfill = prepare_refresh(settings, instance, "2026-01-02", "2026-01-04")

    assert everything == {START: "2026-01-01", END: "2026-01-06"}
    assert backfill == {START: "2026-01-02", END: "2026-01-04"}


def test_the_refresh_command_rejects_a_malformed_range(capsys):
    with pytest.raises(SystemExit) as exited:
        refresh_main(["--days", "2026-01-02"])

    assert exited.value.code == 2
    assert "--days expects FIRST...LAST" in capsys.readouterr().err
