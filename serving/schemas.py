"""Request and response models of the recommendation API (they are the OpenAPI spec).

Request fields are strict: JSON `false` is not user 0 and `"7"` is not 7. pydantic's lax mode
would coerce both, so a client bug would silently get someone else's recommendations.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

# Ids are BIGINT in the warehouse and int64 in Feast: a larger number cannot name anyone.
MAX_ID = 2**63 - 1

UserId = Annotated[
    StrictInt,
    Field(
        ge=0,
        le=MAX_ID,
        description="The user to recommend for (a JSON integer; booleans and strings are rejected); "
        "unknown users get what their demographic segment watches (see `profile`), else popular videos.",
    ),
]
TopK = Annotated[StrictInt, Field(ge=1, le=500, description="How many videos to return (a JSON integer).")]
VideoId = Annotated[StrictInt, Field(ge=0, le=MAX_ID, description="A video id (a JSON integer).")]
SeedVideoId = Annotated[
    StrictInt | None,
    Field(
        ge=0,
        le=MAX_ID,
        description="The video being watched, for surface watch_next: its co-watch and embedding neighbours "
        "fill a configured share of the candidates and it is never returned. Unknown to the index: the answer "
        "is home's, with seed:unknown in `degraded`; on another surface it is ignored (seed:ignored).",
    ),
]
Shadow = Annotated[
    StrictBool,
    Field(
        description="Rank as for a real request but log nothing (no served impressions, no served features): the "
        "answer is shown to nobody. For evaluating a policy on another's traffic, e.g. the closed loop's "
        "off-policy comparison (orchestration/closed_loop)."
    ),
]
ProfileValue = Annotated[str | None, Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 ._+-]+$")]


class UserProfile(BaseModel):
    """What the product knows of a user the pipeline has not seen yet (a sign-up since its last run).

    Used only for users the online store does not know: they are answered with what their
    demographic segment watches (models.segment_popularity), the finest segment with enough
    watchers, else global popularity. A value the segments do not know simply does not match.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    country: ProfileValue = None
    device: ProfileValue = None
    age_bucket: ProfileValue = None
    gender: ProfileValue = None


Surface = Literal["home", "watch_next", "search"]
Source = Literal["ann", "co_watch", "subscriptions", "trending", "fresh", "exploration", "popular"]
Reason = Literal["exploring", "new_from_subscription", "because_you_watched", "trending", "recommended_for_you"]


class RecommendedVideo(BaseModel):
    video_id: int
    score: float = Field(
        description="Ranker score in watch-second equivalents (expected watch seconds + weighted calibrated "
        "P(like) − P(skip)), or the popularity score for the unknown-user fallback."
    )
    source: Source = Field(description="Which retrieval source nominated the video.")
    retrieval_score: float = Field(description="The score the nominating source gave it.")
    reason: Reason = Field(
        "recommended_for_you",
        description="Why it is shown: exploring, new_from_subscription, because_you_watched, trending or "
        "recommended_for_you.",
    )
    propensity: float = Field(
        1.0, description="Probability that the serving policy shows this video at this position, given the "
        "positions above it (exploration makes it < 1); logged for off-policy evaluation.",
    )
    explored: bool = Field(False, description="True when an exploration draw, not the ranking, chose this slot.")
    because_video_id: int | None = Field(
        None, description="The watched video behind the reason because_you_watched (on watch_next, the seed); "
        "null for every other reason.",
    )


class RecommendationResponse(BaseModel):
    request_id: str = Field(description="Names this answer in the served-impression log and in events about it.")
    user_id: int
    surface: Surface
    known_user: bool = Field(description="False when the user has no features yet and got the popularity fallback.")
    # A string, never null: BentoML publishes a top-level optional field as a plain string.
    segment: str = Field(
        "", description="For an unknown user, the demographic segment whose popular videos answered, e.g. "
        "`age_bucket=18-24,country=US`; empty when global popularity answered, and for known users.",
    )
    items: list[RecommendedVideo]
    model_versions: dict[str, str] = Field(description="Registry versions of the models that served this answer.")
    degraded: list[str] = Field(
        default_factory=list,
        description="Stages that fell back during this request, e.g. user_features:default, "
        "ranking:retrieval_order, retrieval:popular; empty when every stage answered in time.",
    )


class SimilarVideo(BaseModel):
    video_id: int
    score: float = Field(
        description="Inner product of the two videos' vectors in the video index (higher: more alike).")


class SimilarVideos(BaseModel):
    video_id: int = Field(description="The video asked about (never among the items).")
    items: list[SimilarVideo] = Field(description="The most similar videos, best first; blocklisted videos left out.")
    model_versions: dict[str, str] = Field(description="Registry versions of the models that answered.")


class ErrorResponse(BaseModel):
    """The body of every error the API answers (4xx and 5xx), whichever layer produced it."""

    error: str = Field(description="What went wrong, naming the offending field, header or limit.")
    detail: str = Field("", description="More about the error, e.g. every invalid field with its problem.")
