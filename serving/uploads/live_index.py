"""A model set with uploaded videos added to its index, embedded by its own video tower.

The candidate generator's video tower builds a vector from the video id's embedding plus its
creator, category and title tokens (models/retrieval/model.py). An id it never saw in training
maps to row 0, a zero embedding, so an upload's vector comes from its content alone, and lands
near the videos that share its creator, category and words. The index holds exactly what the
video_index asset put in it: `RetrievalBundle.video_embeddings`, the same function on the new
rows, so an upload's scores compare with every other video's. (The optional freshness logit is
not folded into the served index, for the catalog or for uploads: there is no coordinate to
fill at an upload time.)

The set that serves is never written: the grown index is a copy (`VideoIndex.with_videos`), in
a new `ServingModels`, which the champion watcher swaps in whole (serving.hot_reload).
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from models.retrieval.features import CATALOG_COLUMNS
from serving.recommender import ServingModels


def lacking(models: ServingModels, catalog: pd.DataFrame) -> pd.DataFrame:
    """The rows of `catalog` whose videos the set's index does not hold."""
    return catalog[~models.index.holds(catalog["video_id"].to_numpy())]


def with_uploads(models: ServingModels, catalog: pd.DataFrame) -> ServingModels:
    """`models` with every video of `catalog` (VIDEOS rows) its index lacks embedded and added to a
    copy of the index; `models` itself when the index holds them all."""
    new = lacking(models, catalog)
    if new.empty:
        return models
    video_ids, vectors = models.retrieval.video_embeddings(new[list(CATALOG_COLUMNS)])
    return dataclasses.replace(models, index=models.index.with_videos(video_ids, vectors),
                               versions=dict(models.versions))
