"""A writer killed at any step loses nothing it acknowledged, shows nothing it did not commit, and a
retry logs each event once. The writers are real processes that die without cleaning up.

The crash windows (serving/events/durable_files.py):
- before the SQLite commit (`file_staged`, `before_commit`): only hidden temporary files exist,
  the batch is not logged; a starting worker deletes them, and the retry logs the batch.
- after the commit, before every rename (`committed`, `file_published` 1 and 2): the batch is
  logged but (partly) not visible; the next worker to start, or the next batch, shows it; the
  retry is all duplicates.
- after the last rename (`file_published` 3): logged and visible; only the answer was lost.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from serving.events.intake import EventIntake
from tests.serving.events.events_data import make_raw_log, parsed
from tests.serving.events.log_checks import leftovers, oracle, raw_rows, writer_process
from tests.serving.events.writer_process import KILLED, split_session
from vidrec.rawlog import read_raw_table

STEPS = [  # (step, occurrence, committed when killed there); the crashing batch writes 3 files
    ("file_staged", 1, False),
    ("file_staged", 3, False),
    ("before_commit", 1, False),
    ("committed", 1, True),
    ("file_published", 1, True),
    ("file_published", 2, True),
    ("file_published", 3, True),
]


@pytest.mark.parametrize(("step", "occurrence", "committed"), STEPS, ids=[f"{s}-{n}" for s, n, _ in STEPS])
def test_a_writer_killed_at_any_step_loses_nothing_acknowledged_and_a_retry_logs_each_event_once(
    tmp_path, step, occurrence, committed
):
    acknowledged, _ = split_session(0)
    _, finishing = split_session(0)
    crashing = finishing + split_session(1)[0]  # rewrites the acknowledged file and adds new ones
    before = oracle(tmp_path, "before", acknowledged)
    after = oracle(tmp_path, "after", acknowledged, crashing)
    raw_dir = make_raw_log(tmp_path / "raw")
    EventIntake(raw_dir).submit(parsed(acknowledged))
    batch_path = tmp_path / "batch.json"
    batch_path.write_text(json.dumps(crashing))

    with writer_process("die-at", str(raw_dir), step, str(occurrence), str(batch_path)) as writer:
        output, errors = writer.communicate(timeout=120)

    assert writer.returncode == KILLED, errors
    assert "acknowledged" not in output
    visible = raw_rows(raw_dir)
    if not committed:
        assert visible == before  # nothing of the dead batch is visible
    else:
        for table, rows in visible.items():  # whole files of the committed batch, maybe not all yet
            assert set(rows) <= set(before[table]) | set(after[table])
    restarted = EventIntake(raw_dir)  # a new worker: publishes what the dead one committed
    assert raw_rows(raw_dir) == (after if committed else before)
    retry = restarted.submit(parsed(crashing))
    assert (retry.accepted, retry.duplicates) == ((0, len(crashing)) if committed else (len(crashing), 0))
    assert raw_rows(raw_dir) == after
    assert leftovers(raw_dir) == []


def test_writers_killed_at_random_moments_lose_no_acknowledged_event(tmp_path):
    """SIGKILL from outside, at times no fault hook chooses, over sessions that rewrite files."""
    raw_dir = make_raw_log(tmp_path / "raw")
    rng = random.Random(12)
    acknowledged_ids: set[str] = set()
    next_session = 0
    for _ in range(6):
        with writer_process("stream", str(raw_dir), str(next_session)) as writer:
            time.sleep(rng.uniform(1.5, 3.0))  # the first part of that is the interpreter starting
            os.kill(writer.pid, signal.SIGKILL)
            output, _ = writer.communicate(timeout=30)
        lines = [json.loads(line) for line in output.splitlines()]
        acknowledged_ids.update(event_id for line in lines for event_id in line["event_ids"])
        if lines:
            next_session = lines[-1]["session"]  # resend the session that was cut off

    sessions = range(next_session + 2)  # the last writer may have committed, unacknowledged, one session more
    all_events = [event for session in sessions for batch in split_session(session) for event in batch]
    acknowledged = [event for event in all_events if event["event_id"] in acknowledged_ids]
    assert len(acknowledged) > 50, "the writers acknowledged too little for the test to mean anything"
    check_acknowledged_events_are_logged(EventIntake(raw_dir), raw_dir, acknowledged)

    retry = EventIntake(raw_dir).submit(parsed(all_events))
    assert retry.duplicates >= len(acknowledged)
    expected = oracle(tmp_path, "oracle", *[batch for session in sessions for batch in split_session(session)])
    assert raw_rows(raw_dir) == expected
    assert leftovers(raw_dir) == []


def check_acknowledged_events_are_logged(intake: EventIntake, raw_dir: Path, acknowledged: list[dict]) -> None:
    """Every acknowledged impression is a row; every acknowledged watch and like shows in its playback's row."""
    impressions = read_raw_table("impressions", raw_dir)
    watches = read_raw_table("watches", raw_dir)
    assert not impressions.duplicated(["request_id", "video_id"]).any()
    assert not watches.duplicated(["user_id", "video_id", "watch_time"]).any()
    shown = set(zip(impressions["request_id"], impressions["video_id"]))
    playbacks = {video: (seconds, liked) for video, seconds, liked in
                 zip(watches["video_id"], watches["watch_seconds"], watches["liked"])}
    for event in acknowledged:
        if event["kind"] == "impression":
            assert (event["request_id"], event["video_id"]) in shown
        else:
            seconds, liked = playbacks[event["video_id"]]
            assert seconds >= event.get("watch_seconds", 0.0)
            assert liked or event["kind"] != "like"
