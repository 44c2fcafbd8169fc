"""The intake appends each event once, in the raw schema, and refuses (never drops) what it cannot take."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pyarrow.parquet as pq
import pytest

from expectations.raw_logs import validate_raw_table
from serving.events.errors import EventConflict, IntakeBacklogFull, IntakeUnavailable
from serving.events.intake import EventIntake, IntakeLimits
from serving.events.state import committed_batches
from tests.serving.events.events_data import at, impression, parsed, playback, session_events
from tests.serving.events.log_checks import oracle, raw_rows, write_lock_held_elsewhere
from vidrec.rawlog import MANIFEST_NAME, read_raw_table
from vidrec.schema import IMPRESSIONS, WATCHES


def watches(raw_dir) -> list[tuple]:
    frame = read_raw_table("watches", raw_dir).sort_values(["user_id", "video_id", "watch_time"])
    return list(frame[["video_id", "watch_seconds", "liked"]].itertuples(index=False, name=None))


def visible_files(raw_dir) -> list[str]:
    """What the pipeline reads: dbt's sources and vidrec.rawlog glob `<table>/*/*.parquet`."""
    return sorted(str(path.relative_to(raw_dir)) for path in raw_dir.glob("*/*/*.parquet"))


def test_the_same_events_twice_are_logged_once(intake, raw_dir):
    events = parsed(session_events(session=0, videos=4))

    first = intake.submit(events)
    again = intake.submit(events)
    part = intake.submit(events[3:7])

    assert (first.accepted, first.duplicates) == (len(events), 0)
    assert (again.seq, again.accepted, again.duplicates) == (None, 0, len(events))
    assert (part.accepted, part.duplicates) == (0, 4)
    assert len(read_raw_table("impressions", raw_dir)) == 4
    assert watches(raw_dir) == [(1000, 0.0, True), (1001, 10.0, False), (1002, 20.0, True), (1003, 30.0, False)]
    assert len(committed_batches(raw_dir)) == 1


def test_an_event_repeated_within_a_batch_is_logged_once(intake, raw_dir):
    click = playback("click", "c", 7, at("10:00:05"))

    receipt = intake.submit(parsed([click, click, impression("i", "r", 7, 0), impression("i", "r", 7, 0)]))

    assert (receipt.accepted, receipt.duplicates) == (2, 2)
    assert len(read_raw_table("impressions", raw_dir)) == 1
    assert watches(raw_dir) == [(7, 0.0, False)]


def test_the_same_impression_under_a_new_event_id_is_not_logged_twice(intake, raw_dir):
    intake.submit(parsed([impression("first-id", "r", 7, 0)]))

    receipt = intake.submit(parsed([impression("second-id", "r", 7, 0), impression("third-id", "r", 8, 1)]))

    assert (receipt.accepted, receipt.duplicates) == (1, 1)
    assert sorted(read_raw_table("impressions", raw_dir)["video_id"]) == [7, 8]


def test_reusing_an_event_id_for_other_content_is_a_conflict_that_writes_nothing(intake, raw_dir):
    intake.submit(parsed([playback("watch", "w", 7, at("10:00:05"), watch_seconds=30.0)]))
    before = visible_files(raw_dir)

    with pytest.raises(EventConflict, match=r"events\.1\.event_id: 'w' was already sent in an earlier batch"):
        intake.submit(parsed([impression("i", "r", 7, 0),
                              playback("watch", "w", 7, at("10:00:05"), watch_seconds=99.0)]))
    with pytest.raises(EventConflict, match=r"events\.1\.event_id: 'x' was already sent earlier in this batch"):
        intake.submit(parsed([playback("click", "x", 7, at("10:00:05")), playback("click", "x", 8, at("10:00:05"))]))

    assert visible_files(raw_dir) == before
    assert watches(raw_dir) == [(7, 30.0, False)]
    assert intake.submit(parsed([impression("i", "r", 7, 0)])).accepted == 1  # the refused batch left no trace


def test_later_events_of_a_playback_rewrite_its_row_so_the_raw_key_stays_unique(intake, raw_dir):
    started = at("10:00:05")
    intake.submit(parsed([playback("click", "c", 7, started), playback("click", "c2", 8, started)]))
    intake.submit(parsed([playback("watch", "w", 7, started, watch_seconds=40.0)]))
    intake.submit(parsed([playback("like", "l", 7, started), playback("skip", "s", 9, started, watch_seconds=2.0)]))

    assert watches(raw_dir) == [(7, 40.0, True), (8, 0.0, False), (9, 2.0, False)]
    assert visible_files(raw_dir) == [
        "watches/day=2026-01-05/events-000000000001.parquet",  # holds 7 (rewritten twice) and 8
        "watches/day=2026-01-05/events-000000000003.parquet",  # holds 9
    ]
    batches = committed_batches(raw_dir)
    assert [(batch.created, batch.replaced) for batch in batches] == [
        (("watches/day=2026-01-05/events-000000000001.parquet",), ()),
        ((), ("watches/day=2026-01-05/events-000000000001.parquet",)),
        (("watches/day=2026-01-05/events-000000000003.parquet",),
         ("watches/day=2026-01-05/events-000000000001.parquet",)),
    ]
    assert [batch.seq for batch in committed_batches(raw_dir, after_seq=2)] == [3]  # a sensor's cursor


def test_requests_arriving_while_a_batch_is_written_are_written_together_each_event_once(intake, raw_dir, tmp_path):
    sessions = [session_events(session, videos=2) for session in range(16)]
    requests = [parsed(events) for events in sessions] * 2  # every request twice, from different threads
    total = sum(len(events) for events in sessions)
    with ThreadPoolExecutor(len(requests)) as pool:
        with write_lock_held_elsewhere(raw_dir):  # another worker's batch: every request has to queue
            answers = [pool.submit(intake.submit, request) for request in requests]
            while intake.pending_events < 2 * total:
                time.sleep(0.01)
        receipts = [answer.result() for answer in answers]

    assert sum(receipt.accepted for receipt in receipts) == total
    assert sum(receipt.duplicates for receipt in receipts) == total
    assert len(committed_batches(raw_dir)) <= 2  # the first request to wait, then all the others at once
    assert raw_rows(raw_dir) == oracle(tmp_path, "oracle", *sessions)


def test_a_playback_that_does_not_change_writes_no_file(intake, raw_dir):
    intake.submit(parsed([playback("watch", "w", 7, at("10:00:05"), watch_seconds=40.0)]))

    receipt = intake.submit(parsed([playback("click", "c", 7, at("10:00:05")),
                                    playback("watch", "w-early", 7, at("10:00:05"), watch_seconds=5.0)]))

    assert (receipt.accepted, receipt.duplicates) == (2, 0)
    assert committed_batches(raw_dir)[-1].created == committed_batches(raw_dir)[-1].replaced == ()
    assert watches(raw_dir) == [(7, 40.0, False)]


def test_files_are_day_partitions_in_the_exact_raw_schema_and_pass_the_raw_suites(intake, raw_dir):
    events = session_events(0, videos=3, day="2026-01-05") + session_events(1, videos=3, day="2026-01-06")
    intake.submit(parsed(events))

    for table in (IMPRESSIONS, WATCHES):
        files = sorted((raw_dir / table.name).glob("*/*.parquet"))
        assert [path.parent.name for path in files] == ["day=2026-01-05", "day=2026-01-06"]
        for path in files:
            assert pq.read_schema(path).remove_metadata() == table.schema
        frame = read_raw_table(table.name, raw_dir)
        outcome = validate_raw_table(table.name, frame, now=datetime(2026, 2, 1))
        assert outcome.success, outcome.as_markdown()


def test_a_raw_log_that_does_not_exist_yet_is_refused_with_503(intake, raw_dir):
    (raw_dir / MANIFEST_NAME).unlink()

    with pytest.raises(IntakeUnavailable, match="run the pipeline or an import first") as refused:
        intake.submit(parsed([impression("i", "r", 7, 0)]))

    assert refused.value.status == 503 and refused.value.retry_after_seconds == 1
    assert visible_files(raw_dir) == []


def test_a_write_lock_held_past_the_wait_limit_answers_503_with_retry_after(raw_dir):
    intake = EventIntake(raw_dir, IntakeLimits(lock_wait_seconds=0.3, retry_after_seconds=2))
    started = time.monotonic()

    with write_lock_held_elsewhere(raw_dir), pytest.raises(IntakeUnavailable, match=r"held for 0\.3 s") as refused:
        intake.submit(parsed([impression("i", "r", 7, 0)]))

    assert 0.25 < time.monotonic() - started < 3
    assert (refused.value.status, refused.value.retry_after_seconds) == (503, 2)
    assert intake.submit(parsed([impression("i", "r", 7, 0)])).accepted == 1  # the retry is logged


def test_a_worker_with_too_many_pending_events_answers_429_and_keeps_what_it_holds(raw_dir):
    intake = EventIntake(raw_dir, IntakeLimits(max_pending_events=1000, lock_wait_seconds=30))
    waiting = parsed([playback("click", f"a{index}", 7, at(f"10:{index // 60:02d}:{index % 60:02d}"))
                      for index in range(600)])
    refused_batch = parsed([playback("click", f"b{index}", 8, at("10:00:05")) for index in range(600)])
    results = {}
    with write_lock_held_elsewhere(raw_dir):
        writer = threading.Thread(target=lambda: results.update(first=intake.submit(waiting)))
        writer.start()
        while intake.pending_events < 600:
            time.sleep(0.01)
        with pytest.raises(IntakeBacklogFull, match=r"600 events are waiting .* limit of 1000") as refused:
            intake.submit(refused_batch)
        small = threading.Thread(target=lambda: results.update(second=intake.submit(refused_batch[:400])))
        small.start()  # 600 + 400 fits: admitted, and waits its turn
    writer.join(30)
    small.join(30)

    assert (refused.value.status, refused.value.retry_after_seconds) == (429, 1)
    assert results["first"].accepted == 600 and results["second"].accepted == 400
    assert len(read_raw_table("watches", raw_dir)) == 601  # 600 playbacks of video 7, one of video 8
    assert intake.pending_events == 0


def test_a_failed_write_discards_the_batch_and_answers_503(raw_dir):
    def disk_full(step: str) -> None:
        if step == "file_staged":
            raise OSError(28, "No space left on device")

    EventIntake(raw_dir).submit(parsed([playback("click", "c", 7, at("10:00:05"))]))
    failing = EventIntake(raw_dir, fault=disk_full)

    with pytest.raises(IntakeUnavailable, match="No space left on device"):
        failing.submit(parsed([playback("like", "l", 7, at("10:00:05")), impression("i", "r", 7, 0)]))

    assert watches(raw_dir) == [(7, 0.0, False)]
    assert visible_files(raw_dir) == ["watches/day=2026-01-05/events-000000000001.parquet"]
    assert sorted(path.name for path in raw_dir.glob("*/*/.*")) == []  # no temporary file left
    receipt = EventIntake(raw_dir).submit(parsed([playback("like", "l", 7, at("10:00:05")),
                                                  impression("i", "r", 7, 0)]))
    assert receipt.accepted == 2
    assert watches(raw_dir) == [(7, 0.0, True)]
