"""The two things features describe: a user and a video (join keys as in the dbt marts)."""

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

ENTITIES = [user, video]
