import numpy as np
import pandas as pd
import pytest
import torch

from models.evaluation.metrics import evaluate_retrieval
from models.evaluation.protocol import rank_by_scores
from models.popularity import PopularityConfig, PopularityRecommender
from models.retrieval.bundle import RetrievalBundle
from models.retrieval.config import RetrievalConfig
from models.retrieval.model import masked_mean
from models.retrieval.train import sampled_softmax_loss, train_candidate_generator

SMALL_CONFIG = RetrievalConfig(
    embedding_dim=32, tower_widths=(64, 32), item_tower_widths=(32,), epochs=12, batch_size=256,
    num_uniform_negatives=64, learning_rate=5e-3, show_progress=False, seed=3,
)


@pytest.fixture(scope="module")
def trained(retrieval_data):
    examples, catalog = retrieval_data
    return train_candidate_generator(examples, catalog, SMALL_CONFIG)


def first_holdout_rows(examples: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, set[int]]]:
    holdout = examples[examples["split"] == "holdout"]
    relevant = holdout.groupby("user_id")["label_video_id"].apply(set).to_dict()
    return holdout.groupby("user_id").head(1).set_index("user_id", drop=False), relevant


def test_candidate_generator_beats_popularity_on_planted_categories(trained, retrieval_data):
    examples, _ = retrieval_data
    users, relevant = first_holdout_rows(examples)
    user_vectors = trained.user_embeddings(users)
    video_ids, video_vectors = trained.video_embeddings()
    user_ids = [int(user) for user in users["user_id"]]
    histories = {user: set(map(int, history)) for user, history in zip(user_ids, users["history_video_ids"])}
    ranked = rank_by_scores(user_vectors @ video_vectors.T, video_ids, user_ids, 10, histories)
    model_recommendations = dict(zip(user_ids, ranked))
    train = examples[examples["split"] == "train"]
    interactions = pd.DataFrame({
        "user_id": train["user_id"], "video_id": train["label_video_id"],
        "first_watch_time": pd.Timestamp("2024-03-01") - pd.to_timedelta(train["example_age_days"], unit="D"),
    })
    popularity = PopularityRecommender(PopularityConfig(recency_window_days=365)).fit(interactions)
    popular_recommendations = {
        user: [video for video, _ in popularity.recommend(10, exclude=set(history))]
        for user, history in zip(users["user_id"], users["history_video_ids"])
    }
    model_recall = evaluate_retrieval(model_recommendations, relevant, ks=(10,))["recall@10"]
    popular_recall = evaluate_retrieval(popular_recommendations, relevant, ks=(10,))["recall@10"]
    assert model_recall > 2 * popular_recall
    assert model_recall > popular_recall + 0.1
    assert trained.metrics["holdout_recall@10"] > 0.1


def test_user_vectors_prefer_videos_of_the_planted_category(trained, retrieval_data):
    examples, catalog = retrieval_data
    users, _ = first_holdout_rows(examples)
    video_ids, video_vectors = trained.video_embeddings()
    category_of = catalog.set_index("video_id")["category"]
    top = video_ids[np.argsort(-(trained.user_embeddings(users) @ video_vectors.T), axis=1)[:, :10]]
    share = np.mean([category_of[video] == favourite for row, favourite in zip(top, users["favourite_category"])
                     for video in row])
    assert share > 0.8


def test_never_watched_video_gets_a_finite_content_embedding(trained):
    assert trained.vocabularies["video"].index(9001) == 0
    video_ids, vectors = trained.video_embeddings()
    vector = vectors[np.flatnonzero(video_ids == 9001)[0]]
    assert np.all(np.isfinite(vector)) and np.linalg.norm(vector) > 0


def test_new_catalog_rows_can_be_embedded_after_training(trained, retrieval_data):
    _, catalog = retrieval_data
    fresh = catalog.tail(2).assign(video_id=[50001, 50002])
    ids, vectors = trained.video_embeddings(fresh)
    _, trained_vectors = trained.video_embeddings()
    assert ids.tolist() == [50001, 50002]
    # unseen ids map to index 0 like the never-watched catalog videos 9001/9002 with the same content
    np.testing.assert_allclose(vectors, trained_vectors[-2:], rtol=1e-5, atol=1e-6)


def test_bundle_round_trip_gives_identical_embeddings(trained, retrieval_data, tmp_path):
    examples, _ = retrieval_data
    users = examples.head(50)
    trained.save(tmp_path / "retrieval")
    loaded = RetrievalBundle.load(tmp_path / "retrieval")
    np.testing.assert_array_equal(loaded.user_embeddings(users), trained.user_embeddings(users))
    ids, vectors = loaded.video_embeddings()
    expected_ids, expected_vectors = trained.video_embeddings()
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(vectors, expected_vectors)
    assert loaded.metrics == pytest.approx(trained.metrics)
    assert loaded.config == trained.config


def test_serving_sets_example_age_to_zero_unless_given(trained, retrieval_data):
    examples, _ = retrieval_data
    users = examples.head(5)
    at_zero = trained.user_embeddings(users.assign(example_age_days=0.0))
    np.testing.assert_array_equal(trained.user_embeddings(users.drop(columns=["example_age_days"])), at_zero)
    assert trained.user_embeddings(users).dtype == np.float32


def test_user_with_no_history_and_unknown_demographics_still_gets_a_vector(trained):
    cold = pd.DataFrame({"history_video_ids": [[]], "history_search_tokens": [None], "country": ["ZZ"],
                         "device": [None], "age_bucket": ["?"], "gender": [None]})
    vector = trained.user_embeddings(cold)
    assert vector.shape == (1, SMALL_CONFIG.embedding_dim) and np.all(np.isfinite(vector))


def test_masked_mean_ignores_padding():
    table = torch.nn.Embedding(4, 2, padding_idx=0)
    with torch.no_grad():
        table.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 5.0], [9.0, 9.0]]))
    means = masked_mean(table, torch.tensor([[1, 2, 0, 0], [0, 0, 0, 0]]))
    torch.testing.assert_close(means, torch.tensor([[2.0, 3.0], [0.0, 0.0]]))


def test_sampled_softmax_masks_accidental_hits_and_applies_logq():
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    candidates = torch.tensor([0, 0, 0])  # row 1's label repeats row 0's and the uniform sample
    vectors = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    loss = sampled_softmax_loss(users, vectors, candidates, None, 1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # only the positive column survives per row
    log_counts = torch.log(torch.tensor([2.0, 1.0]))
    candidates = torch.tensor([0, 1, 1])  # uniform sample equals row 1's label → masked for row 1
    corrected = sampled_softmax_loss(users, torch.zeros(3, 2), candidates, log_counts, 1.0)
    # row 0: logits [-log 2, 0, 0] → -log(0.5 / 2.5); row 1: [-log 2, 0] → -log(1 / 1.5)
    expected = (-np.log(0.5 / 2.5) - np.log(1 / 1.5)) / 2
    assert corrected.item() == pytest.approx(expected, rel=1e-5)


def test_config_requires_towers_to_end_in_embedding_dim():
    with pytest.raises(ValueError, match="must end in embedding_dim"):
        RetrievalConfig(embedding_dim=32, tower_widths=(64, 16))


def test_training_requires_the_contract_columns(retrieval_data):
    examples, catalog = retrieval_data
    with pytest.raises(ValueError, match="history_video_ids"):
        train_candidate_generator(examples.drop(columns=["history_video_ids"]), catalog, SMALL_CONFIG)
