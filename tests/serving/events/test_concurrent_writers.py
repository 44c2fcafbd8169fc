"""Two worker processes sending the same events at the same time log each of them once.

Each process appends every event of 40 sessions, shuffled differently and cut into batches of
different sizes (so a watch may come before its click, and one batch rewrites a file the other
process wrote), both starting on the same signal. SQLite's write lock serializes their batches and
its tables decide what is new, so the two processes' `accepted` add up to the number of events.
"""

from __future__ import annotations

import json

from tests.serving.events.events_data import make_raw_log
from tests.serving.events.log_checks import leftovers, oracle, raw_rows, writer_process
from tests.serving.events.writer_process import split_session

SESSIONS = 40


def test_two_processes_writing_the_same_events_concurrently_log_each_once(tmp_path):
    raw_dir = make_raw_log(tmp_path / "raw")
    start = tmp_path / "start"
    arguments = [("replay", str(raw_dir), str(SESSIONS), str(seed), str(start)) for seed in (1, 2)]
    with writer_process(*arguments[0]) as first, writer_process(*arguments[1]) as second:
        writers = [first, second]
        assert [writer.stdout.readline() for writer in writers] == ["ready\n", "ready\n"]
        start.touch()  # both processes have started and opened the intake: they now race
        outputs = [writer.communicate(timeout=300) for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0], [errors for _, errors in outputs]
    receipts = [[json.loads(line) for line in output.splitlines()] for output, _ in outputs]
    batches = [split_session(session) for session in range(SESSIONS)]
    events = [event for session in batches for batch in session for event in batch]
    accepted = [sum(receipt["accepted"] for receipt in process) for process in receipts]
    duplicates = [sum(receipt["duplicates"] for receipt in process) for process in receipts]
    assert sum(accepted) == len(events)
    assert sum(duplicates) == len(events)
    assert min(accepted) > 0, "one process wrote everything: the two never overlapped"
    assert raw_rows(raw_dir) == oracle(tmp_path, "oracle", *[batch for session in batches for batch in session])
    assert leftovers(raw_dir) == []
