"""What a dbt build recomputes and what an online-store load covers, judged from the record of
the last one. The builds and loads themselves are held equal to whole ones elsewhere:
tests/dbt_project/test_incremental_marts.py (dbt) and tests/e2e/test_closed_loop.py (Feast)."""

from __future__ import annotations

import pandas as pd
import pytest

from orchestration.incremental_dbt import IncrementalBuild, plan_build, read_record, write_record
from orchestration.incremental_dbt import record_path as dbt_record_path
from orchestration.incremental_frames import FrameInputs
from orchestration.incremental_online import (
    DaySources,
    LoadRecord,
    online_store_identity,
    plan_online_load,
    write_load_record,
)
from orchestration.incremental_online import record_path as online_record_path
from vidrec.settings import VidrecSettings

THREE_DAYS = {"2026-01-01": "a", "2026-01-02": "b", "2026-01-03": "c"}


def _settings(tmp_path, **overrides) -> VidrecSettings:
    settings = VidrecSettings(home=tmp_path, **overrides)
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _recorded_dbt_build(settings: VidrecSettings, days: dict[str, str], code: str = "code-1") -> None:
    write_record(dbt_record_path(settings), FrameInputs(code=code, days=days))


def test_the_first_build_and_a_code_change_refresh_fully(tmp_path):
    settings = _settings(tmp_path)
    first = plan_build(settings, FrameInputs("code-1", THREE_DAYS))
    assert (first.full_refresh, first.cli_args(), first.dbt_vars()) == (True, ["--full-refresh"], {})

    _recorded_dbt_build(settings, THREE_DAYS)
    changed_code = plan_build(settings, FrameInputs("code-2", THREE_DAYS))
    assert changed_code.full_refresh and "dbt models" in changed_code.why


def test_a_new_day_recomputes_from_it_and_a_rejudged_old_day_from_that_day(tmp_path):
    settings = _settings(tmp_path)
    _recorded_dbt_build(settings, THREE_DAYS)

    new_day = plan_build(settings, FrameInputs("code-1", {**THREE_DAYS, "2026-01-04": "d"}))
    assert new_day == IncrementalBuild(False, "2026-01-04", new_day.why)
    assert new_day.dbt_vars() == {"incremental_from": "2026-01-04"} and new_day.cli_args() == []

    backfill = plan_build(settings, FrameInputs("code-1", {**THREE_DAYS, "2026-01-02": "b2", "2026-01-04": "d"}))
    assert backfill.incremental_from == "2026-01-02"


def test_unchanged_days_recompute_only_what_every_build_does(tmp_path):
    settings = _settings(tmp_path)
    _recorded_dbt_build(settings, THREE_DAYS)
    unchanged = plan_build(settings, FrameInputs("code-1", THREE_DAYS))
    assert unchanged.incremental_from == "2026-01-04"  # after the last day: only the next-request rows


@pytest.mark.parametrize(("settings_overrides", "why"), [
    ({"incremental_marts": False}, "VIDREC_INCREMENTAL_MARTS"),
    ({"profile": "distributed"}, "distributed"),
])
def test_a_switched_off_or_distributed_build_never_recomputes_part_of_a_model(tmp_path, settings_overrides, why):
    settings = _settings(tmp_path, **settings_overrides)
    _recorded_dbt_build(settings, THREE_DAYS)
    build = plan_build(settings, FrameInputs("code-1", {**THREE_DAYS, "2026-01-04": "d"}))
    assert build.incremental_from is None and why in build.why


def test_an_unreadable_record_reads_as_none(tmp_path):
    settings = _settings(tmp_path)
    dbt_record_path(settings).write_text("{not json")
    assert read_record(dbt_record_path(settings)) is None
    assert plan_build(settings, FrameInputs("code-1", THREE_DAYS)).full_refresh


def _sources(days: dict[str, str], changed: dict[str, DaySources] | None = None) -> dict[str, DaySources]:
    """Each day judged from one raw file named by its digest, against catalogue and rules 'r1';
    `changed` days as given."""
    return {**{day: DaySources((f"{day}/part-{digest}.parquet 10 1",), "r1") for day, digest in days.items()},
            **(changed or {})}


def _recorded_load(settings: VidrecSettings, days: dict[str, str], code: str = "code-1") -> None:
    write_load_record(online_record_path(settings),
                      LoadRecord(FrameInputs(code, days), _sources(days), online_store_identity(settings)))


def _plan(settings: VidrecSettings, days: dict[str, str], sources: dict[str, DaySources] | None = None,
          never_loaded: tuple[str, ...] = ()):
    return plan_online_load(settings, FrameInputs("code-1", days), _sources(days) if sources is None else sources,
                            list(never_loaded))


def test_the_online_store_loads_only_from_the_first_new_or_grown_day(tmp_path):
    settings = _settings(tmp_path)
    _recorded_load(settings, THREE_DAYS)

    assert _plan(settings, {**THREE_DAYS, "2026-01-04": "d"}).since == pd.Timestamp("2026-01-04", tz="UTC")
    grown = DaySources(("2026-01-03/part-c.parquet 10 1", "2026-01-03/served-1.parquet 5 2"), "r1")
    grown_day = _plan(settings, {**THREE_DAYS, "2026-01-03": "c+", "2026-01-04": "d"},
                      _sources({**THREE_DAYS, "2026-01-04": "d"}, {"2026-01-03": grown}))
    assert grown_day.since == pd.Timestamp("2026-01-03", tz="UTC")
    assert _plan(settings, {"2025-12-31": "late", **THREE_DAYS}).since == pd.Timestamp("2025-12-31", tz="UTC")
    assert _plan(settings, THREE_DAYS).since == pd.Timestamp("2026-01-03", tz="UTC")  # unchanged: reload the end


def test_the_online_store_loads_whole_when_rows_may_have_vanished_or_nothing_was_loaded(tmp_path):
    settings = _settings(tmp_path)
    assert _plan(settings, THREE_DAYS).since is None  # no record

    _recorded_load(settings, THREE_DAYS)
    corrected = _plan(settings, {**THREE_DAYS, "2026-01-03": "c2"})  # the last day's file replaced
    assert corrected.since is None and "2026-01-03 lost or changed raw files" in corrected.why
    rejudged = _plan(settings, {**THREE_DAYS, "2026-01-02": "b+"},
                     _sources(THREE_DAYS, {"2026-01-02": DaySources(("2026-01-02/part-b.parquet 10 1",), "r2")}))
    assert rejudged.since is None  # the same file judged by other rules
    assert _plan(settings, {"2026-01-01": "a", "2026-01-03": "c"}).since is None  # a day gone
    assert plan_online_load(settings, FrameInputs("code-2", THREE_DAYS), _sources(THREE_DAYS), []).since is None
    registry_rebuilt = _plan(settings, {**THREE_DAYS, "2026-01-04": "d"}, never_loaded=("video_stats",))
    assert registry_rebuilt.since is None and "video_stats" in registry_rebuilt.why
    switched_off = _plan(_settings(tmp_path, incremental_marts=False), {**THREE_DAYS, "2026-01-04": "d"})
    assert switched_off.since is None


def test_another_online_store_than_the_last_loads_is_loaded_whole(tmp_path):
    settings = _settings(tmp_path)
    _recorded_load(settings, THREE_DAYS)
    production = _settings(tmp_path, profile="production")
    switched = _plan(production, {**THREE_DAYS, "2026-01-04": "d"})
    assert switched.since is None and "another online store" in switched.why
