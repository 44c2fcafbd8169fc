"""Small event batches for the intake tests, and a raw log directory to append them to.

Plain functions (not fixtures) so the subprocess writers of the crash and concurrency tests build
exactly the same events as the test that checks them.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import TypeAdapter

from serving.events.raw_rows import ServedImpression
from serving.events.schemas import Event
from vidrec.rawlog import RawManifest
from vidrec.schema import IMPRESSIONS

EVENT = TypeAdapter(Event)
DAY = "2026-01-05"
SHOWN_AT = datetime(2026, 1, 5, 10, 0)  # naive UTC, the raw log's form; on DAY


def at(clock: str, day: str = DAY) -> str:
    """An ISO timestamp in UTC on `day` at `clock` (HH:MM:SS)."""
    return f"{day}T{clock}Z"


def impression(event_id: str, request_id: str, video_id: int, position: int, user_id: int = 1,
               time: str = at("10:00:00"), **fields) -> dict:
    return dict(kind="impression", event_id=event_id, user_id=user_id, video_id=video_id, request_id=request_id,
                surface="home", position=position, impression_time=time, **fields)


def playback(kind: str, event_id: str, video_id: int, started: str, user_id: int = 1, **fields) -> dict:
    """A click, watch, skip or like of the playback of `video_id` that started at `started`."""
    return dict(kind=kind, event_id=event_id, user_id=user_id, video_id=video_id, watch_time=started, **fields)


def parsed(bodies: list[dict]) -> list:
    """Events as the service hands them to the intake: validated from JSON, as BentoML parses a body."""
    return [EVENT.validate_json(json.dumps(body)) for body in bodies]


def make_raw_log(raw_dir: Path) -> Path:
    """A raw log directory as the pipeline leaves it (a manifest present), with no rows yet."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    RawManifest(source="test", parameters={}, row_counts={}, notes=[]).write(raw_dir)
    return raw_dir


def session_events(session: int, videos: int = 5, user_id: int = 1, day: str = DAY) -> list[dict]:
    """One served list of `videos` impressions and, for each video, a click, a watch, and for every
    other video a like: 3.5 events per video with every kind present."""
    request = f"req-{user_id}-{session}"
    events = []
    for slot in range(videos):
        video = 1000 + session * videos + slot
        started = at(f"{10 + session // 3600:02d}:{(session // 60) % 60:02d}:{session % 60:02d}", day)
        events.append(impression(f"{request}-imp-{slot}", request, video, slot, user_id=user_id, time=started))
        events.append(playback("click", f"{request}-click-{slot}", video, started, user_id=user_id))
        events.append(playback("watch", f"{request}-watch-{slot}", video, started, user_id=user_id,
                               watch_seconds=float(10 * slot)))
        if slot % 2 == 0:
            events.append(playback("like", f"{request}-like-{slot}", video, started, user_id=user_id))
    return events


def served(request_id: str, video_id: int, position: int, **columns) -> ServedImpression:
    """A row as serving.served_log builds it of a served item: every column, the serving ones filled."""
    row = {
        "request_id": request_id, "user_id": 1, "video_id": video_id, "surface": "home", "position": position,
        "impression_time": SHOWN_AT, "source": "ann", "source_score": 1.0 / (1 + position),
        "score": 30.0 - position, "propensity": 0.97, "reason": "recommended_for_you", "explored": False,
        "head_predictions": {"watch_time": 20.0, "click": 0.3, "like": 0.1, "skip": 0.05},
        "model_versions": {"ranker": "4", "retrieval": "3"},
    }
    row.update(columns)
    return ServedImpression({column: row[column] for column in IMPRESSIONS.schema.names})
