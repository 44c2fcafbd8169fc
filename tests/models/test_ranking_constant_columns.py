"""A request's user features arrive as stride-0 views; the preprocessor must read them exactly as
materialised columns (it transforms them once instead of once per candidate)."""

import numpy as np
import pandas as pd
import torch

from models.ranking.config import RankerConfig
from models.ranking.preprocessing import FeaturePreprocessor, constant_column


def test_constant_columns_transform_exactly_as_materialised_ones():
    rng = np.random.default_rng(0)
    training = pd.DataFrame({
        "country": rng.choice(["US", "IN", "BR"], 400),
        "video_id": rng.integers(0, 30, 400),
        "watch_count_28d": rng.poisson(4, 400).astype(float),
        "duration_seconds": rng.uniform(10, 900, 400),
    })
    config = RankerConfig(categorical_features=["country", "video_id"],
                          numeric_features=["watch_count_28d", "duration_seconds"], category_min_count=1)
    preprocessor = FeaturePreprocessor.fit(training, config)
    size = 50
    candidates = {"video_id": rng.integers(0, 40, size), "duration_seconds": rng.uniform(10, 900, size)}
    for user_count in (3.0, np.nan):
        views = {**candidates, "country": constant_column("IN", size),
                 "watch_count_28d": np.broadcast_to(np.array([user_count]), (size,))}
        copies = {**candidates, "country": np.array(["IN"] * size, dtype=object),
                  "watch_count_28d": np.full(size, user_count)}

        by_view, by_copy = preprocessor.transform(views), preprocessor.transform(copies)

        assert torch.equal(by_view.categorical, by_copy.categorical)
        assert torch.equal(by_view.numeric, by_copy.numeric)
