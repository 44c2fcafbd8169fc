"""The request path's column-wise `candidate_engagement` is the pandas transformation, value for value."""

import json

import numpy as np
import pandas as pd

from feature_repo import engagement
from feature_repo.on_demand import candidate_engagement_columns
from models.ranking.preprocessing import constant_column

DAY = 86_400.0


def _logs(rng: np.random.Generator) -> tuple[str, str]:
    watches = 30
    watch_log = {
        "video_ids": rng.integers(0, 40, watches).tolist(),
        "creator_ids": rng.integers(0, 8, watches).tolist(),
        "categories": rng.choice(["music", "news", "gaming"], watches).tolist(),
        "unix_seconds": (rng.uniform(0, 10, watches) * DAY).tolist(),
        "fractions": rng.uniform(0, 1, watches).tolist(),
    }
    impression_log = {
        "video_ids": rng.integers(0, 40, 80).tolist(),
        "unix_seconds": (rng.uniform(0, 10, 80) * DAY).tolist(),
    }
    return json.dumps(watch_log), json.dumps(impression_log)


def test_one_request_gets_the_same_features_either_way():
    rng = np.random.default_rng(3)
    watch_log, impression_log = _logs(rng)
    size = 200
    columns = {
        "video_id": rng.integers(0, 60, size),  # some never watched or shown
        "creator_id": rng.integers(0, 10, size),
        "category": rng.choice(["music", "news", "sports"], size).astype(object),
        engagement.WATCH_LOG: constant_column(watch_log, size),
        engagement.IMPRESSION_LOG: constant_column(impression_log, size),
        engagement.REQUEST_TIME: np.full(size, 11 * DAY),
        engagement.RETRIEVAL_SOURCE: rng.choice(np.array(["ann", "trending", None], dtype=object), size),
        engagement.RETRIEVAL_SOURCE_SCORE: np.where(rng.uniform(size=size) < 0.2, np.nan, rng.uniform(size=size)),
    }

    by_frame = engagement.candidate_engagement_features(pd.DataFrame(columns))
    by_columns = candidate_engagement_columns(columns)

    assert set(by_columns) == set(by_frame.columns)
    pd.testing.assert_frame_equal(pd.DataFrame(by_columns)[by_frame.columns], by_frame)
    assert by_frame["user_video_watches"].gt(0).any() and by_frame["user_video_unclicked_impressions"].gt(0).any()
