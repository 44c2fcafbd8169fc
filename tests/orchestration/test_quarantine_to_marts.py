"""The issue's bar for the quarantine: a corrupted raw partition (a file with a wrong column type, a
future timestamp, a repeated event, unknown ids) is quarantined with counts and reasons while its
clean rows reach the marts, through the real dbt build, and the raw tables' whole Great
Expectations suites pass on the validated layer."""

from __future__ import annotations

import duckdb
import pytest
from dagster import DagsterInstance

from orchestration.assets import transform
from orchestration.checks import validated_table_checks
from tests.orchestration.quarantine_data import (
    BAD_PAIRS,
    CLEAN_PAIR_FROM_THE_TEXT_FILE,
    CORRUPTED_DAY,
    corrupt_watches,
    materialize_layers,
    partition_metadata,
    write_tiny_raw_log,
)

pytestmark = pytest.mark.e2e  # a real dbt build (~20 s)


def test_clean_rows_of_a_corrupted_partition_reach_the_marts_and_bad_rows_never_do(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDREC_QUARANTINE_SEVERITY", "warn")  # the hand-made log is 30% repeats and faults
    settings = write_tiny_raw_log(tmp_path)
    corrupt_watches(settings)

    result = materialize_layers(settings, DagsterInstance.ephemeral(),
                                extra=[transform.dbt_warehouse, *validated_table_checks])

    assert result.success
    suites = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()
              if evaluation.check_name.startswith("validated_")}
    assert len(suites) == 6 and all(suites.values()), suites
    assert partition_metadata(result, "watches", CORRUPTED_DAY)["quarantined_rows"] == 5
    with duckdb.connect() as connection:
        pairs = set(connection.sql(
            f"select user_id, video_id from read_parquet('{settings.marts_dir}/watch_interactions.parquet')"
        ).fetchall())
        ((validated_watches,),) = connection.sql(
            f"select count(*) from read_parquet('{settings.validated_dir}/watches/*/*.parquet')").fetchall()
    assert CLEAN_PAIR_FROM_THE_TEXT_FILE in pairs
    assert not pairs & BAD_PAIRS
    assert validated_watches == 12 + 1  # the hand-made watches less their repeat, and the castable row
