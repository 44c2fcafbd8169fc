"""ranking_report's calibration keys and the per-user components the bench bootstraps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.ranking.config import RankerConfig
from models.ranking.evaluate import base_rates, ranking_report, user_components


def _holdout(rng: np.random.Generator, users: int = 30, requests_per_user: int = 3, slate: int = 6) -> pd.DataFrame:
    rows = users * requests_per_user * slate
    clicked = rng.random(rows) < 0.25
    return pd.DataFrame({
        "user_id": np.repeat(np.arange(users), requests_per_user * slate),
        "request_id": np.repeat([f"r{index}" for index in range(users * requests_per_user)], slate),
        "clicked": clicked,
        "watch_seconds": np.where(clicked, rng.uniform(5, 300, rows), 0.0),
        "liked": clicked & (rng.random(rows) < 0.2),
        "duration_seconds": rng.uniform(60, 600, rows),
        "example_weight": np.where(clicked, 1.0, rng.choice([1.0, 4.0], rows)),
    }).sample(frac=1.0, random_state=0)  # rows of one user are not contiguous


def test_user_components_recombine_to_the_reports_gauc_and_pairwise_loss():
    rng = np.random.default_rng(0)
    frame = _holdout(rng)
    score = frame["clicked"].to_numpy() + rng.normal(0, 1.0, len(frame))
    report = ranking_report(frame, score)
    components = user_components(frame, score)
    assert list(components.index) == list(pd.unique(frame["user_id"]))
    assert components["gauc_numerator"].sum() / components["gauc_weight"].sum() == pytest.approx(report["gauc_clicked"])
    assert components["pairwise_wrong_weight"].sum() / components["pairwise_pair_weight"].sum() == pytest.approx(
        report["pairwise_loss_watch_weighted"])
    assert (components["gauc_weight"] >= 0).all() and (components["pairwise_pair_weight"] >= 0).all()


def test_report_keeps_its_keys_and_sets_ece_beside_base_rate_and_a_constant_predictor():
    rng = np.random.default_rng(1)
    frame = _holdout(rng)
    labels = frame["liked"].to_numpy(float)
    probabilities = {"like": (labels, np.full(len(frame), 0.1))}
    report = ranking_report(frame, rng.normal(size=len(frame)), probabilities, constant_rates={"like": 0.08})
    for key in ("rows", "auc_clicked", "gauc_clicked", "auc_watch_weighted", "pairwise_loss_watch_weighted",
                "ndcg_at_10_watch_seconds", "auc_like", "log_loss_like", "ece_like"):
        assert key in report
    weights = frame["example_weight"].to_numpy()
    base_rate = (labels * weights).sum() / weights.sum()
    assert report["base_rate_like"] == pytest.approx(base_rate)
    assert report["ece_like"] == pytest.approx(abs(0.1 - base_rate))
    assert report["ece_constant_like"] == pytest.approx(abs(0.08 - base_rate))
    assert report["calibration_in_the_large_like"] == pytest.approx(abs(0.1 - base_rate))
    assert report["positives_like"] == labels.sum() < 200
    assert report["ece_counts_toward_bar_like"] == 0.0


def test_base_rates_are_weighted_means_of_the_probability_heads():
    frame = pd.DataFrame({"clicked": [True, False, False], "watch_seconds": [100.0, 0.0, 0.0],
                          "liked": [True, False, False], "duration_seconds": [200.0] * 3,
                          "example_weight": [1.0, 2.0, 1.0]})
    rates = base_rates(frame, RankerConfig())
    assert rates == pytest.approx({"click": 0.25, "like": 0.25, "skip": 0.0})
