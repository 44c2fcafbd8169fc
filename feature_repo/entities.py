"""What features describe: a user, a video and a request (join keys as in the dbt marts)."""

from __future__ import annotations

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="A registered user (user_id from the raw users log).",
)

video = Entity(
    name="video",
    join_keys=["video_id"],
    value_type=ValueType.INT64,
    description="An uploaded video (video_id from the raw videos log).",
)

request = Entity(
    name="request",
    join_keys=["request_id"],
    value_type=ValueType.STRING,
    description=(
        "A recommendation request (request_id of the impression logs). A user's upcoming request, "
        "the one serving is answering, is `next_request_id(user_id)`."
    ),
)

ENTITIES = [user, video, request]

NEXT_REQUEST_PREFIX = "next:"


def next_request_id(user_id: int) -> str:
    """The request id of the state a user's next request sees (the mart writes the same key)."""
    return f"{NEXT_REQUEST_PREFIX}{int(user_id)}"
