"""Models fit on the simulator's true terms: does a model's form matter once its inputs are right?

The ceilings (ranking_ceiling.py) score rows by the behaviour model itself and fit nothing. The
two scorers here are *fit*, with the benchmark's objective (the watch-time-weighted log loss), on
the behaviour model's own inputs, which no benchmark model sees: each row's true affinity terms
(`taste`, `style`, `quality`; vidrec.simulator.affinity_terms_of_pairs) and its log duration.
- `LINEAR` ("LR fit on the true terms"): logistic regression, a linear function of the four.
- `BOOSTED` ("HGB fit on the true terms"): HistGradientBoosting on the same four, free to take
  any non-linear shape (the click's sigmoid times the watched fraction times the duration) the
  rows support.
The question they answer: the ranker (a network) and LR order long watches alike on simulated
data. Is that because no model form can beat a linear one on this behaviour model, or because
the ranker's inputs lack what it would need? If the boosted scorer orders a request no better than
the linear one given the true inputs, a non-linear model has nothing to win from its form here:
against LR it can win only through an input it learns and LR cannot use. If it orders better, the
form matters and the ranker leaves that on the table.

Like the ceilings they are not baselines and "beats" is never claimed against them; they are
printed by `bench/ranking_ceiling.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.simulator import affinity_terms_of_pairs

from ranking_models import normalised_watch_time_weights

LINEAR = "LR fit on the true terms"
BOOSTED = "HGB fit on the true terms"
TRUE_TERM_SCORERS = (LINEAR, BOOSTED)
TRUE_TERMS = ("taste", "style", "quality")


def true_term_design(frame: pd.DataFrame, ground_truth_dir: Path) -> np.ndarray:
    """(rows, 4): each row's true taste, style and quality terms and its log duration."""
    terms = affinity_terms_of_pairs(ground_truth_dir, frame["user_id"].to_numpy(), frame["video_id"].to_numpy())
    duration = frame["duration_seconds"].to_numpy(np.float64)
    if not np.all(np.isfinite(duration) & (duration > 0)):
        raise ValueError("the frame's duration_seconds must be positive everywhere to fit on the true terms")
    return np.column_stack([terms[name] for name in TRUE_TERMS] + [np.log(duration)])


def fit_on_true_terms(fit_rows: pd.DataFrame, rows: pd.DataFrame, ground_truth_dir: Path,
                      seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, list[np.ndarray]]:
    """Scorer name → one score array on `rows` per fit: LR once (lbfgs is deterministic), HGB
    once per seed (the seed draws its early-stopping tenth). Both fit on `fit_rows` only."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    labels, weights = normalised_watch_time_weights(fit_rows)  # as the benchmark's LR and HGB are fit
    fit_design, design = true_term_design(fit_rows, ground_truth_dir), true_term_design(rows, ground_truth_dir)
    # Four inputs against tens of thousands of rows: regularisation would only bias the fit.
    linear = LogisticRegression(C=1e4, max_iter=1000).fit(fit_design, labels, sample_weight=weights)
    boosted = []
    for seed in seeds:
        model = HistGradientBoostingClassifier(max_iter=300, early_stopping=True, validation_fraction=0.1,
                                               random_state=seed)
        boosted.append(model.fit(fit_design, labels, sample_weight=weights).decision_function(design))
    return {LINEAR: [linear.decision_function(design)], BOOSTED: boosted}
