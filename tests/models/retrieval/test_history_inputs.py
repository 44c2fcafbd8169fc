"""The user tower's reading of the watch history: the watched videos' content, and their recency."""

import numpy as np
import pandas as pd
import pytest

from models.baselines.candidate_generator import CandidateGeneratorRecommender
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.config import RetrievalConfig

START = pd.Timestamp("2024-01-01")
CATEGORIES = ("music", "sports", "news", "gaming")
VIDEOS_PER_CATEGORY = 150

CONFIG = RetrievalConfig(
    embedding_dim=16, tower_widths=(32, 16), item_tower_widths=(16,), epochs=6, batch_size=128,
    num_uniform_negatives=64, learning_rate=5e-3, show_progress=False, seed=0,
)


def catalog() -> pd.DataFrame:
    count = len(CATEGORIES) * VIDEOS_PER_CATEGORY
    return pd.DataFrame({
        "video_id": np.arange(count, dtype=np.int64),
        "creator_id": np.arange(count, dtype=np.int64),  # one video per creator: creators say nothing
        "category": [CATEGORIES[video // VIDEOS_PER_CATEGORY] for video in range(count)],
        "duration_seconds": 300.0,
        "title_tokens": [["video"] for _ in range(count)],
    })


def watches(category_of_watch, num_users: int, watches_per_user: int, seed: int) -> pd.DataFrame:
    """Each user's watches, one a day; `category_of_watch(rng, user, step, previous)` picks each category."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        previous = None
        for step, video in enumerate(range(watches_per_user)):
            category = category_of_watch(rng, user, step, previous)
            video = category * VIDEOS_PER_CATEGORY + int(rng.integers(VIDEOS_PER_CATEGORY))
            rows.append((user, video, START + pd.Timedelta(days=step)))
            previous = category
    return pd.DataFrame(rows, columns=["user_id", "video_id", "time"]).drop_duplicates(["user_id", "video_id"])


def category_precision_at_10(recommender: CandidateGeneratorRecommender, favourite: dict[int, int]) -> float:
    users = sorted(favourite)
    ranked = recommender.recommend(users, 10, {})
    return float(np.mean([
        np.mean([video // VIDEOS_PER_CATEGORY == favourite[user] for video in videos])
        for user, videos in zip(users, ranked)
    ]))


@pytest.fixture(scope="module")
def loyal_viewers():
    """Every user watches one category only; 80 users with 6 watches each over 600 videos means
    most videos are watched once: too rarely for an id embedding to say much in a short training."""
    favourite = {user: user % len(CATEGORIES) for user in range(80)}
    return watches(lambda rng, user, step, previous: favourite[user], 80, 6, seed=1), favourite


SHORT_TRAINING = RetrievalConfig(**{**vars(CONFIG), "epochs": 3})


def test_the_watched_videos_categories_tell_the_user_tower_what_the_user_likes(loyal_viewers):
    interactions, favourite = loyal_viewers
    with_content = CandidateGeneratorRecommender(catalog(), SHORT_TRAINING).fit(interactions)
    ids_only = CandidateGeneratorRecommender(
        catalog(), RetrievalConfig(**{**vars(SHORT_TRAINING), "history_content": False})
    ).fit(interactions)
    assert category_precision_at_10(with_content, favourite) > 0.9
    assert category_precision_at_10(with_content, favourite) > category_precision_at_10(ids_only, favourite) + 0.3


def test_history_content_survives_a_bundle_round_trip(loyal_viewers, tmp_path):
    interactions, _ = loyal_viewers
    recommender = CandidateGeneratorRecommender(catalog(), SHORT_TRAINING).fit(interactions)
    recommender.bundle.save(tmp_path / "bundle")
    loaded = RetrievalBundle.load(tmp_path / "bundle")
    assert loaded.model.category_of_video.tolist() == recommender.bundle.model.category_of_video.tolist()
    queries = recommender.queries.head(5)
    np.testing.assert_array_equal(loaded.user_embeddings(queries), recommender.bundle.user_embeddings(queries))


def test_recency_weights_learn_that_the_last_watch_predicts_the_next_one_best():
    """Users stay in a category for a while, then move to another: the next watch shares the last
    watch's category far more often than an older one's."""

    def sticky(rng, user, step, previous):
        return previous if previous is not None and rng.random() < 0.85 else int(rng.integers(len(CATEGORIES)))

    interactions = watches(sticky, 120, 30, seed=2)
    recommender = CandidateGeneratorRecommender(catalog(), CONFIG).fit(interactions)
    logits = recommender.bundle.model.history_recency_logit.detach().numpy()
    assert logits[0] > logits[5] + 0.5
    assert logits[0] > logits[20] + 0.5


def test_a_bundle_saved_before_the_history_options_existed_loads_as_it_was_trained(loyal_viewers, tmp_path):
    """Its config.json has no key for the options, and its weights no tensors for them: loading
    must not switch on today's defaults."""
    import json

    interactions, _ = loyal_viewers
    before = RetrievalConfig(**{**vars(SHORT_TRAINING), "history_content": False, "history_recency_weights": False,
                                "weight_ema_decay": 0.0})
    recommender = CandidateGeneratorRecommender(catalog(), before).fit(interactions)
    recommender.bundle.save(tmp_path / "old")
    config_file = tmp_path / "old" / "config.json"
    saved = json.loads(config_file.read_text())
    for option in ("history_content", "history_recency_weights", "weight_ema_decay"):
        del saved[option]
    config_file.write_text(json.dumps(saved))
    loaded = RetrievalBundle.load(tmp_path / "old")
    assert not loaded.config.history_content and not loaded.config.history_recency_weights
    queries = recommender.queries.head(5)
    np.testing.assert_array_equal(loaded.user_embeddings(queries), recommender.bundle.user_embeddings(queries))
