import pandas as pd
import pytest


@pytest.fixture
def clean_watches() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series([1, 1, 2, 3], dtype="int64"),
            "video_id": pd.Series([10, 11, 10, 12], dtype="int64"),
            "watch_time": pd.to_datetime(
                ["2024-05-01 10:00", "2024-05-01 11:00", "2024-05-02 09:30", "2024-05-03 20:15"]
            ).astype("datetime64[us]"),
            "watch_seconds": [120.0, 0.0, 33.5, 600.0],
            "liked": [True, False, False, True],
            "shared": [False, False, True, False],
            "disliked": [False, True, False, False],
        }
    )


@pytest.fixture
def clean_impressions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2", "r3"],
            "user_id": pd.Series([1, 1, 2, 3], dtype="int64"),
            "video_id": pd.Series([10, 11, 10, 12], dtype="int64"),
            "surface": ["home", "home", "watch_next", "search"],
            "position": pd.Series([0, 1, 0, 4], dtype="int32"),
            "impression_time": pd.to_datetime(
                ["2024-05-01 10:00", "2024-05-01 10:00", "2024-05-02 09:30", "2024-05-03 20:15"]
            ).astype("datetime64[us]"),
            "source": ["ann", "trending", None, "exploration"],
            "source_score": [1.0, 0.5, None, 0.25],
            # What the service logs of what it served (null where a client or the simulator wrote the row).
            "score": [None, None, None, 31.5],
            "propensity": [None, None, None, 0.03],
            "reason": [None, None, None, "exploring"],
            "explored": [None, None, None, True],
            "head_predictions": [None, None, None, [("watch_time", 25.5), ("like", 0.3), ("skip", 0.1)]],
            "model_versions": [None, None, None, [("ranker", "4"), ("retrieval", "3")]],
        }
    )
