"""The served-impression log: what /recommend served reaches the raw log in the background, and
nothing about the raw log (slow, missing, full) ever reaches the request."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from prometheus_client import REGISTRY

from serving.events.intake import EventIntake, IntakeLimits
from serving.request_trace import RequestTrace
from serving.schemas import RecommendationResponse, RecommendedVideo
from serving.served_list import ServedAnswer, ServedItems
from serving.served_log import ServedImpressionLog, served_impressions
from serving.served_log.log import RateLimitedWarning
from serving.serving_metrics import serving_metrics
from tests.serving.events.events_data import impression, make_raw_log, parsed
from tests.serving.events.log_checks import write_lock_held_elsewhere
from vidrec.rawlog import MANIFEST_NAME, read_raw_table
from vidrec.schema import IMPRESSIONS

REQUEST_TIME = datetime(2026, 1, 5, 10, 0, 0, 250_000)  # naive UTC, as the raw log stores it
REQUEST_UNIX_SECONDS = REQUEST_TIME.replace(tzinfo=UTC).timestamp()  # as the request clock gives it
VERSIONS = {"retrieval": "3", "ranker": "4"}


def ranked_answer(request_id: str = "req-1", user_id: int = 42, videos: tuple[int, ...] = (7, 8)) -> ServedAnswer:
    """An answer as the ranked path returns it: the second slot explored, each item with its head values."""
    items = [
        RecommendedVideo(video_id=videos[0], score=31.5, source="ann", retrieval_score=0.82, propensity=0.985),
        RecommendedVideo(video_id=videos[1], score=12.0, source="exploration", retrieval_score=0.1,
                         reason="exploring", propensity=0.015, explored=True),
    ][:len(videos)]
    response = RecommendationResponse(request_id=request_id, user_id=user_id, surface="watch_next", known_user=True,
                                      items=items, model_versions=VERSIONS)
    served = ServedItems(items, rank_scores=np.array([1.0, 1 / 3])[:len(items)], head_values={
        "watch_time": np.array([25.0, 10.0])[:len(items)], "like": np.array([0.3, np.nan])[:len(items)]})
    return ServedAnswer(response, RequestTrace(), REQUEST_UNIX_SECONDS, served)


def popular_answer(user_id: int = 99) -> ServedAnswer:
    """The unknown-user answer: popular videos, never ranked."""
    items = [RecommendedVideo(video_id=5, score=120.0, source="popular", retrieval_score=120.0)]
    response = RecommendationResponse(request_id="req-popular", user_id=user_id, surface="home", known_user=False,
                                      items=items, model_versions=VERSIONS)
    return ServedAnswer(response, RequestTrace(), REQUEST_UNIX_SECONDS, ServedItems(items))


def dropped(reason: str) -> float:
    serving_metrics()  # registers the counters
    return REGISTRY.get_sample_value("vidrec_served_impressions_dropped_total", {"reason": reason}) or 0.0


def logged_rows(raw_dir) -> dict[tuple[str, int], dict]:
    frame = read_raw_table("impressions", raw_dir)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return {(row["request_id"], row["video_id"]): row for row in rows}


@pytest.fixture
def raw_dir(tmp_path):
    return make_raw_log(tmp_path / "raw")


@pytest.fixture
def intake(raw_dir):
    intake = EventIntake(raw_dir, IntakeLimits(lock_wait_seconds=5))
    yield intake
    intake.close()


@pytest.fixture
def quiet_log(intake):
    """A log whose thread never flushes on its own during a test (flushes are the test's)."""
    log = ServedImpressionLog(intake, max_pending=100, flush_seconds=3600)
    yield log
    log.close()


def test_a_served_answer_becomes_one_row_per_item_with_everything_the_service_knew(quiet_log, raw_dir):
    assert quiet_log.offer(ranked_answer())

    quiet_log.flush()

    rows = logged_rows(raw_dir)
    first, explored = rows[("req-1", 7)], rows[("req-1", 8)]
    assert {column: first[column] for column in IMPRESSIONS.schema.names if column not in (
        "head_predictions", "model_versions")} == {
        "request_id": "req-1", "user_id": 42, "video_id": 7, "surface": "watch_next", "position": 0,
        "impression_time": REQUEST_TIME, "source": "ann", "source_score": 1.0, "score": 31.5, "propensity": 0.985,
        "reason": "recommended_for_you", "explored": False,
    }
    assert dict(first["head_predictions"]) == {"watch_time": 25.0, "like": 0.3}
    assert dict(first["model_versions"]) == VERSIONS
    assert (explored["position"], explored["source_score"], explored["propensity"]) == (1, 1 / 3, 0.015)
    assert (explored["reason"], explored["explored"]) == ("exploring", True)
    assert dict(explored["head_predictions"]) == {"watch_time": 10.0}  # a head without a value is left out
    assert quiet_log.pending_rows == 0


def test_the_unknown_user_answer_is_logged_without_ranker_values():
    (row,) = served_impressions(popular_answer())

    assert (row.row["source"], row.row["score"], row.row["propensity"]) == ("popular", 120.0, 1.0)
    assert (row.row["source_score"], row.row["head_predictions"]) == (None, None)
    assert row.row["model_versions"] == VERSIONS


def test_an_answer_for_user_zero_is_not_logged_and_is_counted(quiet_log, raw_dir):
    before = dropped("invalid_id")

    quiet_log.offer(popular_answer(user_id=0))
    quiet_log.flush()

    assert dropped("invalid_id") - before == 1
    assert not list((raw_dir / "impressions").glob("*/*.parquet"))
    assert quiet_log.pending_rows == 0


def test_a_client_impression_of_a_served_item_is_not_a_second_row(quiet_log, intake, raw_dir):
    quiet_log.offer(ranked_answer())
    quiet_log.flush()

    receipt = intake.submit(parsed([impression("client-1", "req-1", 7, 0, user_id=42)]))

    assert (receipt.accepted, receipt.duplicates) == (0, 1)
    assert len(read_raw_table("impressions", raw_dir)) == 2


def test_a_full_log_drops_and_counts_without_waiting(intake, raw_dir):
    log = ServedImpressionLog(intake, max_pending=3, flush_seconds=3600)
    before = dropped("queue_full")
    try:
        assert log.offer(ranked_answer("req-1"))
        started = time.perf_counter()
        kept = log.offer(ranked_answer("req-2"))  # 2 + 2 rows > 3
        offered_in = time.perf_counter() - started
    finally:
        log.close()

    assert not kept and offered_in < 0.05
    assert dropped("queue_full") - before == 2
    assert set(logged_rows(raw_dir)) == {("req-1", 7), ("req-1", 8)}  # what it held is still written


def test_an_offer_never_waits_for_a_write_stuck_on_the_raw_log(quiet_log, raw_dir):
    quiet_log.offer(ranked_answer("req-1"))
    with write_lock_held_elsewhere(raw_dir):  # another worker's batch holds the write lock
        flushing = threading.Thread(target=quiet_log.flush)
        flushing.start()
        time.sleep(0.2)  # the flush is waiting for the lock
        started = time.perf_counter()
        assert quiet_log.offer(ranked_answer("req-2"))
        offered_in = time.perf_counter() - started
    flushing.join(10)
    quiet_log.flush()

    assert offered_in < 0.05
    assert set(logged_rows(raw_dir)) == {("req-1", 7), ("req-1", 8), ("req-2", 7), ("req-2", 8)}


def test_a_missing_raw_log_keeps_the_rows_for_a_later_flush_and_warns(quiet_log, raw_dir, caplog):
    (raw_dir / MANIFEST_NAME).unlink()  # before the first pipeline run
    quiet_log.offer(ranked_answer())

    with caplog.at_level(logging.WARNING, logger="serving.served_log.log"):
        quiet_log.flush()  # refused: nothing raised, nothing lost

    assert quiet_log.pending_rows == 2
    assert "raw log refused them" in caplog.text and "run the pipeline" in caplog.text
    make_raw_log(raw_dir)
    quiet_log.flush()
    assert set(logged_rows(raw_dir)) == {("req-1", 7), ("req-1", 8)} and quiet_log.pending_rows == 0


def test_closing_writes_what_is_held(intake, raw_dir):
    log = ServedImpressionLog(intake, max_pending=100, flush_seconds=3600)
    log.offer(ranked_answer())

    log.close()

    assert set(logged_rows(raw_dir)) == {("req-1", 7), ("req-1", 8)}
    assert not log.offer(ranked_answer("req-late"))  # a closed log takes nothing more


def test_rows_the_raw_log_refuses_at_shutdown_are_counted_as_dropped(intake, raw_dir):
    (raw_dir / MANIFEST_NAME).unlink()
    log = ServedImpressionLog(intake, max_pending=100, flush_seconds=3600)
    log.offer(ranked_answer())
    before = dropped("shutdown")

    log.close()

    assert dropped("shutdown") - before == 2


def test_the_background_thread_flushes_on_its_own(intake, raw_dir):
    log = ServedImpressionLog(intake, max_pending=100, flush_seconds=0.05)
    try:
        log.offer(ranked_answer())
        deadline = time.monotonic() + 10
        while log.pending_rows and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        log.close()

    assert set(logged_rows(raw_dir)) == {("req-1", 7), ("req-1", 8)}


def test_a_repeated_warning_is_logged_once_per_interval_with_its_count(caplog):
    now = [0.0]
    warning = RateLimitedWarning(interval_seconds=60, clock=lambda: now[0])

    with caplog.at_level(logging.WARNING, logger="serving.served_log.log"):
        for second in (0, 1, 2, 61):
            now[0] = second
            warning.warn("dropped %s item(s)", 2)

    assert [record.getMessage() for record in caplog.records] == [
        "dropped 2 item(s) (1 time(s) since the last such warning)",
        "dropped 2 item(s) (3 time(s) since the last such warning)",
    ]
