"""The served recommender of the e2e pipeline run, and variants of it with other policies."""

from __future__ import annotations

import pandas as pd

from serving.policy import PolicyStage
from serving.recommender import Recommender


def known_users(serving) -> list[int]:
    """Users of the raw log the online store has features for (`serving`: the fixture's pair)."""
    runtime, recommender = serving
    users = pd.read_parquet(runtime.settings.raw_dir / "users", columns=["user_id"])["user_id"].tolist()
    return [user for user in users if recommender.features.user_features(user)]


def with_policy(recommender: Recommender, policy: PolicyStage, candidates_per_request: int | None = None,
                seed_share: float | None = None) -> Recommender:
    """The same models and features answering under another policy (and candidate count)."""
    return Recommender(
        recommender.models, recommender.features,
        recommender.candidates_per_request if candidates_per_request is None else candidates_per_request,
        recommender.request_clock, recommender.budgets, None, recommender.last_known_users, policy,
        recommender.seed_share if seed_share is None else seed_share,
    )
