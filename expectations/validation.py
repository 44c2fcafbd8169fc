"""The validation engine: run a GX suite over a pandas frame and return a plain, readable outcome.

Every layer's suites (raw logs, training frames) run through `validate_frame`, and the skew check
reports through the same `ValidationOutcome`, so the orchestrator turns all of them into Dagster
`AssetCheckResult`s the same way: `success` is the check's verdict, `statistics` and `failures`
become metadata, `as_markdown()` is the table people read in the UI.

GX runs in one ephemeral, in-memory context per process (analytics and progress bars off), with
one pandas dataframe asset whose whole-dataframe batch definition takes each frame as a batch
parameter. Results use GX's SUMMARY format, which keeps at most `MAX_EXAMPLES` unexpected values
per expectation instead of materialising every failing row.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations import Expectation

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 10
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
# Keys of an expectation's configuration that say what it expected (shown next to what it saw).
_EXPECTED_KEYS = (
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "value_set",
    "column_set",
    "exact_match",
    "mostly",
    "or_equal",
    "row_condition",
)
_COLUMN_KEYS = ("column", "column_A", "column_B", "column_list")
# GX validation touches shared context state; one validation at a time per process.
_validation_lock = threading.Lock()


@dataclass
class ValidationOutcome:
    """What a suite found in a frame.

    `failures` holds one dict per failed expectation with the keys `expectation` (its type, e.g.
    `expect_column_values_to_be_between`), `column` (a column name, `a, b` for several, None for
    table-level expectations), `expected` (the arguments that say what was expected), `observed`
    (what was seen: a count of unexpected rows, an observed value or an error message) and
    `unexpected_examples` (at most `MAX_EXAMPLES` offending values). All values are JSON-safe.
    """

    suite_name: str
    success: bool
    statistics: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def failing_columns(self) -> list[str | None]:
        return [failure["column"] for failure in self.failures]

    def as_markdown(self) -> str:
        verdict = "passed" if self.success else f"failed ({len(self.failures)} failing)"
        lines = [f"**{self.suite_name}**: {verdict}", ""]
        scalars = {k: v for k, v in self.statistics.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in self.statistics.items() if isinstance(v, dict)}
        if scalars:
            lines += ["| statistic | value |", "| --- | --- |"]
            lines += [f"| {name} | {_cell(value)} |" for name, value in scalars.items()]
            lines.append("")
        for table_name, rows in tables.items():
            lines += [f"| {table_name} | value |", "| --- | --- |"]
            lines += [f"| {key} | {_cell(value)} |" for key, value in rows.items()]
            lines.append("")
        if self.failures:
            lines += [
                "| expectation | column | expected | observed | unexpected examples |",
                "| --- | --- | --- | --- | --- |",
            ]
            for failure in self.failures:
                cells = (
                    failure["expectation"],
                    failure["column"] if failure["column"] is not None else "(table)",
                    failure.get("expected", ""),
                    failure["observed"],
                    failure["unexpected_examples"],
                )
                lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        return "\n".join(lines).rstrip() + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in value)
    else:
        text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


@functools.cache
def _batch_definition() -> Any:
    """The process-wide ephemeral context's whole-dataframe batch definition (built once)."""
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    asset = context.data_sources.add_pandas("vidrec_frames").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


def validate_frame(
    frame: pd.DataFrame,
    suite: gx.ExpectationSuite | Sequence[Expectation],
    name: str | None = None,
) -> ValidationOutcome:
    """Validate `frame` against `suite` (a suite or a list of expectations).

    `name` names the outcome; it defaults to the suite's name. Expectations on columns the frame
    lacks are not run: each becomes a failure whose `observed` says which column is missing, so a
    missing column reads as one clear line rather than a GX stack trace.
    """
    if isinstance(suite, gx.ExpectationSuite):
        expectations = list(suite.expectations)
        suite_name = name or suite.name
    else:
        expectations = list(suite)
        suite_name = name or "validation"
    if not suite_name:
        raise ValueError("validate_frame needs a name when given a list of expectations")

    runnable, failures = [], []
    for expectation in expectations:
        missing = [c for c in _columns_of(expectation) if c not in frame.columns]
        if missing:
            failures.append(_missing_column_failure(expectation, missing, frame))
        else:
            runnable.append(expectation.copy(deep=True))  # a suite takes ownership of its members

    started = time.perf_counter()
    results = []
    if runnable:
        run_suite = gx.ExpectationSuite(name=suite_name, expectations=runnable)
        with _validation_lock:
            batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
            results = batch.validate(run_suite, result_format=_RESULT_FORMAT).results
    failures += [_failure_from(result.to_json_dict()) for result in results if not result.success]

    evaluated = len(expectations)
    statistics = {
        "row_count": len(frame),
        "evaluated_expectations": evaluated,
        "successful_expectations": evaluated - len(failures),
        "unsuccessful_expectations": len(failures),
        "success_percent": round(100.0 * (evaluated - len(failures)) / evaluated, 2)
        if evaluated
        else 100.0,
        "duration_seconds": round(time.perf_counter() - started, 4),
    }
    outcome = ValidationOutcome(suite_name, not failures, statistics, failures)
    logger.info(
        "validated %s rows against %s: %s/%s expectations passed",
        len(frame),
        suite_name,
        statistics["successful_expectations"],
        evaluated,
    )
    return outcome


def _columns_of(expectation: Expectation) -> list[str]:
    columns: list[str] = []
    for key in _COLUMN_KEYS:
        value = getattr(expectation, key, None)
        if isinstance(value, str):
            columns.append(value)
        elif isinstance(value, (list, tuple)):
            columns.extend(value)
    return columns


def _column_label(kwargs: dict[str, Any]) -> str | None:
    if kwargs.get("column") is not None:
        return kwargs["column"]
    columns = kwargs.get("column_list") or [
        kwargs[key] for key in ("column_A", "column_B") if kwargs.get(key) is not None
    ]
    return ", ".join(columns) if columns else None


def _expected_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    expected = {key: kwargs[key] for key in _EXPECTED_KEYS if kwargs.get(key) is not None}
    if "row_condition" in expected:
        expected["row_condition"] = _condition_text(expected["row_condition"])
    return expected


def _condition_text(condition: Any) -> str:
    if isinstance(condition, dict) and condition.get("type") == "comparison":
        return f"{condition['column']['name']} {condition['operator']} {condition['parameter']!r}"
    return str(condition)


def _missing_column_failure(
    expectation: Expectation, missing: list[str], frame: pd.DataFrame
) -> dict[str, Any]:
    kwargs = expectation.configuration.kwargs
    return {
        "expectation": expectation.expectation_type,
        "column": _column_label(kwargs),
        "expected": _expected_of(kwargs),
        "observed": f"missing column(s) {missing}; frame has {sorted(map(str, frame.columns))}",
        "unexpected_examples": [],
    }


def _failure_from(result: dict[str, Any]) -> dict[str, Any]:
    config = result["expectation_config"]
    kwargs = config["kwargs"]
    outcome = result.get("result") or {}
    return {
        "expectation": config["type"],
        "column": _column_label(kwargs),
        "expected": _expected_of(kwargs),
        "observed": _observed(outcome, result.get("exception_info") or {}),
        "unexpected_examples": list(outcome.get("partial_unexpected_list") or [])[:MAX_EXAMPLES],
    }


def _observed(outcome: dict[str, Any], exception_info: dict[str, Any]) -> Any:
    error = _exception_message(exception_info)
    if error:
        return f"error: {error}"
    if "unexpected_count" in outcome:
        share = outcome.get("unexpected_percent")
        share_text = f" ({share:.2f}%)" if isinstance(share, (int, float)) else ""
        return f"{outcome['unexpected_count']} of {outcome.get('element_count')} rows{share_text}"
    if "details" in outcome and isinstance(outcome["details"], dict):
        mismatched = outcome["details"].get("mismatched")
        if mismatched:
            return {k: v for k, v in mismatched.items() if v}
    if outcome.get("partial_missing_list"):
        return {"missing": outcome["partial_missing_list"]}
    value = outcome.get("observed_value")
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _exception_message(exception_info: dict[str, Any]) -> str | None:
    """GX reports errors either flat or keyed by metric id; return the first message found."""
    if exception_info.get("raised_exception"):
        return exception_info.get("exception_message") or "raised an exception"
    for value in exception_info.values():
        if isinstance(value, dict) and value.get("raised_exception", True) and (
            value.get("exception_message") or value.get("exception_traceback")
        ):
            message = value.get("exception_message") or value["exception_traceback"]
            return str(message).strip().splitlines()[-1]
    return None
