"""MovieLens sampled impressions: a slate's negatives come from what existed before it, never the future.

Each rating becomes a slate shown 60 s before it. Its negatives must be chosen as a system could
have chosen them then: among movies someone had rated before the slate, weighted by how often,
leaving out what the user had already rated, and independent of everything that happens later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.importers import load_movielens
from vidrec.importers.movielens import sampled_impressions

MOVIES = 40


def _random_ratings(seed: int = 0, users: int = 30, per_user: int = 15) -> pd.DataFrame:
    """Users rating distinct movies (popular ones more often) at random seconds over ~12 days."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, MOVIES + 1)
    rows = [
        (user, int(movie), float(rng.integers(1, 11)) / 2, int(rng.integers(1_000_000_000, 1_001_000_000)))
        for user in range(1, users + 1)
        for movie in rng.choice(np.arange(1, MOVIES + 1), per_user, replace=False, p=weights / weights.sum())
    ]
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])


def _write_csv_layout(directory: Path, ratings: pd.DataFrame) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ratings.to_csv(directory / "ratings.csv", index=False)
    movie_ids = np.arange(1, MOVIES + 1)
    titles = [f"Movie {movie} (1990)" for movie in movie_ids]
    movies = pd.DataFrame({"movieId": movie_ids, "title": titles, "genres": "Drama"})
    movies.to_csv(directory / "movies.csv", index=False)
    return directory


def _negatives(impressions: pd.DataFrame) -> pd.DataFrame:
    """The shown movies that are not the slate's own rated movie (named in the request id)."""
    rated_movie = impressions["request_id"].str.split("-").str[2].astype(np.int64)
    return impressions[impressions["video_id"] != rated_movie]


def test_every_negative_was_rated_by_someone_before_the_slate_and_not_by_its_user(tmp_path):
    ratings = _random_ratings()
    impressions = load_movielens(_write_csv_layout(tmp_path, ratings)).frames["impressions"]
    negatives = _negatives(impressions)
    assert len(negatives) > 3 * len(ratings)  # most slates are full (4 negatives)
    rating_time = pd.to_datetime(ratings["timestamp"], unit="s")
    first_rated_by_anyone = rating_time.groupby(ratings["movieId"]).min()
    assert (first_rated_by_anyone.loc[negatives["video_id"]].to_numpy() < negatives["impression_time"].to_numpy()).all()
    first_rated_by_user = rating_time.groupby([ratings["userId"], ratings["movieId"]]).min()
    by_user = first_rated_by_user.reindex(pd.MultiIndex.from_arrays([negatives["user_id"], negatives["video_id"]]))
    assert not (by_user.to_numpy() < negatives["impression_time"].to_numpy()).any()
    # one slate per rating, each showing its rated movie once, no movie twice, positions 0..n-1
    assert impressions["request_id"].nunique() == len(ratings)
    assert not impressions.duplicated(["request_id", "video_id"]).any()
    assert len(impressions) - len(negatives) == len(ratings)
    positions = impressions.groupby("request_id")["position"].agg(sorted)
    assert (positions == positions.map(len).map(lambda size: list(range(size)))).all()


def test_the_slates_do_not_change_when_a_users_future_ratings_change(tmp_path):
    ratings = _random_ratings()
    cut = int(ratings["timestamp"].median())
    user = 7
    future = ratings.index[(ratings["userId"] == user) & (ratings["timestamp"] >= cut)]
    assert len(future) >= 4
    # the user's later ratings: half dropped, the other half moved to movies they never rated
    dropped, moved = future[::2], future[1::2]
    unrated = sorted(set(range(1, MOVIES + 1)) - set(ratings.loc[ratings["userId"] == user, "movieId"]))
    altered = ratings.drop(index=dropped)
    altered.loc[moved, "movieId"] = unrated[: len(moved)]
    altered.loc[moved, "timestamp"] += 17

    original = load_movielens(_write_csv_layout(tmp_path / "original", ratings)).frames["impressions"]
    changed = load_movielens(_write_csv_layout(tmp_path / "altered", altered)).frames["impressions"]
    before_cut = pd.Timestamp(cut, unit="s") - pd.Timedelta(seconds=60)  # slates of ratings before the cut
    original = original[original["impression_time"] < before_cut].sort_values(["request_id", "position"])
    changed = changed[changed["impression_time"] < before_cut].sort_values(["request_id", "position"])
    assert original["request_id"].nunique() > 100 and (original["user_id"] == user).any()
    pd.testing.assert_frame_equal(original.reset_index(drop=True), changed.reset_index(drop=True))


def test_negatives_are_drawn_in_proportion_to_earlier_rating_counts():
    seconds = 1_000_000_000
    # 100 early users rate once each: movie 10 sixty times, 11 thirty, 12 ten.
    early_movies = [10] * 60 + [11] * 30 + [12] * 10
    early = pd.DataFrame({"user_id": np.arange(1, 101), "video_id": early_movies,
                          "watch_time": seconds + np.arange(100)})
    # 2000 users rate movie 99 in the same later second; movie 13 is first rated after them.
    probes = pd.DataFrame({"user_id": np.arange(1000, 3000), "video_id": 99, "watch_time": seconds + 10_000})
    late = pd.DataFrame({"user_id": [5000], "video_id": [13], "watch_time": [seconds + 20_000]})
    watches = pd.concat([early, probes, late], ignore_index=True)
    watches["watch_time"] = pd.to_datetime(watches["watch_time"], unit="s").astype("datetime64[us]")

    impressions = sampled_impressions(watches, negatives=1, seed=7)
    probe_negatives = impressions[impressions["user_id"].between(1000, 2999) & (impressions["video_id"] != 99)]
    assert len(probe_negatives) == len(probes)
    shares = probe_negatives["video_id"].value_counts(normalize=True)
    assert set(shares.index) == {10, 11, 12}  # never 13, which nobody had rated yet
    np.testing.assert_allclose(shares.loc[[10, 11, 12]].to_numpy(), [0.6, 0.3, 0.1], atol=0.04)
    # the very first rating has nothing before it: its slate shows the rated movie alone
    assert impressions.loc[impressions["user_id"] == 1, "video_id"].tolist() == [10]


def test_the_sample_is_seeded(tmp_path):
    directory = _write_csv_layout(tmp_path, _random_ratings())
    first = load_movielens(directory, seed=3).frames["impressions"]
    pd.testing.assert_frame_equal(first, load_movielens(directory, seed=3).frames["impressions"])
    other = load_movielens(directory, seed=4).frames["impressions"]
    assert _negatives(first)["video_id"].tolist() != _negatives(other)["video_id"].tolist()
