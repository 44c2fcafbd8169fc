"""A warm start carries what the champion learned into a model whose vocabularies were rebuilt on
new data: every id keeps its vector whatever its new row, new ids start fresh, and a champion of
another architecture is refused rather than half copied."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from models.ranking.config import RankerConfig
from models.ranking.train import train_ranker
from models.retrieval.config import RetrievalConfig
from models.retrieval.train import train_candidate_generator
from models.retrieval.vocabulary import Vocabulary
from models.warm_start import NO_ROW, WarmStartMismatch, transfer_parameters, vocabulary_rows
from orchestration.warm_starts import StartingPoint, train_from

# Learning rates too small to move a weight: whatever the warm-started model scores, it scores
# with the weights it started from.
FROZEN = 1e-12


def test_rows_follow_tokens_and_new_tokens_get_no_old_row():
    old = Vocabulary([10, 20, 30])
    new = Vocabulary([30, 40, 10])  # 20 dropped out, 40 is new, the order changed
    assert vocabulary_rows(new, old).tolist() == [NO_ROW, 3, NO_ROW, 1]


def test_embedding_rows_move_with_their_tokens_and_new_rows_keep_their_initialisation():
    old_vocabulary, new_vocabulary = Vocabulary(["a", "b", "c"]), Vocabulary(["c", "d", "a"])
    champion, model = nn.Embedding(4, 2, padding_idx=0), nn.Embedding(4, 2, padding_idx=0)
    initial = model.weight.detach().clone()
    report = transfer_parameters(model, champion, {"weight": vocabulary_rows(new_vocabulary, old_vocabulary)})
    assert torch.equal(model.weight[1], champion.weight[3])  # "c"
    assert torch.equal(model.weight[3], champion.weight[1])  # "a"
    assert torch.equal(model.weight[2], initial[2])  # "d": the champion never saw it
    assert torch.equal(model.weight[0], initial[0])  # unknown/padding stays
    assert (report.carried_rows, report.new_rows) == (2, 1)


def test_a_parameter_of_another_shape_is_refused_and_nothing_is_copied():
    champion = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = [parameter.detach().clone() for parameter in model.parameters()]
    with pytest.raises(WarmStartMismatch, match=r"parameter '1.weight'"):
        transfer_parameters(model, champion, {})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# --- the ranker ------------------------------------------------------------------------------

RANKER = RankerConfig(
    categorical_features=["surface", "video_id"], numeric_features=[], category_min_count=1,
    embedding_dim=8, embedding_dims={}, hidden_widths=(16,), heads=("watch_time", "click"),
    score_weights={"watch_time": 1.0}, position_column=None, epochs=3,
    warm_start_epochs=2, batch_size=256, show_progress=False, seed=3,
)


def _ranking_rows(video_ids: np.ndarray, rng: np.random.Generator, watch_scale: float) -> pd.DataFrame:
    rows = len(video_ids)
    clicked = rng.random(rows) < 0.2 + 0.3 * (video_ids % 3 == 0)
    return pd.DataFrame({
        "surface": rng.choice(["home", "watch_next"], rows),
        "video_id": video_ids,
        "clicked": clicked,
        "watch_seconds": np.where(clicked, watch_scale * rng.exponential(1.0, rows), 0.0),
        "event_timestamp": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(rows), unit="min"),
        "split": np.where(np.arange(rows) < rows * 0.9, "train", "holdout"),
    })


@pytest.fixture(scope="module")
def ranker_champion_and_next_day():
    rng = np.random.default_rng(4)
    yesterday = _ranking_rows(rng.integers(1, 40, 4000), rng, watch_scale=60.0)
    champion = train_ranker(yesterday, RANKER)
    # Today: other videos are the popular ones (the vocabulary's order changes), a few are new
    # (ids 100-104), and watches run longer (the watch_time head's conditioning scale changes).
    today_ids = rng.permutation(np.concatenate([rng.integers(30, 40, 3000), rng.integers(1, 40, 1500),
                                               rng.integers(100, 105, 500)]))
    today = _ranking_rows(today_ids, rng, watch_scale=300.0)
    return champion, yesterday, today


def test_a_warm_started_ranker_scores_known_videos_as_its_champion_did(ranker_champion_and_next_day):
    champion, yesterday, today = ranker_champion_and_next_day
    warm = train_ranker(today, replace(RANKER, learning_rate=FROZEN), warm_start=champion)
    order_now, order_then = (bundle.preprocessor.categorical["video_id"].tokens for bundle in (warm, champion))
    assert order_now[:3] != order_then[:3]
    known = yesterday[yesterday["split"] == "train"]
    np.testing.assert_allclose(warm.logits(known), champion.logits(known), rtol=1e-4, atol=1e-4)
    assert warm.metrics["warm_started"] == 1.0
    assert warm.metrics["warm_start_new_rows"] == 5  # videos 100-104


def test_a_warm_start_trains_its_own_epochs_and_learns_the_new_day(ranker_champion_and_next_day):
    champion, _, today = ranker_champion_and_next_day
    warm = train_ranker(today, RANKER, warm_start=champion)
    assert warm.metrics["epochs_run"] == RANKER.warm_start_epochs
    new_videos = today[today["video_id"] >= 100].head(50)
    assert not np.allclose(warm.logits(new_videos), champion.logits(new_videos))


def test_a_champion_of_another_architecture_is_trained_over_from_scratch_and_says_why(ranker_champion_and_next_day):
    champion, _, today = ranker_champion_and_next_day
    wider = replace(RANKER, hidden_widths=(32,))
    with pytest.raises(WarmStartMismatch):
        train_ranker(today, wider, warm_start=champion)
    bundle, started_from = train_from(StartingPoint(champion, "champion v7"),
                                      lambda start: train_ranker(today, wider, warm_start=start))
    assert bundle.metrics["epochs_run"] == wider.epochs and "warm_started" not in bundle.metrics
    assert started_from.startswith("trained from scratch: the champion v7 does not fit")


# --- the candidate generator -----------------------------------------------------------------

def test_a_warm_started_candidate_generator_embeds_known_videos_and_users_as_its_champion_did(retrieval_data):
    examples, catalog = retrieval_data
    config = RetrievalConfig(embedding_dim=16, tower_widths=(32, 16), item_tower_widths=(32, 16), epochs=1,
                             show_progress=False, seed=1, max_eval_examples=200)
    champion = train_candidate_generator(examples, catalog, config)
    # a later window: the first 60 users' rows gone, so the videos' watch counts and order change
    later = examples[examples["user_id"] >= 60]
    frozen = replace(config, learning_rate=FROZEN, age_logit_learning_rate=FROZEN, weight_ema_decay=0.0)
    warm = train_candidate_generator(later, catalog, frozen, warm_start=champion)
    assert warm.vocabularies["video"].tokens != champion.vocabularies["video"].tokens
    assert warm.metrics["warm_started"] == 1.0 and warm.config.epochs == config.warm_start_epochs
    both = [video for video in catalog["video_id"]
            if video in warm.vocabularies["video"] and video in champion.vocabularies["video"]]
    warm_ids, warm_vectors = warm.video_embeddings()
    champion_ids, champion_vectors = champion.video_embeddings()
    warm_rows = pd.Series(np.arange(len(warm_ids)), index=warm_ids)[both]
    champion_rows = pd.Series(np.arange(len(champion_ids)), index=champion_ids)[both]
    np.testing.assert_allclose(warm_vectors[warm_rows], champion_vectors[champion_rows], rtol=1e-4, atol=1e-5)
    queries = later[later["split"] == "holdout"].head(20)
    np.testing.assert_allclose(warm.user_embeddings(queries), champion.user_embeddings(queries), rtol=1e-4, atol=1e-5)
