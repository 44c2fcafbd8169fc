import numpy as np
import pandas as pd
import pytest

from models.baselines import ALS, BPR, EASE, ItemKNN, MostPopular, SASRec
from models.baselines.candidate_generator import (
    CandidateGeneratorRecommender,
    rollback_examples,
)
from models.baselines.harness import HarnessSettings, MethodSpec, run_harness
from models.evaluation.protocol import METRIC_NAMES, evaluate, temporal_split
from models.evaluation.tuning import Choice, FloatRange
from models.retrieval.config import RetrievalConfig

NUM_CLUSTERS, ITEMS_PER_CLUSTER = 6, 20
NUM_ITEMS = NUM_CLUSTERS * ITEMS_PER_CLUSTER


def planted_interactions(num_users: int = 240, watches_per_user: int = 15, seed: int = 0) -> pd.DataFrame:
    """Items 0..119 in 6 clusters of 20; each user watches only its own cluster (Zipf-popular
    inside it) plus two globally popular items, in random time order."""
    rng = np.random.default_rng(seed)
    within = 1.0 / np.arange(1, ITEMS_PER_CLUSTER + 1) ** 0.7
    rows = []
    for user in range(num_users):
        cluster = user % NUM_CLUSTERS
        own = cluster * ITEMS_PER_CLUSTER + rng.choice(
            ITEMS_PER_CLUSTER, watches_per_user, replace=False, p=within / within.sum()
        )
        popular = rng.choice([0, 1, 20, 21], 2, replace=False)
        items = list(dict.fromkeys([*own.tolist(), *popular.tolist()]))
        times = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(len(items)), unit="h")
        rows += [(user, item, time) for item, time in zip(items, times)]
    return pd.DataFrame(rows, columns=["user_id", "video_id", "time"])


@pytest.fixture(scope="module")
def split():
    return temporal_split(planted_interactions())


def tiny_catalog() -> pd.DataFrame:
    return pd.DataFrame({
        "video_id": np.arange(NUM_ITEMS, dtype=np.int64),
        "creator_id": np.arange(NUM_ITEMS) // 5,
        "category": [f"cluster{item // ITEMS_PER_CLUSTER}" for item in range(NUM_ITEMS)],
        "duration_seconds": 300.0,
        "upload_time": pd.Timestamp("2023-12-01"),
        "title_tokens": [[f"cluster{item // ITEMS_PER_CLUSTER}", f"word{item % 7}"] for item in range(NUM_ITEMS)],
    })


def test_ease_recovers_planted_item_clusters(split):
    ease = EASE(l2=10.0).fit(split.train)
    items = ease.data.item_ids
    same_cluster = []
    for column, item in enumerate(items):
        neighbours = items[np.argsort(-ease.weights[:, column])[:5]]
        same_cluster.append(np.mean(neighbours // ITEMS_PER_CLUSTER == item // ITEMS_PER_CLUSTER))
    assert np.mean(same_cluster) > 0.9
    assert np.allclose(np.diag(ease.weights), 0.0)


def test_ease_beats_popularity_on_planted_structure(split):
    ease = evaluate(EASE(l2=10.0).fit(split.train).recommend, split, NUM_ITEMS).metrics
    popular = evaluate(MostPopular().fit(split.train).recommend, split, NUM_ITEMS).metrics
    assert ease["recall@10"] > popular["recall@10"] + 0.2
    assert ease["ndcg@10"] > 2 * popular["ndcg@10"]


@pytest.mark.parametrize(
    "method",
    [
        ItemKNN(neighbours=20), ALS(factors=8, iterations=5), BPR(factors=8, iterations=20), EASE(l2=10.0),
        MostPopular(), ItemKNN(neighbours=20, recency_decay=0.8), EASE(l2=10.0, recency_decay=0.8),
        MostPopular(recency_window_days=0.5),
        SASRec(hidden_dim=16, num_heads=1, num_layers=1, max_length=10, epochs=2, device="cpu"),
    ],
    ids=lambda method: type(method).__name__ + "".join(
        f"-{name}" for name in ("recency_decay", "recency_window_days")
        if getattr(method, name, None) not in (None, 1.0, float("inf"))
    ),
)
def test_recommendations_have_requested_length_and_exclude_seen_items(method, split):
    method.fit(split.train)
    seen = split.seen()
    users = sorted(split.relevant())[:20]
    ranked = method.recommend(users, 10, seen)
    assert [len(items) for items in ranked] == [10] * len(users)
    for user, items in zip(users, ranked):
        assert not set(items) & seen[user]
        assert len(set(items)) == 10


def test_rollback_examples_use_only_earlier_items_and_cap_per_user():
    frame = planted_interactions(num_users=2, watches_per_user=10).sort_values(["user_id", "time"])
    examples, queries = rollback_examples(frame, history_length=3, max_examples_per_user=4)
    assert examples.groupby("user_id").size().tolist() == [4, 4]
    for user, group in frame.groupby("user_id"):
        items = group["video_id"].tolist()
        user_examples = examples[examples["user_id"] == user]
        assert user_examples["label_video_id"].tolist() == items[-4:]
        assert list(user_examples["history_video_ids"].iloc[-1]) == items[-4:-1]
        assert list(queries.loc[queries["user_id"] == user, "history_video_ids"].item()) == items[-3:]
    assert (examples["example_age_days"] >= 0).all()


def test_harness_tunes_and_scores_every_baseline():
    catalog = tiny_catalog()
    config = RetrievalConfig(embedding_dim=16, tower_widths=(32, 16), item_tower_widths=(16,), epochs=2,
                             num_uniform_negatives=32, batch_size=256, show_progress=False)
    decay = FloatRange(0.5, 1.0, hard_low=0.01, hard_high=1.0)
    methods = [
        MethodSpec("most_popular", MostPopular, {"recency_window_days": FloatRange(0.1, 30.0, log=True)}),
        MethodSpec("item_knn", ItemKNN, {"neighbours": Choice((10, None)), "recency_decay": decay}),
        MethodSpec("als", lambda seed: ALS(factors=8, iterations=3, seed=seed), seeded=True),
        MethodSpec("bpr", lambda seed: BPR(factors=8, iterations=10, seed=seed), seeded=True),
        MethodSpec("ease", EASE, {"l2": FloatRange(1.0, 10.0, log=True), "recency_decay": decay}),
        MethodSpec("sasrec", lambda seed: SASRec(hidden_dim=16, num_heads=1, num_layers=1, max_length=10, epochs=2,
                                                 device="cpu", seed=seed), seeded=True),
        MethodSpec("candidate_generator", lambda: CandidateGeneratorRecommender(catalog, config)),
    ]
    settings = HarnessSettings(trials=2, max_widenings=0, seeds=(0, 1), slices=("all",))
    result = run_harness(planted_interactions(num_users=60), methods, catalog_size=NUM_ITEMS, settings=settings)
    assert list(result.runs) == [spec.name for spec in methods]
    for spec in methods:
        run = result.runs[spec.name]
        assert run.seeds == ((0, 1) if spec.seeded else (0,))
        for evaluation in run.evaluations["all"]:
            assert set(METRIC_NAMES) <= set(evaluation.metrics)
            assert evaluation.metrics["recall@500"] >= evaluation.metrics["recall@10"]
    assert 1.0 <= result.runs["ease"].params["l2"] <= 10.0
    assert 0.5 <= result.runs["ease"].params["recency_decay"] <= 1.0
