"""A worker process for the crash and concurrency tests: appends event batches, dies where told to.

    python tests/serving/events/writer_process.py die-at RAW_DIR STEP OCCURRENCE BATCH_JSON
        append the batch in BATCH_JSON, calling os._exit(86) the OCCURRENCE-th time the intake
        reaches STEP (a step of serving.events.durable_files, or before_commit / committed);
    python tests/serving/events/writer_process.py stream RAW_DIR FIRST_SESSION
        append sessions FIRST_SESSION, FIRST_SESSION + 1, ... as two batches each (impressions and
        clicks, then watches and likes, which rewrite the first batch's file) until killed, printing
        the ids of each batch as one JSON line once it is acknowledged;
    python tests/serving/events/writer_process.py replay RAW_DIR SESSIONS SEED START_FILE
        say "ready", and once START_FILE exists, append both batches of sessions 0 .. SESSIONS - 1 in an order
        shuffled by SEED, cut into batches of another size, printing each receipt as a JSON line.

os._exit skips every cleanup, as a SIGKILL or a power cut would: no finally, no rollback.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from serving.events.intake import EventIntake
from tests.serving.events.events_data import parsed, session_events

KILLED = 86


def split_session(session: int) -> tuple[list[dict], list[dict]]:
    """A session's events as the two batches a client sends: what it showed and started, then how it went."""
    events = session_events(session)
    started = [event for event in events if event["kind"] in ("impression", "click")]
    finished = [event for event in events if event["kind"] in ("watch", "like")]
    return started, finished


def die_at(raw_dir: Path, step: str, occurrence: int, batch_path: Path) -> None:
    reached = 0

    def fault(name: str) -> None:
        nonlocal reached
        if name == step:
            reached += 1
            if reached == occurrence:
                os._exit(KILLED)

    EventIntake(raw_dir, fault=fault).submit(parsed(json.loads(batch_path.read_text())))
    print("acknowledged", flush=True)


def stream(raw_dir: Path, first_session: int) -> None:
    intake = EventIntake(raw_dir)
    session = first_session
    while True:
        for batch in split_session(session):
            intake.submit(parsed(batch))
            print(json.dumps({"session": session, "event_ids": [event["event_id"] for event in batch]}), flush=True)
        session += 1


def replay(raw_dir: Path, sessions: int, seed: int, start_file: Path) -> None:
    rng = random.Random(seed)
    events = [event for session in range(sessions) for batch in split_session(session) for event in batch]
    rng.shuffle(events)
    batch_size = rng.randint(20, 60)
    intake = EventIntake(raw_dir)
    print("ready", flush=True)
    waiting_since = time.monotonic()
    while not start_file.exists():
        if time.monotonic() - waiting_since > 120:
            sys.exit("no start signal within 120 s: the test that started this writer is gone")
        time.sleep(0.001)
    for start in range(0, len(events), batch_size):
        receipt = intake.submit(parsed(events[start:start + batch_size]))
        print(json.dumps({"accepted": receipt.accepted, "duplicates": receipt.duplicates}), flush=True)


if __name__ == "__main__":
    mode, raw = sys.argv[1], Path(sys.argv[2])
    if mode == "die-at":
        die_at(raw, sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
    elif mode == "stream":
        stream(raw, int(sys.argv[3]))
    else:
        replay(raw, int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
