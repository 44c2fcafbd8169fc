"""Reading features at request time through the same Feast feature services training used."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from feast import FeatureStore

RETRIEVAL_USER_SERVICE = "retrieval_user_features"
RANKER_SERVICE = "ranker_features"
USER_KEY = "user_id"
VIDEO_KEY = "video_id"


class OnlineFeatureReader:
    """Thin, request-path wrapper over `FeatureStore.get_online_features`.

    Feature services are resolved once at start-up, not per request.
    """

    def __init__(self, store: FeatureStore):
        self._store = store
        self._user_service = store.get_feature_service(RETRIEVAL_USER_SERVICE)
        self._ranker_service = store.get_feature_service(RANKER_SERVICE)

    def user_features(self, user_id: int) -> dict[str, object] | None:
        """The user's profile and watch history, or None when the online store has nothing for them."""
        values = self._store.get_online_features(
            features=self._user_service, entity_rows=[{USER_KEY: user_id}]
        ).to_dict()
        row = {name: column[0] for name, column in values.items()}
        if all(value is None for name, value in row.items() if name != USER_KEY):
            return None
        return row

    def ranking_features(self, user_id: int, video_ids: Sequence[int]) -> pd.DataFrame:
        """One row per candidate with every ranker feature (user features repeated per row)."""
        rows = [{USER_KEY: user_id, VIDEO_KEY: int(video_id)} for video_id in video_ids]
        values = self._store.get_online_features(features=self._ranker_service, entity_rows=rows).to_dict()
        return pd.DataFrame(values)
