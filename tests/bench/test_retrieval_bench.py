"""bench/retrieval.py end to end on a tiny raw-log directory: methods run as separate processes,
their stored runs make one report with intervals and paired verdicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vidrec.settings import VidrecSettings
from vidrec.simulator import SimulationConfig, simulate

BENCH = Path(__file__).resolve().parents[2] / "bench" / "retrieval.py"
FAST = ["--quick", "--trials", "2", "--max-widenings", "0", "--seeds", "2", "--no-mlflow"]


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    settings = VidrecSettings(home=tmp_path_factory.mktemp("home"))
    simulate(settings, SimulationConfig(users=150, videos=120, days=8, seed=5))
    return settings.raw_dir


def bench(*args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.trains
def test_methods_stored_separately_report_together_with_intervals_and_verdicts(raw_dir, tmp_path):
    for method in ("most_popular", "ease"):
        bench("--data-dir", str(raw_dir), "--methods", method, "--results-dir", str(tmp_path), *FAST)
    assert sorted(path.name for path in (tmp_path / "simulator").iterdir()) == ["ease.pkl", "most_popular.pkl"]
    report = bench("--data-dir", str(raw_dir), "--report-from", str(tmp_path), *FAST)
    header = report.splitlines()[0]
    assert header.startswith("dataset simulator:") and "split global" in header and "test " in header
    assert "WARNING" not in report  # the global split does not leak
    all_users = report.split("### All test users")[1].split("###")[0]
    rows = [line for line in all_users.splitlines() if line.startswith(("| most_popular", "| ease"))]
    assert len(rows) == 2 and all(row.count("[") == 3 for row in rows)  # every metric carries its interval
    assert "true_p@10" in report  # the simulator's ground truth came along with the raw logs


def test_the_per_user_split_says_it_leaks(raw_dir):
    report = bench("--data-dir", str(raw_dir), "--methods", "most_popular", "--split", "per-user", *FAST)
    assert report.splitlines()[0].startswith("WARNING: the per-user split leaks the future")


def test_a_validation_holdout_says_test_was_not_read_and_two_query_times_compare_paired(raw_dir, tmp_path):
    for query_at in ("cutoff", "last-interaction"):
        report = bench("--data-dir", str(raw_dir), "--methods", "most_popular", "--holdout", "validation",
                       "--query-at", query_at, "--results-dir", str(tmp_path / query_at), *FAST)
        assert report.splitlines()[0].startswith("VALIDATION HOLDOUT") and "test was not read" in report
        asked = "every user at the cut-off" if query_at == "cutoff" else "each user at their last train interaction"
        assert f"methods asked {asked}" in report
    done = subprocess.run([sys.executable, str(BENCH.with_name("retrieval_compare.py")), str(tmp_path / "cutoff"),
                           str(tmp_path / "last-interaction"), "--dataset", "simulator", "--method", "most_popular"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| recall@50")]
    assert len(rows) == 1 and rows[0].count("[") == 3  # A, B and the paired difference, each with its interval


def test_a_directory_without_raw_logs_is_an_error_naming_it(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH), "--data-dir", str(tmp_path), *FAST],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "holds no raw logs" in done.stderr
