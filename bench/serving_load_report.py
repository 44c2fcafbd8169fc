"""What a load run measured, as one JSON-ready dict and as Markdown tables.

Only the measured phase counts (warmup answers are dropped). Latencies are from the scheduled send
time (see serving_load_engine); the per-second timeline buckets requests by the second they were
due, so a stall shows in the seconds whose requests it delayed.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from serving_load_engine import ERROR_KINDS, MEASURED, LoadRun, Outcome

PERCENTILES = (50, 90, 99)


def _latency_stats(outcomes: list[Outcome]) -> dict[str, float | None]:
    if not outcomes:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    latencies = np.array([outcome.latency_ms for outcome in outcomes])
    stats = {f"p{p}_ms": float(np.percentile(latencies, p)) for p in PERCENTILES}
    stats["max_ms"] = float(latencies.max())
    stats["mean_ms"] = float(latencies.mean())
    return stats


def version_segments(outcomes: list[Outcome]) -> list[dict]:
    """Runs of answers with the same `model_versions`, in the order the answers arrived.

    A hot reload that swaps the model set once shows as exactly two segments. Answers without
    versions (errors) are skipped, so an error does not split a segment.
    """
    segments: list[dict] = []
    labels = version_labels(outcomes)
    answered = sorted((o for o in outcomes if o.model_versions is not None), key=lambda o: o.finished_s)
    for outcome in answered:
        versions = dict(outcome.model_versions)
        if segments and segments[-1]["model_versions"] == versions:
            segments[-1]["answers"] += 1
            segments[-1]["last_s"] = outcome.finished_s
        else:
            segments.append({"version_set": labels[outcome.model_versions], "model_versions": versions, "answers": 1,
                             "first_s": outcome.finished_s, "last_s": outcome.finished_s})
    return segments


def version_labels(outcomes: list[Outcome]) -> dict[tuple, int]:
    """Each distinct `model_versions` set, numbered 1, 2, ... in the order answers first carried it."""
    labels: dict[tuple, int] = {}
    for outcome in sorted(outcomes, key=lambda o: o.finished_s):
        if outcome.model_versions is not None and outcome.model_versions not in labels:
            labels[outcome.model_versions] = len(labels) + 1
    return labels


def timeline(outcomes: list[Outcome]) -> list[dict]:
    """One row per second of due time: sent, ok, errors by kind, degraded, latency percentiles and
    the version sets (numbered as in `version_labels`) that answered."""
    labels = version_labels(outcomes)
    by_second: dict[int, list[Outcome]] = {}
    for outcome in outcomes:
        by_second.setdefault(math.floor(outcome.due_s), []).append(outcome)
    rows = []
    for second in sorted(by_second):
        bucket = by_second[second]
        errors = Counter(outcome.error for outcome in bucket if outcome.error)
        ok = [outcome for outcome in bucket if outcome.error is None]
        versions = sorted({labels[o.model_versions] for o in ok if o.model_versions is not None})
        rows.append(
            {
                "second": second,
                "requests": len(bucket),
                "ok": len(ok),
                "errors": dict(errors),
                "degraded": sum(1 for outcome in ok if outcome.degraded),
                **{key: value for key, value in _latency_stats(bucket).items()
                   if key in ("p50_ms", "p99_ms", "max_ms")},
                "model_versions": versions,
            }
        )
    return rows


def summarise(run: LoadRun) -> dict:
    """The run's figures: rates, latency percentiles, errors by kind, degraded answers, versions."""
    measured = [outcome for outcome in run.outcomes if outcome.phase == MEASURED]
    ok = [outcome for outcome in measured if outcome.error is None]
    errors = Counter(outcome.error for outcome in measured if outcome.error)
    send_lag_ms = np.array([(o.sent_s - o.due_s) * 1000 for o in measured]) if measured else np.zeros(1)
    last_finish = max((o.finished_s for o in measured), default=0.0)
    degraded_kinds = Counter(kind for outcome in ok for kind in outcome.degraded)
    segments = version_segments(measured)
    return {
        "offered_rate": run.rate,
        "duration_s": run.duration_s,
        "warmup_s": run.warmup_s,
        "requests": len(measured),
        "ok": len(ok),
        # Answers (of any kind) per second of wall time until the last one arrived.
        "achieved_rate": len(measured) / last_finish if last_finish > 0 else 0.0,
        "ok_rate": len(ok) / last_finish if last_finish > 0 else 0.0,
        # How late the client itself sent: large values mean the generator, not the service, lagged.
        "send_lag_p99_ms": float(np.percentile(send_lag_ms, 99)),
        "send_lag_max_ms": float(send_lag_ms.max()),
        "latency": _latency_stats(measured),
        "latency_ok": _latency_stats(ok),
        "errors": {kind: errors.get(kind, 0) for kind in ERROR_KINDS},
        "error_examples": {kind: next(o.detail for o in measured if o.error == kind) for kind in errors},
        "degraded": sum(1 for outcome in ok if outcome.degraded),
        "degraded_by_kind": dict(degraded_kinds),
        "known_user_answers": sum(1 for outcome in ok if outcome.known_user),
        "unknown_user_answers": sum(1 for outcome in ok if outcome.known_user is False),
        "version_segments": segments,
        "version_switches": max(0, len(segments) - 1),
        "commands": [vars(command) for command in run.commands],
        "timeline": timeline(measured),
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(summary: dict) -> str:
    """Tables a human compares run to run: the headline, errors, versions, commands, timeline."""
    latency = summary["latency"]
    lines = [
        "| offered req/s | achieved req/s | requests | ok | p50 ms | p90 ms | p99 ms | max ms | errors | degraded "
        "| send lag p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {summary['offered_rate']:g} | {summary['achieved_rate']:.1f} | {summary['requests']} | {summary['ok']} | "
        f"{_fmt(latency['p50_ms'])} | {_fmt(latency['p90_ms'])} | {_fmt(latency['p99_ms'])} | "
        f"{_fmt(latency['max_ms'])} | "
        f"{sum(summary['errors'].values())} | {summary['degraded']} | {summary['send_lag_p99_ms']:.1f} |",
        "",
        "| error kind | count | example |",
        "|---|---|---|",
        *(
            f"| {kind} | {count} | {summary['error_examples'].get(kind, '').replace('|', '/')[:80]} |"
            for kind, count in summary["errors"].items()
        ),
        "",
        f"model versions (in answer order; {summary['version_switches']} switch(es)):",
        "",
        "| set | versions | answers | first s | last s |",
        "|---|---|---|---|---|",
        *(
            f"| {segment['version_set']} | "
            f"{', '.join(f'{k}={v}' for k, v in segment['model_versions'].items()) or '(none)'} | "
            f"{segment['answers']} | {segment['first_s']:.2f} | {segment['last_s']:.2f} |"
            for segment in summary["version_segments"]
        ),
    ]
    if summary["commands"]:
        lines += ["", "| at s | command | started s | finished s | exit |", "|---|---|---|---|---|"]
        lines += [
            f"| {c['offset_s']:g} | `{c['command']}` | {_fmt(c['started_s'], 2)} | {_fmt(c['finished_s'], 2)} | "
            f"{c['exit_status']} |"
            for c in summary["commands"]
        ]
    lines += ["", "| second | requests | ok | errors | degraded | p50 ms | p99 ms | max ms | version sets |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in summary["timeline"]:
        errors = ", ".join(f"{kind} {count}" for kind, count in row["errors"].items()) or "0"
        lines.append(
            f"| {row['second']} | {row['requests']} | {row['ok']} | {errors} | {row['degraded']} | "
            f"{_fmt(row['p50_ms'])} | {_fmt(row['p99_ms'])} | {_fmt(row['max_ms'])} | "
            f"{', '.join(map(str, row['model_versions']))} |"
        )
    return "\n".join(lines)
