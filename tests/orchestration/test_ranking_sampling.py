"""Which impressions the ranking frame keeps: every click and the whole holdout; a share of the rest."""

import numpy as np
import pandas as pd

from orchestration.assets.features import sample_ranking_examples


def _impressions(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(42)  # not the sampler's own seed
    return pd.DataFrame({
        "clicked": rng.random(rows) < 0.1,
        "split": np.where(np.arange(rows) < 0.7 * rows, "train", "holdout"),
    })


def test_clicks_and_the_holdout_are_kept_whole_and_train_negatives_are_sampled_with_weights():
    impressions = _impressions(20_000)

    sampled = sample_ranking_examples(impressions, negative_rate=0.2)

    train_negatives = sampled[(sampled["split"] == "train") & ~sampled["clicked"]]
    everything_else = sampled.drop(train_negatives.index)
    assert sampled["clicked"].sum() == impressions["clicked"].sum()
    assert (sampled["split"] == "holdout").sum() == (impressions["split"] == "holdout").sum()
    assert (everything_else["example_weight"] == 1.0).all()
    assert (train_negatives["example_weight"] == 5.0).all()
    full_log_negatives = ((impressions["split"] == "train") & ~impressions["clicked"]).sum()
    assert abs(train_negatives["example_weight"].sum() / full_log_negatives - 1) < 0.05


def test_sampling_is_seeded():
    impressions = _impressions(2_000)
    pd.testing.assert_frame_equal(sample_ranking_examples(impressions, 0.3), sample_ranking_examples(impressions, 0.3))
