"""The request path: embed the user, retrieve with faiss, fetch features, rank, answer.

Plain Python, no BentoML, so it is tested without a server; the service only wires it up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.index import VideoIndex
from models.popularity import PopularityRecommender
from models.ranking.bundle import RankerBundle
from models.retrieval.bundle import RetrievalBundle
from models.sources import Candidate, MultiSourceRetriever
from serving.online_features import OnlineFeatureReader
from serving.schemas import RecommendationResponse, RecommendedVideo, Surface

logger = logging.getLogger(__name__)

PROFILE_COLUMNS = ("country", "device", "age_bucket", "gender")


@dataclass
class ServingModels:
    """The champion artifacts one service instance answers with."""

    retrieval: RetrievalBundle
    index: VideoIndex
    ranker: RankerBundle
    popularity: PopularityRecommender
    sources: MultiSourceRetriever
    versions: dict[str, str] = field(default_factory=dict)


class Recommender:
    def __init__(
        self,
        models: ServingModels,
        features: OnlineFeatureReader,
        candidates_per_request: int = 200,
        request_clock: Callable[[], float] = time.time,
    ):
        """`request_clock` gives a request's time in Unix seconds (see `serving.request_clock`)."""
        self.models = models
        self.features = features
        self.candidates_per_request = candidates_per_request
        self.request_clock = request_clock

    def recommend(self, user_id: int, k: int, surface: Surface) -> RecommendationResponse:
        user = self.features.user_features(user_id)
        if user is None:
            items = [
                RecommendedVideo(video_id=video, score=score, source="popular", retrieval_score=score)
                for video, score in self.models.popularity.recommend(k)
            ]
            return self._response(user_id, surface, known_user=False, items=items)
        history = [int(video) for video in (user.get("recent_watch_video_ids") or [])]
        candidates = self._retrieve(user_id, user, history, max(k, self.candidates_per_request))
        if len(candidates) < k:  # a tiny or exhausted corpus: top up with popular videos
            taken = set(history) | {candidate.video_id for candidate in candidates}
            candidates += [
                Candidate(video, "popular", score, ("popular",), rank)
                for rank, (video, score) in enumerate(
                    self.models.popularity.recommend(k - len(candidates), exclude=taken)
                )
            ]
        ranked = self._rank(user, user_id, surface, candidates)[:k]
        return self._response(user_id, surface, known_user=True, items=ranked)

    def _retrieve(self, user_id: int, user: dict[str, object], history: list[int], count: int) -> list[Candidate]:
        """ANN over the user embedding plus every other source, deduplicated, each tagged."""
        query = pd.DataFrame(
            [
                {
                    "history_video_ids": list(user.get("recent_watch_video_ids") or []),
                    "history_search_tokens": list(user.get("recent_search_tokens") or []),
                    "example_age_days": 0.0,
                    **{column: user.get(column) for column in PROFILE_COLUMNS},
                }
            ]
        )
        vector = self.models.retrieval.user_embeddings(query)
        watched = set(history)
        ids, scores = self.models.index.search(vector, count + len(watched))
        ann = [
            (int(video), float(score)) for video, score in zip(ids[0], scores[0]) if video >= 0 and int(video) not in watched
        ][:count]
        return self.models.sources.retrieve(user_id, history, watched, precomputed={"ann": ann})

    def _rank(
        self, user: dict[str, object], user_id: int, surface: Surface, candidates: list[Candidate]
    ) -> list[RecommendedVideo]:
        columns = self.features.ranking_columns(
            user,
            user_id,
            [candidate.video_id for candidate in candidates],
            request_unix_seconds=self.request_clock(),
            retrieval_sources=[candidate.source for candidate in candidates],
            retrieval_source_scores=[candidate.rank_score for candidate in candidates],
        )
        columns["surface"] = np.array([surface] * len(candidates), dtype=object)  # one object: encoded once
        scores = self.models.ranker.score(columns)
        order = np.argsort(-scores, kind="stable")
        return [
            RecommendedVideo(
                video_id=candidates[position].video_id,
                score=float(scores[position]),
                source=candidates[position].source,
                retrieval_score=candidates[position].source_score,
            )
            for position in order
        ]

    def _response(self, user_id: int, surface: Surface, known_user: bool, items: list[RecommendedVideo]):
        return RecommendationResponse(
            user_id=user_id, surface=surface, known_user=known_user, items=items, model_versions=self.models.versions
        )
