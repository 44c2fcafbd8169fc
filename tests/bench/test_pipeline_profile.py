"""The pipeline benchmarks' reading of a Dagster run log into per-step times, and the scaling fit."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"

# Lines as `dagster job execute` prints them (one run id, the process id on some lines).
LOG = """\
2026-12-05 21:50:01 +0000 - dagster - DEBUG - refresh_everything - 5f0c9a1e-1111-4b2b-9c3d-0123456789ab - 5384 - raw_event_logs - STEP_START - Started execution of step "raw_event_logs".
2026-12-05 21:50:14 +0000 - dagster - DEBUG - refresh_everything - 5f0c9a1e-1111-4b2b-9c3d-0123456789ab - 5384 - raw_event_logs - STEP_SUCCESS - Finished execution of step "raw_event_logs" in 12.82s.
some other line the pipeline printed
2026-12-05 21:50:14 +0000 - dagster - DEBUG - refresh_everything - 5f0c9a1e-1111-4b2b-9c3d-0123456789ab - 5384 - ranking_training_frame - STEP_START - Started execution of step "ranking_training_frame".
2026-12-05 21:51:42 +0000 - dagster - DEBUG - refresh_everything - 5f0c9a1e-1111-4b2b-9c3d-0123456789ab - 5384 - ranking_training_frame - STEP_SUCCESS - Finished execution of step "ranking_training_frame" in 1m28s.
2026-12-05 21:51:42 +0000 - dagster - DEBUG - refresh_everything - 5f0c9a1e-1111-4b2b-9c3d-0123456789ab - 5384 - feast_registry - STEP_START - Started execution of step "feast_registry".
2026-12-05 21:51:42 +0000 - dagster - DEBUG - refresh_everything - 5f0c9a1e-1111-4b2b-9c3d-0123456789ab - 5384 - feast_registry - STEP_SUCCESS - Finished execution of step "feast_registry" in 68ms.
2026-12-05 21:51:43 +0000 - dagster - DEBUG - refresh_everything - 5f0c9a1e-1111-4b2b-9c3d-0123456789ab - 5384 - ranking_model - STEP_START - Started execution of step "ranking_model".
2026-12-05 21:51:50 +0000 - dagster - ERROR - refresh_everything - 5f0c9a1e-1111-4b2b-9c3d-0123456789ab - 5384 - ranking_model - STEP_FAILURE - Execution of step "ranking_model" failed.
"""  # noqa: E501 - the lines as Dagster prints them


@pytest.fixture(scope="module")
def bench_modules():
    """bench/ first on sys.path, as `python bench/pipeline_scaling.py` has it. Undone after this file."""
    sys.path.insert(0, str(BENCH_DIR))
    yield SimpleNamespace(profile=importlib.import_module("pipeline_profile"),
                          scaling=importlib.import_module("pipeline_scaling"))
    sys.path.remove(str(BENCH_DIR))
    for name in ("pipeline_profile", "pipeline_scaling"):
        sys.modules.pop(name, None)


def test_each_step_gets_dagsters_own_duration_and_failures_are_kept(bench_modules):
    steps = bench_modules.profile.parse_steps(LOG)
    assert [step.step for step in steps] == ["raw_event_logs", "ranking_training_frame", "feast_registry",
                                             "ranking_model"]
    assert [step.seconds for step in steps] == pytest.approx([12.82, 88.0, 0.068, 7.0])
    assert [step.succeeded for step in steps] == [True, True, True, False]
    assert steps[1].ended - steps[1].started == 88.0


def _run(scaling, profile_module, impressions: int, seconds: float):
    profile = profile_module.PipelineProfile(returncode=0, wall_seconds=seconds, peak_rss_bytes=2**30)
    return scaling.ScaleRun(1.0, 2000, 3000, impressions, 10.0, profile)


def test_the_scaling_fit_reads_a_linear_cost_as_exponent_one(bench_modules):
    runs = [_run(bench_modules.scaling, bench_modules.profile, n, 30 + 2e-4 * n) for n in (400_000, 4_000_000)]
    text = bench_modules.scaling.fit_line(runs)
    assert "30 + 200.0 × (impressions / 1M)" in text
    quadratic = [_run(bench_modules.scaling, bench_modules.profile, n, (n / 1e5) ** 2) for n in (1e5, 1e6)]
    assert "exponent 2.00" in bench_modules.scaling.fit_line(quadratic)
    assert "no fit" in bench_modules.scaling.fit_line(runs[:1])


def test_a_steps_usage_splits_the_machines_cpu_into_the_pipelines_the_others_and_stolen(bench_modules):
    profile = bench_modules.profile
    # two cores for 10 s: the pipeline used 12 CPU s of the 20, something else 5, the hypervisor took 3
    samples = [profile.Sample(100.0, 2**30, 50.0, 400.0, 7.0), profile.Sample(105.0, 2**30, 56.0, 408.0, 8.0),
               profile.Sample(110.0, 2**30, 62.0, 417.0, 10.0)]
    usage = profile.window_usage(samples, 100.0, 110.0)
    assert (usage.cpu_seconds, usage.other_cpu_seconds, usage.steal_seconds) == pytest.approx((12.0, 5.0, 3.0))
    # a step between samples is measured from the sample before its start to the one after its end
    assert profile.window_usage(samples, 101.0, 104.0).cpu_seconds == pytest.approx(6.0)
    assert profile.window_usage(samples, 99.0, 104.0) is None  # nothing was sampled before it began


def test_the_step_table_shows_each_steps_cpu_and_says_when_it_was_not_sampled(bench_modules):
    profile = bench_modules.profile
    steps = profile.parse_steps(LOG)
    steps[1].usage = profile.Usage(cpu_seconds=170.0, other_cpu_seconds=2.5, steal_seconds=0.0)
    run = profile.PipelineProfile(returncode=1, wall_seconds=110.0, peak_rss_bytes=2**30, steps=steps)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in profile.step_table(run).splitlines()[2:]}
    assert rows["ranking_training_frame"].endswith("| 170.0 | 2.5 | 0.0 |")
    assert rows["raw_event_logs"].endswith("| — | — | — |")
    assert rows["ranking_model (failed)"]


def test_the_cpu_of_a_grandchild_that_has_exited_still_counts(bench_modules, tmp_path):
    """As dbt under Dagster under `vidrec pipeline`: the watched process starts a child, which runs
    a grandchild that burns CPU and exits; the child waits for it and lives on."""
    done = tmp_path / "grandchild-done"
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    child = (f"import pathlib, subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {burn!r}])\n"
             f"pathlib.Path({str(done)!r}).touch()\ntime.sleep(60)")
    top = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(60)"
    watched = psutil.Popen([sys.executable, "-c", top])
    try:
        deadline = time.monotonic() + 30
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), "the grandchild did not finish"
        assert bench_modules.profile.tree_cpu_seconds(watched) >= 0.4
    finally:
        for process in [*watched.children(recursive=True), watched]:
            process.kill()
        watched.wait()
