"""The closed-loop report on disk and in a real MLflow store (SQLite under the test's tmp_path; MLflow 3.17
refuses the file-based store unless MLFLOW_ALLOW_FILE_STORE is set)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models.evaluation.bootstrap import Interval
from models.evaluation.loop_metrics import DAILY_COUNTS, DAILY_METRICS
from orchestration.closed_loop.report import format_number, log_report, write_report

ARMS = ("full_funnel", "no_exploration")
DAYS = 3
META = {
    "arms": list(ARMS),
    "days": DAYS,
    "users": 2000,
    "seed": 7,
    "wall_seconds": 754.2,
    "commands": ["vidrec simulate-loop --days 3 --policy full_funnel --policy no_exploration"],
}


def daily_frame() -> pd.DataFrame:
    """Two arms over three days; no_exploration's coverage shrinks day by day."""
    rows = []
    for arm_index, arm in enumerate(ARMS):
        for day in range(DAYS):
            row = {"arm": arm, "day": day, "users": 1000, "requests": 1000, "impressions": 10_000}
            row.update({metric: 0.1 * (metric_index + 1) for metric_index, metric in enumerate(DAILY_METRICS)})
            row["watch_seconds_per_user"] = 300.0 + 10 * day + 25 * (1 - arm_index)
            row["catalog_coverage"] = 0.4 - 0.1 * day * arm_index
            rows.append(row)
    return pd.DataFrame(rows)


def estimates_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "arm": ["no_exploration", "no_exploration"],
        "estimator": ["IPS", "DR"],
        "estimate": [330.0, 297.0],
        "low": [280.0, np.nan],
        "high": [380.0, np.nan],
        "online_value": [300.0, 300.0],
    })


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Written once for the module (eight plots take a couple of seconds); tests only read it."""
    difference = Interval(estimate=25.0, low=12.5, high=37.5, units=2000)
    return write_report(tmp_path_factory.mktemp("experiment"), daily_frame(), difference, estimates_frame(), META)


def test_report_names_both_arms_and_the_run(report: Path):
    text = report.read_text()
    assert report.name == "report.md"
    assert text.startswith("# Closed-loop experiment: full_funnel vs no_exploration")
    assert "| Users | 2,000 |" in text
    assert "| Seed | 7 |" in text
    assert "| Wall time | 12 min 34 s |" in text
    assert META["commands"][0] in text


def test_report_shows_the_interval_and_that_it_excludes_zero(report: Path):
    text = report.read_text()
    assert "full_funnel − no_exploration: **25**" in text
    assert "95% two-sample bootstrap interval 12.50 to 37.50" in text
    assert "The interval excludes 0: **full_funnel** beats **no_exploration**." in text


def test_an_interval_around_zero_is_reported_as_no_difference(tmp_path: Path):
    report = write_report(tmp_path, daily_frame(), Interval(1.0, -2.0, 4.0), None, META)
    assert "The interval includes 0" in report.read_text()


def test_report_embeds_one_existing_plot_per_metric(report: Path):
    embedded = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text())
    assert sorted(embedded) == sorted(f"plots/{metric}.png" for metric in DAILY_METRICS)
    for relative in embedded:
        plot = report.parent / relative
        assert plot.read_bytes().startswith(b"\x89PNG")


def test_metric_table_has_first_last_and_mean_per_arm(report: Path):
    text = report.read_text()
    assert "| Metric | Arm | Day 0 | Day 2 | Mean over days |" in text
    assert "| Catalog coverage | no_exploration | 0.4 | 0.2 | 0.3 |" in text
    assert "| Watch seconds per user | full_funnel | 325 | 345 | 335 |" in text


def test_off_policy_estimates_sit_next_to_the_online_value(report: Path):
    text = report.read_text()
    assert "| no_exploration | IPS | 330 | 280 to 380 | 300 | +10.0% |" in text
    assert "| no_exploration | DR | 297 | — | 300 | -1.0% |" in text


def test_report_without_estimates_has_no_estimates_section(tmp_path: Path):
    report = write_report(tmp_path, daily_frame(), Interval(1.0, 0.5, 1.5), None, META)
    assert "Off-policy" not in report.read_text()


def test_report_needs_the_arms_and_the_daily_columns(tmp_path: Path):
    with pytest.raises(ValueError, match="must name the experiment's arms"):
        write_report(tmp_path, daily_frame(), Interval(1.0, 0.5, 1.5), None, {"days": 3})
    with pytest.raises(ValueError, match=r"daily lacks columns \['fresh_share'\]"):
        write_report(tmp_path, daily_frame().drop(columns="fresh_share"), Interval(1.0, 0.5, 1.5), None, META)
    with pytest.raises(ValueError, match=r"estimates lacks columns \['online_value'\]"):
        write_report(
            tmp_path, daily_frame(), Interval(1.0, 0.5, 1.5), estimates_frame().drop(columns="online_value"), META
        )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2000, "2,000"), (0.123456, "0.123"), (12.3456, "12.35"), (1234.56, "1,234.6"), (123456.7, "123,457"),
     (np.nan, "—"), (None, "—"), (0.0, "0")],
)
def test_numbers_are_formatted_for_reading(value, shown):
    assert format_number(value) == shown


def test_mlflow_run_holds_the_report_and_the_metrics_per_day(report: Path, tmp_path: Path):
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    difference = Interval(estimate=25.0, low=12.5, high=37.5, units=2000)
    run_id = log_report(
        report, daily_frame(), difference, run_name="loop-test", tracking_uri=tracking_uri,
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    assert run.info.run_name == "loop-test"
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "closed_loop"

    artifacts = {artifact.path for artifact in client.list_artifacts(run_id, "report")}
    assert {"report/report.md", "report/plots"} <= artifacts
    plots = {artifact.path for artifact in client.list_artifacts(run_id, "report/plots")}
    assert plots == {f"report/plots/{metric}.png" for metric in DAILY_METRICS}

    # The run's value is the last day's; the history has one value per day.
    assert run.data.metrics["arm.full_funnel.watch_seconds_per_user"] == 345.0
    history = client.get_metric_history(run_id, "arm.no_exploration.catalog_coverage")
    assert sorted((metric.step, round(metric.value, 6)) for metric in history) == [(0, 0.4), (1, 0.3), (2, 0.2)]
    assert {f"arm.{arm}.{name}" for arm in ARMS for name in (*DAILY_COUNTS, *DAILY_METRICS)} <= set(run.data.metrics)
    assert run.data.metrics["difference.estimate"] == 25.0
    assert run.data.metrics["difference.low"] == 12.5
    assert run.data.metrics["difference.high"] == 37.5
    assert run.data.metrics["difference.excludes_zero"] == 1.0


def test_arm_names_mlflow_rejects_are_made_safe(report: Path, tmp_path: Path):
    daily = daily_frame().replace({"arm": {"no_exploration": "no exploration (v2)"}})
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_report(
        report, daily, Interval(1.0, -1.0, 3.0), "unsafe", tracking_uri=tracking_uri,
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    metrics = MlflowClient(tracking_uri=tracking_uri).get_run(run_id).data.metrics
    assert "arm.no exploration _v2_.watch_seconds_per_user" in metrics
    assert metrics["difference.excludes_zero"] == 0.0


def test_logging_needs_a_written_report(tmp_path: Path):
    with pytest.raises(ValueError, match="no report at"):
        log_report(tmp_path / "report.md", daily_frame(), Interval(1.0, 0.5, 1.5), "missing",
                   tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
