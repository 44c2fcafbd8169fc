"""Each request stage answers within its budget or falls back, and says so."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.request_trace import RequestTrace


@pytest.fixture(scope="module")
def executor():
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def test_a_stage_that_answers_is_timed_and_not_degraded():
    trace = RequestTrace()

    assert trace.run("ranking", lambda: [3, 1], list, "retrieval_order", budget=1.0) == [3, 1]

    assert trace.degraded == []
    assert trace.seconds["ranking"] >= 0


def test_an_error_falls_back_and_names_the_stage_and_the_fallback():
    trace = RequestTrace()

    def broken():
        raise ConnectionError("redis is down")

    assert trace.run("user_features", broken, lambda: "last known", "last_known", budget=1.0) == "last known"
    assert trace.degraded == ["user_features:last_known"]


def test_a_network_stage_past_its_budget_is_abandoned(executor):
    trace = RequestTrace()
    release = threading.Event()

    started = time.perf_counter()
    result = trace.run("user_features", lambda: release.wait(5), lambda: "default", "default", budget=0.05,
                       executor=executor)
    waited = time.perf_counter() - started
    release.set()

    assert result == "default"
    assert trace.degraded == ["user_features:default"]
    assert waited < 5  # it did not wait for the stalled read


def test_a_compute_stage_past_its_budget_still_answers_but_is_counted():
    from serving.serving_metrics import serving_metrics

    counter = serving_metrics().over_budget.labels(stage="ranking_slow_test")
    before = counter._value.get()
    trace = RequestTrace()

    assert trace.run("ranking_slow_test", lambda: time.sleep(0.02) or "ranked", lambda: "x", "retrieval_order",
                     budget=0.001) == "ranked"
    assert trace.degraded == []
    assert counter._value.get() == before + 1
