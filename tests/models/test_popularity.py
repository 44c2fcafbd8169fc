import pandas as pd
import pytest

from models.popularity import PopularityConfig, PopularityRecommender


@pytest.fixture
def interactions():
    day = pd.Timestamp("2024-03-10")
    rows = [
        # video 1: three users, but long ago; video 2: two users recently; video 3: one user recently
        (1, 1, day - pd.Timedelta(days=30)), (2, 1, day - pd.Timedelta(days=30)), (3, 1, day - pd.Timedelta(days=29)),
        (1, 2, day - pd.Timedelta(days=1)), (2, 2, day),
        (3, 3, day - pd.Timedelta(days=2)),
    ]
    return pd.DataFrame(rows, columns=["user_id", "video_id", "first_watch_time"])


def test_recent_watches_outrank_old_ones(interactions):
    recommender = PopularityRecommender(PopularityConfig(recency_window_days=7)).fit(interactions)
    assert recommender.recommend(3) == [(2, 2.0), (3, 1.0), (1, 0.0)]


def test_a_wide_window_counts_everything(interactions):
    recommender = PopularityRecommender(PopularityConfig(recency_window_days=365)).fit(interactions)
    assert [video for video, _ in recommender.recommend(3)] == [1, 2, 3]


def test_unknown_user_gets_popular_videos_minus_excluded(interactions, tmp_path):
    recommender = PopularityRecommender().fit(interactions)
    assert recommender.recommend(2, exclude={2}) == [(3, 1.0), (1, 0.0)]
    recommender.save(tmp_path / "popularity.json")
    loaded = PopularityRecommender.load(tmp_path / "popularity.json")
    assert loaded.recommend(3) == recommender.recommend(3)
    assert loaded.config == recommender.config


def test_fit_rejects_missing_columns():
    with pytest.raises(ValueError, match="first_watch_time"):
        PopularityRecommender().fit(pd.DataFrame({"user_id": [1], "video_id": [2]}))
