"""One request's stages: each timed against its budget, and what fell back when one failed.

A recommendation must answer even when a dependency does not: each stage runs through
`RequestTrace.run`, which times it (Prometheus histogram per stage), and on an error or a blown
budget returns the caller's fallback instead, records `<stage>:<fallback>` for the response's
`degraded` list and counts it.

Budgets are enforced two ways, by what the stage does. Stages that wait on the network (the
online store) run on a small thread pool and are abandoned when their budget passes: Python
cannot interrupt a blocked socket read, but the request need not wait for it. Stages that only
compute (ANN, sources, the ranker) run inline: abandoning them would leave their CPU work running
beside the fallback, making overload worse; they fail over only on an error, and a blown budget
is counted (`over_budget`) for the operator to see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TypeVar

from serving.serving_metrics import serving_metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class StageBudgets:
    """Seconds each stage may take before the request falls back (see VidrecSettings)."""

    user_features: float = 0.05
    retrieval: float = 0.02
    candidate_features: float = 0.05
    ranking: float = 0.05
    policy: float = 0.02


@dataclass
class RequestTrace:
    """Timings and fallbacks of one request (never shared between requests)."""

    degraded: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def fell_back(self, stage: str, fallback: str, reason: object) -> None:
        self.degraded.append(f"{stage}:{fallback}")
        serving_metrics().fallbacks.labels(stage=stage, fallback=fallback).inc()
        logger.warning("stage %s fell back to %s: %s", stage, fallback, reason)

    def observe(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        serving_metrics().stage_seconds.labels(stage=stage).observe(seconds)

    def run(
        self,
        stage: str,
        work: Callable[[], T],
        fallback: Callable[[], T],
        fallback_name: str,
        budget: float,
        executor: Executor | None = None,
    ) -> T:
        """`work()`, or `fallback()` when it raises (or, with an executor, outlives `budget`)."""
        started = time.perf_counter()
        try:
            result = work() if executor is None else executor.submit(work).result(timeout=budget)
        except FutureTimeout:
            self.observe(stage, time.perf_counter() - started)
            self.fell_back(stage, fallback_name, f"no answer within its {budget * 1000:.0f} ms budget")
            return fallback()
        except Exception as error:  # noqa: BLE001 - any failure of a dependency degrades, never fails, the request
            self.observe(stage, time.perf_counter() - started)
            self.fell_back(stage, fallback_name, repr(error))
            return fallback()
        elapsed = time.perf_counter() - started
        self.observe(stage, elapsed)
        if executor is None and elapsed > budget:
            serving_metrics().over_budget.labels(stage=stage).inc()
        return result
