"""The candidate generator serves an exponential moving average of its weights (Polyak averaging)."""

import pytest
import torch

from models.retrieval.config import RetrievalConfig
from models.retrieval.train import WeightAverage


def test_the_average_follows_the_weights_with_a_lag_and_forgets_the_untrained_start():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.9)
    for step in range(1, 201):
        with torch.no_grad():
            model.weight.fill_(float(step))  # weights that keep moving, one unit a step
        average.update(model)
    averaged = average.model.weight.item()
    # An average of the recent steps: behind the last weights by about decay / (1 - decay) = 9 steps,
    # and nowhere near the start, which the warm-up's small early decays let it forget.
    assert 200 - 10 < averaged < 200 - 8
    assert model.weight.item() == 200.0  # the training model itself is left alone


def test_the_average_starts_as_a_copy_that_training_does_not_touch():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.99)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(average.model.weight, model.weight)


def test_the_trained_bundle_serves_the_averaged_weights_not_the_last_ones(retrieval_data):
    from models.retrieval.train import train_candidate_generator

    examples, catalog = retrieval_data
    config = RetrievalConfig(
        embedding_dim=16, tower_widths=(32, 16), item_tower_widths=(16,), epochs=2, batch_size=256,
        num_uniform_negatives=32, show_progress=False, seed=0,
    )
    averaged = train_candidate_generator(examples, catalog, config)  # same seed, so the same training path
    last = train_candidate_generator(examples, catalog, RetrievalConfig(**{**vars(config), "weight_ema_decay": 0.0}))
    queries = examples[examples["split"] == "holdout"].head(5)
    assert not torch.allclose(
        torch.from_numpy(averaged.user_embeddings(queries)), torch.from_numpy(last.user_embeddings(queries))
    )


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_config_rejects_a_decay_outside_zero_to_one(decay):
    with pytest.raises(ValueError, match="weight_ema_decay"):
        RetrievalConfig(weight_ema_decay=decay)
