"""The closed-loop experiment's report: Markdown with one PNG per metric, and the same in MLflow.

The report is what a person reads to decide between arms, so it leads with the primary metric's
difference and whether its interval excludes 0, then shows each metric per arm on the first and
last day (the feedback loop's drift is the change between them) and a plot per metric over days.
When off-policy estimates of the arms are given, they sit next to what the loop measured online,
which is the question the simulator's ground truth lets vidrec answer: how well would offline
evaluation on the logged data have predicted the online result?

Plots are drawn on matplotlib's Agg canvas directly (no pyplot), so writing a report neither needs
a display nor changes the process's global backend.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from models.evaluation.bootstrap import Interval
from models.evaluation.loop_metrics import DAILY_COUNTS, DAILY_METRICS
from vidrec.settings import VidrecSettings

REPORT_NAME = "report.md"
PLOTS_DIR = "plots"
ESTIMATE_COLUMNS = ("arm", "estimator", "estimate", "low", "high", "online_value")
DEFAULT_PRIMARY_LABEL = "watch seconds per user per served day"
METRIC_LABELS = {
    "users": "Users served",
    "requests": "Requests",
    "impressions": "Impressions",
    "watch_seconds_per_user": "Watch seconds per user",
    "click_through": "Click-through",
    "true_precision_at_k": "True precision@K",
    "catalog_coverage": "Catalog coverage",
    "creator_exposure_gini": "Creator exposure Gini",
    "fresh_share": "Share of impressions under 24 h old",
    "cold_share": "Share of impressions on cold videos (< 100 earlier impressions)",
    "collapsed_user_share": "Collapsed users (Jaccard ≥ 0.5)",
    "mean_jaccard": "Mean Jaccard between users",
}
_MLFLOW_BATCH = 1000  # MLflow's limit on metrics per log_batch call
_UNSAFE_IN_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


def write_report(
    out_dir: Path, daily: pd.DataFrame, difference: Interval, estimates: pd.DataFrame | None, meta: dict
) -> Path:
    """Write `report.md` and `plots/<metric>.png` under `out_dir`; returns the report's path.

    `daily` is `daily_arm_metrics`'s frame; `difference` the primary metric's interval between two
    arms (`arm_difference`). `meta` describes the run: `arms` (or `policies`, as the loop's config
    calls them) is required; `days`, `users`, `seed`, `wall_seconds` and `commands` (a list of
    command lines) are shown where present, any other keys in the experiment table. The difference
    is read as `difference_arms[0]` − `difference_arms[1]` (default: the first two arms), in units
    named by `primary_metric` (default: watch seconds per user per served day)."""
    _check_daily(daily)
    arms = _arms_of(meta)
    compared = tuple(meta.get("difference_arms", arms[:2]))
    if len(compared) != 2:
        raise ValueError(f"meta['difference_arms'] must name two arms, got {list(compared)}")
    if estimates is not None:
        _check_estimates(estimates)
    out_dir = Path(out_dir)
    plot_paths = plot_daily_metrics(daily, out_dir / PLOTS_DIR)

    sections = [
        f"# Closed-loop experiment: {' vs '.join(arms)}",
        _experiment_section(meta),
        _difference_section(difference, compared, meta.get("primary_metric", DEFAULT_PRIMARY_LABEL)),
        _metrics_table_section(daily),
        _plots_section(plot_paths, out_dir),
    ]
    if estimates is not None:
        sections.append(_estimates_section(estimates))
    report_path = out_dir / REPORT_NAME
    report_path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return report_path


def plot_daily_metrics(daily: pd.DataFrame, plots_dir: Path) -> dict[str, Path]:
    """One PNG per metric of `DAILY_METRICS`, one line per arm over days; {metric: path}."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for metric in DAILY_METRICS:
        figure = Figure(figsize=(6.4, 3.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for arm, per_day in daily.sort_values("day").groupby("arm", sort=False):
            axes.plot(per_day["day"], per_day[metric], marker="o", markersize=3, label=str(arm))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # loop days are whole
        axes.set_xlabel("loop day")
        axes.set_ylabel(METRIC_LABELS.get(metric, metric))
        axes.set_title(METRIC_LABELS.get(metric, metric))
        axes.grid(alpha=0.3)
        axes.legend()
        paths[metric] = plots_dir / f"{metric}.png"
        figure.savefig(paths[metric], dpi=100)
    return paths


def log_report(
    report_path: Path,
    daily: pd.DataFrame,
    difference: Interval,
    run_name: str,
    tracking_uri: str | None = None,
    experiment: str = "closed_loop",
    artifact_location: str | None = None,
) -> str:
    """Log one MLflow run for the experiment; returns its run id.

    - artifacts: the report's whole directory (report.md and its plots), under `report/`;
    - metrics: `arm.<arm>.<metric>` for every count and metric of `daily`, with step = loop day,
      so the run shows the last day's value and the history over days; arm names are made safe
      for MLflow by replacing characters it rejects with `_`;
    - `difference.estimate`, `.low`, `.high` and `.excludes_zero` (1 or 0) for the interval.

    Without `tracking_uri`, the settings' MLflow (and its artifact location) is used, as the
    pipeline's runs are; `artifact_location` only matters when the experiment is created here."""
    _check_daily(daily)
    report_path = Path(report_path)
    if not report_path.is_file():
        raise ValueError(f"no report at {report_path}: write it with write_report first")
    if tracking_uri is None:
        settings = VidrecSettings()
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
        tracking_uri = settings.mlflow_tracking_uri
        artifact_location = artifact_location or settings.mlflow_artifact_location
    client = MlflowClient(tracking_uri=tracking_uri)
    known = client.get_experiment_by_name(experiment)
    experiment_id = (
        known.experiment_id if known else client.create_experiment(experiment, artifact_location=artifact_location)
    )
    run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    try:
        metrics = [*_daily_metrics_for_mlflow(daily), *_difference_metrics_for_mlflow(difference)]
        for start in range(0, len(metrics), _MLFLOW_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + _MLFLOW_BATCH])
        client.log_artifacts(run_id, str(report_path.parent), artifact_path="report")
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def mlflow_arm_name(arm: str) -> str:
    """The arm's name as it appears in MLflow metric keys (characters MLflow rejects become `_`)."""
    return _UNSAFE_IN_METRIC_NAME.sub("_", str(arm))


def _daily_metrics_for_mlflow(daily: pd.DataFrame) -> list[Metric]:
    arms = daily["arm"].astype(str).unique()
    names = {arm: mlflow_arm_name(arm) for arm in arms}
    if len(set(names.values())) != len(names):
        raise ValueError(f"arm names {sorted(arms)} collide once made safe for MLflow: {sorted(names.values())}")
    timestamp = int(time.time() * 1000)
    return [
        Metric(f"arm.{names[str(row['arm'])]}.{column}", float(row[column]), timestamp, int(row["day"]))
        for _, row in daily.iterrows()
        for column in (*DAILY_COUNTS, *DAILY_METRICS)
        if math.isfinite(float(row[column]))  # mean_jaccard is NaN on a day with one user
    ]


def _difference_metrics_for_mlflow(difference: Interval) -> list[Metric]:
    timestamp = int(time.time() * 1000)
    values = {**difference.as_dict(prefix="difference."), "difference.excludes_zero": float(difference.excludes_zero)}
    return [Metric(key, float(value), timestamp, 0) for key, value in values.items()]


def _experiment_section(meta: dict) -> str:
    shown = {key: value for key, value in meta.items() if key not in ("commands", "difference_arms", "primary_metric")}
    rows = ["| | |", "|---|---|"]
    for key, value in shown.items():
        rows.append(f"| {_meta_label(key)} | {_format_meta_value(key, value)} |")
    section = ["## Experiment", "\n".join(rows)]
    commands = meta.get("commands")
    if commands:
        command_lines = [commands] if isinstance(commands, str) else list(commands)
        section.append("Commands:\n\n```\n" + "\n".join(command_lines) + "\n```")
    return "\n\n".join(section)


def _difference_section(difference: Interval, compared: Sequence[str], label: str) -> str:
    arm_a, arm_b = compared
    percent = f"{difference.confidence:.0%}"
    verdict = (
        f"The interval excludes 0: **{arm_a}** {'beats' if difference.low > 0 else 'trails'} **{arm_b}**."
        if difference.excludes_zero
        else "The interval includes 0: no difference between the arms is shown at this size."
    )
    return (
        "## Primary metric\n\n"
        f"Difference in {label}, {arm_a} − {arm_b}: **{format_number(difference.estimate)}** "
        f"({percent} two-sample bootstrap interval {format_number(difference.low)} to "
        f"{format_number(difference.high)}; {difference.units:,} users resampled).\n\n{verdict}"
    )


def _metrics_table_section(daily: pd.DataFrame) -> str:
    first_day, last_day = int(daily["day"].min()), int(daily["day"].max())
    rows = [
        f"| Metric | Arm | Day {first_day} | Day {last_day} | Mean over days |",
        "|---|---|--:|--:|--:|",
    ]
    for metric in (*DAILY_METRICS, *DAILY_COUNTS):
        for arm, per_day in daily.groupby("arm", sort=False):
            by_day = per_day.set_index("day")[metric]
            rows.append(
                f"| {METRIC_LABELS.get(metric, metric)} | {arm} | {format_number(by_day.get(first_day))} | "
                f"{format_number(by_day.get(last_day))} | {format_number(by_day.mean())} |"
            )
    return (
        "## Metrics per arm\n\n"
        "Each metric on the first and last loop day and its mean over days (an unweighted mean of the "
        "daily values; a dash where an arm served nobody that day).\n\n" + "\n".join(rows)
    )


def _plots_section(plot_paths: dict[str, Path], out_dir: Path) -> str:
    images = [
        f"![{METRIC_LABELS.get(metric, metric)}]({path.relative_to(out_dir).as_posix()})"
        for metric, path in plot_paths.items()
    ]
    return "## Over days\n\n" + "\n\n".join(images)


def _estimates_section(estimates: pd.DataFrame) -> str:
    rows = [
        "| Arm | Estimator | Estimate | Interval | Online value | Relative error |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for row in estimates.itertuples(index=False):
        interval = (
            f"{format_number(row.low)} to {format_number(row.high)}"
            if _is_number(row.low) and _is_number(row.high)
            else "—"
        )
        rows.append(
            f"| {row.arm} | {row.estimator} | {format_number(row.estimate)} | {interval} | "
            f"{format_number(row.online_value)} | {_format_relative_error(row.estimate, row.online_value)} |"
        )
    return (
        "## Off-policy estimates vs the online value\n\n"
        "What each estimator predicted from the logged data, next to what the loop measured online; "
        "relative error = (estimate − online) / |online|.\n\n" + "\n".join(rows)
    )


def format_number(value: object) -> str:
    """A figure for a table: integers with thousands separators, three significant digits below 1,
    two decimals below 100, one below 10,000, none above; a dash for missing values."""
    if not _is_number(value):
        return "—"
    number = float(value)
    if number.is_integer() and abs(number) >= 1:
        return f"{int(number):,}"
    magnitude = abs(number)
    if magnitude == 0:
        return "0"
    if magnitude < 1:
        return f"{number:.3g}"
    if magnitude < 100:
        return f"{number:.2f}"
    if magnitude < 10_000:
        return f"{number:,.1f}"
    return f"{number:,.0f}"


def _format_relative_error(estimate: object, online: object) -> str:
    if not (_is_number(estimate) and _is_number(online)) or float(online) == 0:
        return "—"
    return f"{(float(estimate) - float(online)) / abs(float(online)):+.1%}"


def _format_meta_value(key: str, value: object) -> str:
    if key == "wall_seconds" and _is_number(value):
        minutes, seconds = divmod(float(value), 60)
        return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"
    if isinstance(value, str) or key == "seed":
        return str(value)
    if isinstance(value, Iterable) and not isinstance(value, dict):
        return ", ".join(str(item) for item in value)
    if _is_number(value) and not isinstance(value, bool):
        return format_number(value)
    return str(value)


def _meta_label(key: str) -> str:
    return "Wall time" if key == "wall_seconds" else key.replace("_", " ").capitalize()


def _is_number(value: object) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _arms_of(meta: dict) -> list[str]:
    arms = meta.get("arms", meta.get("policies"))
    if arms is None or isinstance(arms, str) or len(arms) < 2:
        raise ValueError(f"meta must name the experiment's arms (at least 2) under 'arms', got {arms!r}")
    return [str(arm) for arm in arms]


def _check_daily(daily: pd.DataFrame) -> None:
    missing = [column for column in ("arm", "day", *DAILY_COUNTS, *DAILY_METRICS) if column not in daily.columns]
    if missing:
        raise ValueError(f"daily lacks columns {missing} (build it with daily_arm_metrics)")
    if daily.empty:
        raise ValueError("daily is empty: there are no per-arm, per-day metrics to report")


def _check_estimates(estimates: pd.DataFrame) -> None:
    missing = [column for column in ESTIMATE_COLUMNS if column not in estimates.columns]
    if missing:
        raise ValueError(f"estimates lacks columns {missing} (expected {list(ESTIMATE_COLUMNS)})")
