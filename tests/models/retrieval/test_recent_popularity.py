import json

import numpy as np
import pandas as pd
import pytest
import torch

from models.baselines.candidate_generator import CandidateGeneratorRecommender, rollback_examples
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.config import RetrievalConfig
from models.retrieval.freshness import epoch_days
from models.retrieval.recent_popularity import UNKNOWN_POPULARITY_BUCKET, RecentWatchers, popularity_buckets
from models.retrieval.train import reference_time_inputs, train_candidate_generator

START = pd.Timestamp("2024-01-01")
NUM_VIDEOS, DAYS, PERIOD_DAYS, TRENDING = 200, 60, 3, 5


def at(days: float) -> pd.Timestamp:
    return START + pd.to_timedelta(days, unit="D")


def counts_at(watchers: RecentWatchers, reference: pd.Timestamp, window_days: float, videos: int) -> list[float]:
    reference_days = torch.from_numpy(epoch_days([reference]))
    return watchers.counts(reference_days, torch.arange(videos), window_days)[0].tolist()


def trending_watching(num_users: int = 80, watches_per_user: int = 20, seed: int = 0):
    """Every 3 days a new set of 5 videos trends and draws 90% of the watches; all videos were
    uploaded together long before and look alike, so only recent popularity says what is next."""
    rng = np.random.default_rng(seed)
    catalog = pd.DataFrame({
        "video_id": np.arange(NUM_VIDEOS, dtype=np.int64),
        "creator_id": 0,
        "category": "music",
        "duration_seconds": 200.0,
        "upload_time": at(-365),
        "title_tokens": [["song"] for _ in range(NUM_VIDEOS)],
    })
    trending = [rng.choice(NUM_VIDEOS, TRENDING, replace=False) for _ in range(DAYS // PERIOD_DAYS)]
    rows = []
    for user in range(num_users):
        for day in np.sort(rng.uniform(0, DAYS, watches_per_user)):
            pool = trending[int(day // PERIOD_DAYS)] if rng.random() < 0.9 else np.arange(NUM_VIDEOS)
            rows.append((user, int(rng.choice(pool)), at(day)))
    interactions = pd.DataFrame(rows, columns=["user_id", "video_id", "time"])
    return interactions.drop_duplicates(["user_id", "video_id"]), catalog, trending


# Only the popularity logit can learn the rule here: no freshness (every video is equally old),
# no content bags (every video has the same creator and category).
CONFIG = RetrievalConfig(
    embedding_dim=16, tower_widths=(32, 16), item_tower_widths=(16,), epochs=4, batch_size=128,
    num_uniform_negatives=64, show_progress=False, seed=1, history_content=False,
    recent_popularity_logit=True, recent_popularity_window_days=2.0,
)


@pytest.fixture(scope="module")
def trending_model():
    interactions, catalog, trending = trending_watching()
    return CandidateGeneratorRecommender(catalog, CONFIG).fit(interactions), trending


def test_recent_watchers_count_distinct_users_strictly_before_the_reference_time():
    reference = at(9.5)  # 2024-01-10 12:00
    interactions = pd.DataFrame([
        (1, 0, at(0.0)),  # before the 7-day window
        (2, 0, at(4.0)),  # in it
        (3, 0, at(8.0)),  # in it
        (4, 0, reference),  # at the reference time: e.g. the label of an example with a tied previous watch
        (5, 0, reference + pd.Timedelta(minutes=30)),  # after it
        (6, 0, at(12.0)),  # after it
        (2, 1, at(5.0)),  # user 2 watches video 1 twice in the window: one distinct watcher
        (2, 1, at(6.0)),
        (7, 1, at(9.5) + pd.Timedelta(days=1)),  # after it
    ], columns=["user_id", "video_id", "time"])
    watchers = RecentWatchers.from_interactions(interactions, np.array([0, 1, 2]))
    assert counts_at(watchers, reference, 7.0, 3) == [2.0, 1.0, 0.0]
    # a reference time just after the label's watch still leaves it out while in the same hour...
    assert counts_at(watchers, reference + pd.Timedelta(minutes=59), 7.0, 3) == [2.0, 1.0, 0.0]
    # ...and counts it once that hour is over
    assert counts_at(watchers, reference + pd.Timedelta(minutes=61), 7.0, 3) == [4.0, 1.0, 0.0]
    # after the last watch: the last 7 days the data knows (which end with the hour of day 12's watch)
    assert counts_at(watchers, at(30.0), 7.0, 3) == [4.0, 1.0, 0.0]


def test_recent_watchers_never_count_a_watch_at_or_after_the_reference_time():
    rng = np.random.default_rng(3)
    times = START + pd.to_timedelta(rng.uniform(0, 20, 400), unit="D")
    interactions = pd.DataFrame({"user_id": np.arange(400), "video_id": rng.integers(0, 10, 400), "time": times})
    watchers = RecentWatchers.from_interactions(interactions, np.arange(10))
    references = pd.Series(START + pd.to_timedelta(rng.uniform(-2, 19.5, 50), unit="D"))
    counts = watchers.counts(torch.from_numpy(epoch_days(references)), torch.arange(10), 3.0).numpy()
    for row, reference in enumerate(references):
        window_end = reference.floor("h")  # the window is the whole hours that end by the reference time
        assert window_end <= reference
        for video in range(10):
            watched = interactions.loc[interactions["video_id"] == video, "time"]
            in_window = (watched >= window_end - pd.Timedelta(days=3)) & (watched < window_end)
            assert counts[row, video] == in_window.sum()


def test_training_counts_each_examples_candidates_before_its_reference_time_so_never_its_label():
    interactions, catalog, _ = trending_watching(num_users=20, watches_per_user=10)
    examples, _ = rollback_examples(interactions, history_length=10, max_examples_per_user=10)
    inputs = reference_time_inputs(examples, catalog, interactions, CONFIG)
    rows = torch.arange(len(examples))
    labels = torch.from_numpy(examples["label_video_id"].to_numpy(np.int64))  # video ids are catalog rows here
    label_counts = inputs.recent_watchers.counts(inputs.reference_days[rows], labels, 2.0).diagonal().numpy()
    first_watch = interactions.set_index(["user_id", "video_id"])["time"]
    for row, example in enumerate(examples.itertuples()):
        assert first_watch[(example.user_id, example.label_video_id)] >= example.reference_time  # the label
        window_end = example.reference_time.floor("h")
        watched = interactions.loc[interactions["video_id"] == example.label_video_id, "time"]
        assert label_counts[row] == ((watched >= window_end - pd.Timedelta(days=2)) & (watched < window_end)).sum()


def test_buckets_grow_with_the_count_and_unknown_reference_times_get_their_own():
    watchers = RecentWatchers.from_interactions(
        pd.DataFrame({"user_id": [1], "video_id": [0], "time": [START]}), np.array([0])
    )
    counts = watchers.counts(torch.tensor([float("nan")], dtype=torch.float64), torch.arange(1), 7.0)
    assert popularity_buckets(counts).tolist() == [[UNKNOWN_POPULARITY_BUCKET]]
    buckets = popularity_buckets(torch.tensor([0.0, 1.0, 5.0, 100.0, 1e6])).tolist()
    assert buckets[0] == 0 and all(low < high for low, high in zip(buckets, buckets[1:]))
    assert buckets[-1] < UNKNOWN_POPULARITY_BUCKET


def test_popularity_logit_learns_that_recently_popular_videos_are_preferred(trending_model):
    recommender, trending = trending_model
    logits = recommender.bundle.model.recent_popularity_logit.weight.detach().ravel()
    unwatched, popular = popularity_buckets(torch.tensor([0.0, 10.0])).tolist()
    assert logits[popular] > logits[unwatched] + 1.0
    # asked mid-period, the model ranks that period's trending videos first
    reference = at(10 * PERIOD_DAYS + 2.0)
    query = recommender.queries.head(1).assign(reference_time=reference)
    video_ids, scores = recommender.bundle.score_catalog(query)
    top = set(video_ids[np.argsort(-scores[0])[:TRENDING]].tolist())
    assert len(top & set(trending[10].tolist())) >= 4


def test_bundle_with_the_popularity_logit_saves_and_loads(trending_model, tmp_path):
    recommender, _ = trending_model
    recommender.bundle.save(tmp_path / "popular")
    loaded = RetrievalBundle.load(tmp_path / "popular")
    assert loaded.config.recent_popularity_logit and loaded.config.recent_popularity_window_days == 2.0
    torch.testing.assert_close(loaded.recent_watchers.cumulative, recommender.bundle.recent_watchers.cumulative)
    assert loaded.recent_watchers.origin_days == recommender.bundle.recent_watchers.origin_days
    query = recommender.queries.head(3)
    np.testing.assert_array_equal(loaded.score_catalog(query)[1], recommender.bundle.score_catalog(query)[1])


def test_bundle_saved_before_the_popularity_option_still_loads(tmp_path):
    interactions, catalog, _ = trending_watching(num_users=10, watches_per_user=8)
    config = RetrievalConfig(
        embedding_dim=8, tower_widths=(8,), item_tower_widths=(8,), epochs=1, batch_size=32,
        num_uniform_negatives=16, show_progress=False,
    )
    recommender = CandidateGeneratorRecommender(catalog, config).fit(interactions)
    recommender.bundle.save(tmp_path / "old")
    config_path = tmp_path / "old" / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["recent_popularity_logit"], saved["recent_popularity_window_days"]
    config_path.write_text(json.dumps(saved))
    loaded = RetrievalBundle.load(tmp_path / "old")
    assert not loaded.config.recent_popularity_logit and loaded.recent_watchers is None
    query = recommender.queries.head(3)
    np.testing.assert_array_equal(loaded.score_catalog(query)[1], recommender.bundle.score_catalog(query)[1])


def test_the_popularity_logit_needs_the_training_interactions():
    interactions, catalog, _ = trending_watching(num_users=5, watches_per_user=5)
    examples, _ = rollback_examples(interactions, history_length=10, max_examples_per_user=10)
    examples = examples.assign(country=None, device=None, age_bucket=None, gender=None)
    with pytest.raises(ValueError, match="interactions"):
        train_candidate_generator(examples, catalog, CONFIG)
