"""The ranker's optional in-request listwise term: its value on a case worked by hand, batches that
keep every request whole, and a ranker that trains with it and still round-trips."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.listwise import listwise_loss, listwise_targets, request_batches, request_codes
from models.ranking.train import train_ranker
from tests.models.test_ranking_multitask import make_multitask_frame

CONFIG = RankerConfig(
    categorical_features=["surface", "country"], numeric_features=["quality", "noise"],
    category_min_count=1, hidden_widths=(16,), epochs=3, batch_size=512, learning_rate=5e-3,
    show_progress=False, seed=0,
)


def test_the_loss_is_the_watch_weighted_softmax_cross_entropy_within_each_request():
    logits = torch.tensor([1.0, 0.0, 2.0, 0.5, -1.0])
    codes = torch.tensor([7, 7, 3, 3, 3])  # two requests, codes in any order
    relevance = torch.tensor([30.0, 0.0, 0.0, 10.0, 0.0])  # 30 s watched in request 7, 10 s in request 3
    log_weight = torch.log(torch.tensor([1.0, 4.0, 1.0, 1.0, 4.0]))  # down-sampled non-clicks count 4 times
    # request 7: softmax over {1, 0 + log 4}; request 3: over {2, 0.5, −1 + log 4}
    log_p_first = 1.0 - math.log(math.exp(1.0) + 4 * math.exp(0.0))
    log_p_fourth = 0.5 - math.log(math.exp(2.0) + math.exp(0.5) + 4 * math.exp(-1.0))
    expected = -(30 * log_p_first + 10 * log_p_fourth) / 40
    assert listwise_loss(logits, codes, relevance, log_weight).item() == pytest.approx(expected, rel=1e-6)


def test_a_batch_where_nothing_was_watched_adds_nothing_but_keeps_its_gradient_graph():
    logits = torch.tensor([1.0, -1.0], requires_grad=True)
    loss = listwise_loss(logits, torch.tensor([0, 0]), torch.zeros(2), torch.zeros(2))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(2))


def test_batches_hold_whole_requests_every_row_once_and_near_the_batch_size():
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(400), rng.integers(1, 9, 400))
    rng.shuffle(codes)
    batches = request_batches(codes, batch_size=64, generator=torch.Generator().manual_seed(1))
    rows = np.concatenate(batches)
    assert sorted(rows) == list(range(len(codes)))
    batch_of_row = np.empty(len(codes), dtype=int)
    for index, batch in enumerate(batches):
        batch_of_row[batch] = index
    assert all(len(set(batch_of_row[codes == code])) == 1 for code in range(400))
    assert all(len(batch) < 64 + 8 for batch in batches)
    again = request_batches(codes, batch_size=64, generator=torch.Generator().manual_seed(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_targets_are_watch_seconds_of_clicks_and_the_log_of_the_sampling_weight():
    frame = pd.DataFrame({"clicked": [True, False, True], "watch_seconds": [40.0, 5.0, None],
                          "example_weight": [1.0, 10.0, 1.0], "request_id": ["a", "a", "b"]})
    relevance, log_weight = listwise_targets(frame)
    assert relevance.tolist() == [40.0, 0.0, 0.0]
    assert np.allclose(log_weight, np.log([1.0, 10.0, 1.0]))
    assert request_codes(frame).tolist() == [0, 0, 1]


def test_a_frame_without_request_or_user_keys_is_refused_by_name():
    with pytest.raises(ValueError, match="request_id or user_id"):
        request_codes(pd.DataFrame({"clicked": [True], "watch_seconds": [1.0]}))


def test_a_negative_listwise_weight_is_refused():
    with pytest.raises(ValueError, match="listwise_weight"):
        RankerConfig(listwise_weight=-1.0)


def test_a_ranker_trained_with_the_listwise_term_learns_and_round_trips(tmp_path):
    frame = make_multitask_frame(8_000, seed=3)
    bundle = train_ranker(frame, RankerConfig(**{**CONFIG.__dict__, "listwise_weight": 1.0}))
    assert bundle.metrics["holdout_auc_watch_weighted"] > 0.6
    assert bundle.metrics["holdout_pairwise_loss_watch_weighted"] < 0.45  # random order: 0.5
    assert np.isfinite(bundle.metrics["train_loss"])
    bundle.save(tmp_path)
    loaded = RankerBundle.load(tmp_path)
    assert loaded.config.listwise_weight == 1.0
    assert np.allclose(loaded.score(frame), bundle.score(frame))
