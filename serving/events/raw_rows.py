"""How client events become rows of the raw log, in the schema the importers write (vidrec.schema).

The raw log has no table of events; it has impressions and *playbacks* (`watches`: one row per
user, video and start time, with the seconds watched and whether the video was liked). So:

- an **impression** is an `impressions` row, keyed (request_id, video_id) as the raw schema keys
  it; a second impression of the same key is the same impression (dbt's staging keeps one copy).
- a **served impression** (`ServedImpression`) is the row the service built itself of an item it
  served (serving.served_log): the same key, plus what only the service knows (score, propensity,
  head predictions, model versions...). Whichever of it and a client's impression event is logged
  first is the row; a client's after it is a duplicate, and it *completes* a client's before it:
  each column the client left null takes the service's value (`completed_row`), in the client
  row's file, so the log still holds one row per key.
- a **click**, **watch**, **skip** and **like** all describe one playback, named by
  (user_id, video_id, watch_time = when it started), and fold into that playback's `watches` row:
  a click starts it (0 s watched, as the KuaiRand importer logs a click without play time), a
  watch or skip reports the seconds watched (cumulative, the largest report wins), a like sets
  `liked`. A skip has no column of its own because the pipeline defines a skip as a short watch
  (models/ranking/labels.py); and dbt derives a click from the watch that follows an impression
  (int_impression_outcomes), so neither needs one.

Folding is monotone (seconds only grow, flags only turn on), so the order events arrive in, and
resending them, cannot change the result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from serving.events.schemas import ClickEvent, ImpressionEvent, LikeEvent, SkipEvent, WatchEvent
from vidrec.schema import IMPRESSIONS

PlaybackEvent = ClickEvent | WatchEvent | SkipEvent | LikeEvent
_EPOCH = datetime(1970, 1, 1)


def raw_time(value: datetime) -> datetime:
    """The raw log's form of a timestamp: timezone-naive UTC (microseconds, like `pa.timestamp("us")`)."""
    return value.astimezone(UTC).replace(tzinfo=None)


def epoch_micros(value: datetime) -> int:
    """A raw (naive UTC) timestamp as integer microseconds, the exact form SQLite keys it by."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(tzinfo=None, microsecond=micros % 1_000_000)


def content_digest(event: ImpressionEvent | PlaybackEvent) -> bytes:
    """A digest of what an event says, with times in UTC, so a resend of it matches and an edit does not."""
    fields = event.model_dump(mode="python")
    canonical = {name: raw_time(value).isoformat() if isinstance(value, datetime) else value
                 for name, value in fields.items()}
    return hashlib.blake2b(json.dumps(canonical, sort_keys=True).encode(), digest_size=16).digest()


def impression_row(event: ImpressionEvent) -> dict:
    """The `impressions` row of an impression event (columns of vidrec.schema.IMPRESSIONS; a client
    does not know the serving columns: null)."""
    row = dict.fromkeys(IMPRESSIONS.schema.names)
    row.update(
        request_id=event.request_id,
        user_id=event.user_id,
        video_id=event.video_id,
        surface=event.surface,
        position=event.position,
        impression_time=raw_time(event.impression_time),
        source=event.source,
        source_score=event.source_score,
    )
    return row


@dataclass(frozen=True)
class ServedImpression:
    """An `impressions` row the service built of an item it served: every column of
    vidrec.schema.IMPRESSIONS, in order, times naive UTC. No event id: keyed by (request_id, video_id)."""

    row: Mapping[str, object]

    def __post_init__(self) -> None:
        if list(self.row) != IMPRESSIONS.schema.names:
            raise ValueError(f"a served impression row has columns {list(self.row)}; "
                             f"expected those of the raw schema, {IMPRESSIONS.schema.names}")
        request_id, video_id = self.key
        if not isinstance(request_id, str) or not request_id or not isinstance(video_id, int):
            raise ValueError(f"a served impression needs a request_id string and a video_id integer, "
                             f"got {request_id!r} and {video_id!r}")

    @property
    def key(self) -> tuple[str, int]:
        return self.row["request_id"], self.row["video_id"]

    @property
    def impression_time(self) -> datetime:
        return self.row["impression_time"]


def completed_row(logged: Mapping[str, object], served: ServedImpression) -> dict:
    """A client's impression row completed by the service's row of the same impression: what the
    client said stays, and every column it left null takes the service's value."""
    return {column: logged[column] if logged[column] is not None else served.row[column]
            for column in IMPRESSIONS.schema.names}


@dataclass(frozen=True, order=True)
class PlaybackKey:
    """A playback: the `watches` primary key (user_id, video_id, watch_time in epoch microseconds)."""

    user_id: int
    video_id: int
    watch_time_micros: int

    @classmethod
    def of(cls, event: PlaybackEvent) -> PlaybackKey:
        return cls(event.user_id, event.video_id, epoch_micros(raw_time(event.watch_time)))

    @property
    def watch_time(self) -> datetime:
        return from_epoch_micros(self.watch_time_micros)


@dataclass(frozen=True)
class Playback:
    """What the log knows about one playback so far: its `watches` row without the key."""

    watch_seconds: float = 0.0
    liked: bool = False
    shared: bool = False
    disliked: bool = False

    def folded(self, event: PlaybackEvent) -> Playback:
        """This playback after `event` (monotone: seconds only grow, flags only turn on)."""
        if isinstance(event, WatchEvent | SkipEvent):
            return replace(self, watch_seconds=max(self.watch_seconds, event.watch_seconds))
        if isinstance(event, LikeEvent):
            return replace(self, liked=True)
        return self  # a click starts the playback and says nothing more


def watch_row(key: PlaybackKey, playback: Playback) -> dict:
    """The `watches` row of a playback (columns of vidrec.schema.WATCHES)."""
    return {
        "user_id": key.user_id,
        "video_id": key.video_id,
        "watch_time": key.watch_time,
        "watch_seconds": playback.watch_seconds,
        "liked": playback.liked,
        "shared": playback.shared,
        "disliked": playback.disliked,
    }
