"""Request and response models of POST /events: a batch of client events, strictly typed.

Every field is strict, as in serving/schemas.py: JSON `true` is not a video id and `"12.5"` is not
12.5 watch seconds; a misspelled field is an error, not ignored. Each event is one of five kinds,
told apart by `kind`, so a validation error names the event, its kind and the field
(`events.3.watch.watch_seconds`).

Timestamps must carry a UTC offset (the raw log is UTC; a naive time from a phone is ambiguous)
and lie between the raw suite's earliest plausible time and a minute past the server's clock: the
raw log's blocking expectations reject an event from the future when the pipeline reads it, so
only clock skew is tolerated here, not a client that sends tomorrow.

How each kind lands in the raw log (vidrec.schema) is serving/events/raw_rows.py's business.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from serving.schemas import Source, Surface
from vidrec.schema import EARLIEST_PLAUSIBLE_TIME

# Ids are BIGINT in the warehouse; the raw suite requires them positive.
MAX_ID = 2**63 - 1
# The raw schema stores position as int32.
MAX_POSITION = 2**31 - 1
# A playback longer than a day is a client counting wrong, not a viewer.
MAX_WATCH_SECONDS = 86_400.0
# The raw suite's earliest plausible event (vidrec.schema), with the UTC offset events carry.
EARLIEST_EVENT_TIME = EARLIEST_PLAUSIBLE_TIME.replace(tzinfo=UTC)
# Client clocks run ahead a little; more than this is a bug the raw suite would reject later.
MAX_CLOCK_SKEW = timedelta(seconds=60)
MAX_EVENTS_PER_BATCH = 1000


def _plausible_time(value: datetime) -> datetime:
    if value < EARLIEST_EVENT_TIME:
        raise ValueError(
            f"{value.isoformat()} is before {EARLIEST_EVENT_TIME.isoformat()}, the earliest plausible event")
    latest = datetime.now(UTC) + MAX_CLOCK_SKEW
    if value > latest:
        raise ValueError(
            f"{value.isoformat()} is in the future: events may be at most {MAX_CLOCK_SKEW.seconds} s "
            f"past the server's clock ({latest.isoformat(timespec='seconds')})"
        )
    return value


EventTime = Annotated[
    AwareDatetime,
    AfterValidator(_plausible_time),
    Field(description="ISO 8601 with a UTC offset, e.g. 2026-01-28T10:15:00Z; not in the future."),
]
EventId = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="The client's id for this event (e.g. a UUID): resending it never logs the event twice.",
    ),
]
PositiveId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
WatchTime = Annotated[
    EventTime,
    Field(
        description="When the playback started (the raw log's watch_time). A click, its watch, like and skip "
        "name the same playback with the same user_id, video_id and watch_time."
    ),
]
WatchSeconds = Annotated[
    StrictFloat,
    Field(ge=0, le=MAX_WATCH_SECONDS, allow_inf_nan=False, description="Seconds played so far in this playback."),
]


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    event_id: EventId
    user_id: PositiveId


class ImpressionEvent(_Event):
    """A video shown to a user at a position of a served list."""

    kind: Literal["impression"]
    request_id: Annotated[
        StrictStr,
        Field(min_length=1, max_length=128, description="The id of the request that served the list."),
    ]
    video_id: PositiveId
    surface: Surface
    position: Annotated[StrictInt, Field(ge=0, le=MAX_POSITION, description="0-based slot in the list.")]
    impression_time: EventTime
    source: Source | None = Field(None, description="The retrieval source that nominated the video, if known.")
    source_score: Annotated[StrictFloat, Field(gt=0, le=1, allow_inf_nan=False)] | None = Field(
        None, description="That source's rank score 1 / (1 + rank), in (0, 1], if known."
    )


class _PlaybackEvent(_Event):
    video_id: PositiveId
    watch_time: WatchTime


class ClickEvent(_PlaybackEvent):
    """The user started playing a video (a playback begins at `watch_time`)."""

    kind: Literal["click"]


class WatchEvent(_PlaybackEvent):
    """How long the user has watched a playback (cumulative; the largest report is kept)."""

    kind: Literal["watch"]
    watch_seconds: WatchSeconds


class SkipEvent(_PlaybackEvent):
    """The user left a playback early, after `watch_seconds`."""

    kind: Literal["skip"]
    watch_seconds: WatchSeconds


class LikeEvent(_PlaybackEvent):
    """The user liked the video during or after a playback."""

    kind: Literal["like"]


Event = Annotated[
    ImpressionEvent | ClickEvent | WatchEvent | SkipEvent | LikeEvent,
    Field(discriminator="kind"),
]
EventList = Annotated[
    list[Event],
    Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH, description="The events, in any order and of any kinds."),
]


class EventBatch(BaseModel):
    """The body of POST /events."""

    model_config = ConfigDict(strict=True, extra="forbid")

    events: EventList


class EventsAccepted(BaseModel):
    """The 202 body: every event of the batch is in the raw log, now or from an earlier send."""

    accepted: int = Field(description="Events of this batch logged now.")
    duplicates: int = Field(
        description="Events already logged (the same event_id sent before, or an impression of the same "
        "request_id and video_id): nothing was written for them twice."
    )
