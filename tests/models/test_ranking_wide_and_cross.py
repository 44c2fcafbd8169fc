"""The ranker's optional wide part (Wide & Deep) and DCN-v2 cross layers: what they compute, that
they train, and that bundles with and without them save and load."""

import json

import numpy as np
import pytest
import torch

from models.ranking.bundle import RankerBundle
from models.ranking.config import RankerConfig
from models.ranking.model import CrossNetwork, WideTower
from models.ranking.preprocessing import RankerInputs
from models.ranking.train import train_ranker
from tests.models.test_ranking_multitask import make_multitask_frame

CONFIG = RankerConfig(
    categorical_features=["surface", "country"], numeric_features=["quality", "noise"],
    category_min_count=1, hidden_widths=(16,), epochs=3, batch_size=512, learning_rate=5e-3,
    show_progress=False, seed=0,
)


@pytest.fixture(scope="module")
def frame():
    return make_multitask_frame(8_000, seed=3)


def test_cross_layers_start_as_the_identity_and_multiply_by_the_input():
    network = CrossNetwork(width=3, num_layers=1)
    inputs = torch.tensor([[1.0, 2.0, -1.0]])
    assert torch.equal(network(inputs), inputs)
    with torch.no_grad():
        network.layers[0].weight.copy_(torch.eye(3))
        network.layers[0].bias.fill_(1.0)
    # x₀ ⊙ (W x₀ + b) + x₀ with W = I, b = 1: x² + x + x
    assert torch.allclose(network(inputs), torch.tensor([[3.0, 8.0, -1.0]]))


def test_the_wide_part_sums_a_weight_per_value_a_linear_numeric_term_and_the_bag_mean():
    wide = WideTower(categorical_sizes=[3, 4], numeric_width=2, bag_sizes=[5], num_heads=2)
    assert torch.equal(wide(RankerInputs(torch.tensor([[1, 2]]), torch.tensor([[0.5, 1.0]]),
                                         torch.tensor([[[0, 1, 3]]]))), torch.zeros(1, 2))
    with torch.no_grad():
        wide.categorical[0].weight[1] = torch.tensor([1.0, 0.0])
        wide.categorical[1].weight[2] = torch.tensor([0.0, 2.0])
        wide.numeric.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, -1.0]]))
        wide.bags[0].weight[1] = torch.tensor([4.0, 0.0])
        wide.bags[0].weight[3] = torch.tensor([0.0, 6.0])
    inputs = RankerInputs(torch.tensor([[1, 2]]), torch.tensor([[0.5, 1.0]]), torch.tensor([[[0, 1, 3]]]))
    # head 0: 1 + 0 + 2·0.5 + (4 + 0) / 2 known ids;  head 1: 0 + 2 − 1 + (0 + 6) / 2
    assert torch.allclose(wide(inputs), torch.tensor([[4.0, 4.0]]))


@pytest.mark.parametrize("changes", [{"wide": True}, {"cross_layers": 2}, {"wide": True, "cross_layers": 1,
                                                                          "dropout": 0.2}])
def test_a_ranker_with_wide_or_cross_parts_learns_and_round_trips(frame, changes, tmp_path):
    bundle = train_ranker(frame, RankerConfig(**{**CONFIG.__dict__, **changes}))
    assert bundle.metrics["holdout_auc_watch_weighted"] > 0.6
    bundle.save(tmp_path)
    loaded = RankerBundle.load(tmp_path)
    assert (loaded.model.wide is not None) == bundle.config.wide
    assert np.allclose(loaded.score(frame), bundle.score(frame))


def test_a_bundle_saved_before_these_options_existed_loads_without_them(frame, tmp_path):
    bundle = train_ranker(frame, CONFIG)
    bundle.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for name in ("wide", "cross_layers", "dropout"):
        del config[name]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = RankerBundle.load(tmp_path)
    assert loaded.model.wide is None and loaded.model.cross is None
    assert np.allclose(loaded.score(frame), bundle.score(frame))


@pytest.mark.parametrize(("changes", "message"),
                         [({"cross_layers": -1}, "cross_layers"), ({"dropout": 1.0}, "dropout")])
def test_impossible_shapes_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        RankerConfig(**{**CONFIG.__dict__, **changes})
