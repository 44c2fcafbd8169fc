"""Request and response models of the recommendation API (they are the OpenAPI spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Surface = Literal["home", "watch_next", "search"]
Source = Literal["ann", "co_watch", "subscriptions", "trending", "fresh", "exploration", "popular"]


class RecommendedVideo(BaseModel):
    video_id: int
    score: float = Field(
        description="Ranker score in watch-second equivalents (expected watch seconds + weighted calibrated "
        "P(like) − P(skip)), or the popularity score for the unknown-user fallback."
    )
    source: Source = Field(description="Which retrieval source nominated the video.")
    retrieval_score: float = Field(description="The score the nominating source gave it.")


class RecommendationResponse(BaseModel):
    user_id: int
    surface: Surface
    known_user: bool = Field(description="False when the user has no features yet and got the popularity fallback.")
    items: list[RecommendedVideo]
    model_versions: dict[str, str] = Field(description="Registry versions of the models that served this answer.")
