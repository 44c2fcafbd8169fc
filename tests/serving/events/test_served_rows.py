"""The service's own rows of what it served go through the intake: once per (request_id, video_id),
beside client events, and completing a client's impression that was logged before them."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime

import pytest

from expectations.raw_logs import validate_raw_table
from serving.events.intake import EventIntake
from serving.events.raw_rows import ServedImpression
from serving.events.state import DATABASE_NAME, committed_batches, state_dir
from tests.serving.events.events_data import SHOWN_AT, impression, parsed, served
from tests.serving.events.log_checks import write_lock_held_elsewhere
from vidrec.rawlog import read_raw_table
from vidrec.schema import IMPRESSIONS


def logged_rows(raw_dir) -> dict[tuple[str, int], dict]:
    frame = read_raw_table("impressions", raw_dir)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return {(row["request_id"], row["video_id"]): row for row in rows}


def test_served_rows_land_in_the_raw_log_with_every_column(intake, raw_dir):
    receipt = intake.append_served([served("r1", 7, 0), served("r1", 8, 1, explored=True, propensity=0.015,
                                                               reason="exploring")])

    assert (receipt.seq, receipt.accepted, receipt.duplicates) == (1, 2, 0)
    row = logged_rows(raw_dir)[("r1", 8)]
    assert {column: row[column] for column in IMPRESSIONS.schema.names if column not in (
        "head_predictions", "model_versions")} == {
        "request_id": "r1", "user_id": 1, "video_id": 8, "surface": "home", "position": 1,
        "impression_time": SHOWN_AT, "source": "ann", "source_score": 0.5, "score": 29.0, "propensity": 0.015,
        "reason": "exploring", "explored": True,
    }
    assert dict(row["head_predictions"]) == {"watch_time": 20.0, "click": 0.3, "like": 0.1, "skip": 0.05}
    assert dict(row["model_versions"]) == {"ranker": "4", "retrieval": "3"}
    outcome = validate_raw_table("impressions", read_raw_table("impressions", raw_dir), now=datetime(2026, 2, 1))
    assert outcome.success, outcome.as_markdown()


def test_served_batches_count_for_the_sensor_like_client_events(intake, raw_dir):
    intake.append_served([served("r1", 7, 0), served("r1", 8, 1)])
    intake.submit(parsed([impression("e1", "r2", 9, 0)]))

    assert [(batch.seq, batch.accepted) for batch in committed_batches(raw_dir)] == [(1, 2), (2, 1)]


def test_a_served_row_sent_again_is_a_duplicate(intake, raw_dir):
    intake.append_served([served("r1", 7, 0)])

    again = intake.append_served([served("r1", 7, 0), served("r1", 7, 0, score=1.0)])

    assert (again.seq, again.accepted, again.duplicates) == (None, 0, 2)
    assert len(read_raw_table("impressions", raw_dir)) == 1
    assert len(committed_batches(raw_dir)) == 1


def test_a_client_impression_of_a_served_item_is_a_duplicate_and_the_served_row_stays(intake, raw_dir):
    intake.append_served([served("r1", 7, 0)])

    receipt = intake.submit(parsed([impression("client-1", "r1", 7, 0, time="2026-01-05T10:00:02Z")]))

    assert (receipt.accepted, receipt.duplicates) == (0, 1)
    (row,) = logged_rows(raw_dir).values()
    assert (row["impression_time"], row["propensity"], row["score"]) == (SHOWN_AT, 0.97, 30.0)


def test_a_served_row_completes_a_client_impression_logged_before_it(intake, raw_dir):
    intake.submit(parsed([impression("client-1", "r1", 7, 0, time="2026-01-05T10:00:02Z"),
                          impression("client-2", "r1", 9, 2, time="2026-01-05T10:00:02Z", source="trending")]))

    receipt = intake.append_served([served("r1", 7, 0), served("r1", 9, 2, source="ann")])

    assert (receipt.accepted, receipt.duplicates) == (2, 0)
    rows = logged_rows(raw_dir)
    assert len(read_raw_table("impressions", raw_dir)) == 2  # one row per key, in the client's file
    client_time = datetime(2026, 1, 5, 10, 0, 2)
    assert (rows[("r1", 7)]["impression_time"], rows[("r1", 7)]["source"]) == (client_time, "ann")
    assert rows[("r1", 9)]["source"] == "trending"  # what the client said stays
    assert (rows[("r1", 9)]["propensity"], rows[("r1", 9)]["score"]) == (0.97, 28.0)  # what it did not, filled
    assert committed_batches(raw_dir)[-1].replaced == ("impressions/day=2026-01-05/events-000000000001.parquet",)
    assert intake.append_served([served("r1", 7, 0)]).duplicates == 1  # completed once


def test_a_served_row_completes_a_client_impression_written_in_the_same_batch(intake, raw_dir):
    results = {}
    with write_lock_held_elsewhere(raw_dir):
        first = threading.Thread(
            target=lambda: results.update(first=intake.submit(parsed([impression("x", "r0", 5, 0)]))))
        first.start()  # writes its batch alone; the two below queue behind it and go together
        client = threading.Thread(
            target=lambda: results.update(client=intake.submit(parsed([impression("c", "r1", 7, 0)]))))
        client.start()
        while len(intake._queue) < 1:  # the first request was taken; the client's waits in the queue
            time.sleep(0.01)
        service = threading.Thread(target=lambda: results.update(served=intake.append_served([served("r1", 7, 0)])))
        service.start()
        while len(intake._queue) < 2:
            time.sleep(0.01)
    for thread in (first, client, service):
        thread.join(30)

    assert results["client"].seq == results["served"].seq == 2
    assert (results["served"].accepted, results["served"].duplicates) == (1, 0)
    (row,) = [row for key, row in logged_rows(raw_dir).items() if key == ("r1", 7)]
    assert (row["propensity"], row["model_versions"] is not None) == (0.97, True)
    assert len(read_raw_table("impressions", raw_dir)) == 2


def test_an_intake_database_from_before_served_rows_is_upgraded_and_keeps_its_impressions(raw_dir):
    database = state_dir(raw_dir) / DATABASE_NAME
    database.parent.mkdir(parents=True)
    with sqlite3.connect(database) as old:  # the impressions table as the previous intake created it
        old.execute("create table impressions (request_id text not null, video_id integer not null, "
                    "primary key (request_id, video_id)) without rowid")
        old.execute("insert into impressions values ('r-old', 7)")

    intake = EventIntake(raw_dir)
    try:
        client = intake.submit(parsed([impression("c", "r-old", 7, 0)]))
        service = intake.append_served([served("r-old", 7, 0), served("r-new", 7, 0)])
    finally:
        intake.close()

    assert (client.accepted, client.duplicates) == (0, 1)
    # the old row's file was never remembered: it stays as logged, and the new one is written
    assert (service.accepted, service.duplicates) == (1, 1)
    assert list(logged_rows(raw_dir)) == [("r-new", 7)]


def test_a_served_row_without_the_raw_schemas_columns_is_refused_naming_them():
    with pytest.raises(ValueError, match="expected those of the raw schema"):
        ServedImpression({"request_id": "r1", "video_id": 7})
