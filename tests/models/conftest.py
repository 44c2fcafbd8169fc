"""Small seeded synthetic data sets with planted structure, built in memory for the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

CATEGORIES = ("music", "gaming", "news", "sports", "comedy", "education")


def make_catalog(num_videos: int, rng: np.random.Generator, categories=CATEGORIES) -> pd.DataFrame:
    category = rng.integers(0, len(categories), num_videos)
    return pd.DataFrame(
        {
            "video_id": np.arange(1000, 1000 + num_videos, dtype=np.int64),
            "creator_id": (category * 10 + rng.integers(0, 5, num_videos)).astype(np.int64),
            "category": [categories[c] for c in category],
            "duration_seconds": rng.uniform(30, 900, num_videos),
            "upload_time": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60, num_videos), unit="D"),
            "title_tokens": [[categories[c], f"word{rng.integers(0, 50)}"] for c in category],
        }
    )


def make_retrieval_examples(
    catalog: pd.DataFrame, num_users: int, watches_per_user: int, rng: np.random.Generator,
    own_category_share: float = 0.9, holdout_share: float = 0.2, history_length: int = 50,
) -> pd.DataFrame:
    """Each user has a favourite category and watches it `own_category_share` of the time
    (popularity-weighted, Zipf within the catalog); the last `holdout_share` of watches are holdout."""
    categories = sorted(catalog["category"].unique())
    popularity = 1.0 / np.arange(1, len(catalog) + 1) ** 0.8
    popularity = popularity[rng.permutation(len(catalog))]
    by_category = {c: np.flatnonzero(catalog["category"].to_numpy() == c) for c in categories}
    video_ids = catalog["video_id"].to_numpy()
    rows = []
    num_train = round(watches_per_user * (1 - holdout_share))
    for user in range(num_users):
        favourite = categories[user % len(categories)]
        own = by_category[favourite]
        watches = []
        for _ in range(watches_per_user):
            pool = own if rng.random() < own_category_share else np.arange(len(catalog))
            weights = popularity[pool] / popularity[pool].sum()
            watches.append(int(video_ids[rng.choice(pool, p=weights)]))
        searches = [favourite, f"{favourite} best"]
        for position in range(1, watches_per_user):
            rows.append(
                {
                    "user_id": user,
                    "label_video_id": watches[position],
                    "history_video_ids": watches[:position][-history_length:],
                    "history_search_tokens": searches,
                    "example_age_days": float(max(num_train - position, 0)),
                    "country": ["US", "IN", "BR"][user % 3],
                    "device": ["mobile", "desktop"][user % 2],
                    "age_bucket": "18-24",
                    "gender": None if user % 5 == 0 else "female",
                    "split": "train" if position < num_train else "holdout",
                    "favourite_category": favourite,
                }
            )
    return pd.DataFrame(rows)


def make_ranking_frame(num_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Clicks get likelier and watches longer with `quality` (numeric) and on surface 'home'."""
    quality = rng.uniform(0, 10, num_rows)
    surface = rng.choice(["home", "watch_next", "search"], num_rows)
    noise = rng.normal(0, 1, num_rows)
    home = surface == "home"
    click_probability = 0.05 + 0.03 * quality + 0.1 * home
    clicked = rng.random(num_rows) < click_probability
    expected_seconds_if_clicked = 20.0 * np.exp(0.25 * quality) * np.where(home, 1.5, 1.0)
    watch_seconds = np.where(clicked, expected_seconds_if_clicked * rng.exponential(1.0, num_rows), 0.0)
    return pd.DataFrame(
        {
            "quality": np.where(rng.random(num_rows) < 0.02, np.nan, quality),
            "noise": noise,
            "surface": surface,
            "country": rng.choice(["US", "IN"], num_rows),
            "clicked": clicked,
            "watch_seconds": watch_seconds,
            "expected_watch_seconds": click_probability * expected_seconds_if_clicked,
            "split": np.where(rng.random(num_rows) < 0.8, "train", "holdout"),
        }
    )


@pytest.fixture(scope="session")
def retrieval_data():
    rng = np.random.default_rng(7)
    catalog = make_catalog(240, rng)
    examples = make_retrieval_examples(catalog, num_users=240, watches_per_user=25, rng=rng)
    # Two videos nobody ever watches, so only their content describes them.
    unwatched = make_catalog(2, rng).assign(video_id=[9001, 9002], category=["music", "gaming"],
                                            creator_id=[0, 10], title_tokens=[["music"], ["gaming"]])
    return examples, pd.concat([catalog, unwatched], ignore_index=True)


@pytest.fixture(scope="session")
def ranking_frame():
    return make_ranking_frame(30_000, np.random.default_rng(11))
