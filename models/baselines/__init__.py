"""Retrieval methods under one small interface, so the evaluation protocol treats them alike.

`fit(train)` takes an interactions frame (user_id, video_id, time) and `recommend(user_ids, k,
exclude)` returns, per user, up to k video ids best first with nothing from `exclude[user]`.
The baselines (most-popular over a tunable recent window, item-kNN and EASE with a tunable
recency decay on the user's history, ALS, BPR, and the sequential SASRec) score only videos seen
in training; the candidate generator adapter scores the whole catalog.
"""

from models.baselines.base import Recommender
from models.baselines.ease import EASE
from models.baselines.factorization import ALS, BPR
from models.baselines.item_knn import ItemKNN
from models.baselines.popular import MostPopular
from models.baselines.sasrec import SASRec, SASRecConfig

__all__ = ["ALS", "BPR", "EASE", "ItemKNN", "MostPopular", "Recommender", "SASRec", "SASRecConfig"]
