"""The models the ranking benchmark compares, each a `ModelSpec` with a fitter: our ranker
(shared-bottom and MMoE), logistic regression and HistGradientBoosting, their search spaces, and
the validation metrics every one of them can be tuned by (one per run, the same for all).
Popularity is named here but needs no fit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.evaluation.ranking_metrics import log_loss
from models.evaluation.tuning import FloatRange, IntRange, SearchSpace
from models.ranking.config import PROBABILITY_HEADS, RankerConfig
from models.ranking.evaluate import ranking_report
from models.ranking.labels import head_labels, watch_time_labels
from models.ranking.preprocessing import FeaturePreprocessor
from models.ranking.train import train_ranker

Scorer = Callable[[pd.DataFrame], np.ndarray]  # frame → one value per row

OURS = "ranker"


# Starting ranges, the same kind of search for every model. A hard limit is an edge the search
# never widens past. Ours: how it trains, epochs × weight decay × learning rate (without decay the
# id embeddings overfit within a few epochs), and its shape, dropout × DCN-v2 cross layers (chosen
# on validation by bench/ranking_variants.py: with the shape fixed the ranker ranked below HGB
# there; docs/benchmarks.md). HGB's search likewise covers its shape (leaves, leaf size).
RANKER_TRAINING_SPACE: SearchSpace = {
    "epochs": IntRange(4, 48, hard_low=1, hard_high=200),
    "weight_decay": FloatRange(1e-5, 1e-2, log=True),
    "learning_rate": FloatRange(5e-4, 1e-2, log=True, hard_high=0.1),
}
RANKER_SHAPE_SPACE: SearchSpace = {
    "dropout": FloatRange(0.0, 0.5, hard_low=0.0, hard_high=0.9),
    "cross_layers": IntRange(0, 3, hard_low=0, hard_high=6),
}
# The weight of the in-request listwise term (models/ranking/listwise.py); 0 is the pointwise ranker.
RANKER_LISTWISE_SPACE: SearchSpace = {
    "listwise_weight": FloatRange(0.0, 4.0, hard_low=0.0, hard_high=50.0),
}
SEARCH_SPACES: dict[str, SearchSpace] = {
    OURS: {**RANKER_TRAINING_SPACE, **RANKER_SHAPE_SPACE},
    "logistic regression": {"inverse_regularization": FloatRange(1e-3, 1e2, log=True)},
    "HistGradientBoosting": {"learning_rate": FloatRange(0.02, 0.3, log=True, hard_high=1.0),
                             "max_leaf_nodes": IntRange(7, 127, log=True, hard_low=2, hard_high=1024),
                             "l2_regularization": FloatRange(1e-4, 10.0, log=True),
                             "min_samples_leaf": IntRange(5, 200, log=True, hard_low=1)},
}
SEARCH_SPACES["ranker MMoE"] = SEARCH_SPACES[OURS]


@dataclass
class Fitted:
    """A fitted model: watch-time log-odds (what tuning scores), the score that ranks a slate,
    and, for ours, the calibrated probabilistic heads."""

    logits: Scorer
    final_score: Scorer
    probabilities: Callable[[pd.DataFrame], dict[str, tuple[np.ndarray, np.ndarray]]] | None = None
    bundle: object | None = None


def _design(preprocessor: FeaturePreprocessor, frame: pd.DataFrame):
    inputs = preprocessor.transform(frame)
    return inputs.categorical.numpy(), inputs.numeric.numpy()


def _bag_matrices(preprocessor: FeaturePreprocessor, frame: pd.DataFrame) -> list:
    """Per bag feature, a row-normalised multi-hot matrix over its vocabulary: LR's view of the
    bag the ranker averages embeddings of (known ids only, as the ranker sees them)."""
    from scipy import sparse

    bags = preprocessor.transform(frame).bags
    if bags is None:
        return []
    matrices = []
    for column, size in enumerate(preprocessor.bag_vocabulary_sizes.values()):
        ids = bags[:, column].numpy()
        rows, positions = np.nonzero(ids)
        counts = np.maximum((ids > 0).sum(axis=1), 1)
        matrices.append(sparse.csr_matrix((1.0 / counts[rows], (rows, ids[rows, positions])), shape=(len(frame), size)))
    return matrices


def normalised_watch_time_weights(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(clicked 0/1 ints, watch-time weights scaled to mean 1): what LR and HGB are fit with."""
    labels, weights = watch_time_labels(frame)
    return labels.astype(int), weights / weights.mean()


def fit_logistic_regression(fit_rows: pd.DataFrame, config: RankerConfig, params: dict, seed: int) -> Fitted:
    """Watch-time-weighted LR (lbfgs: deterministic, `seed` unused); scores are log-odds."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    preprocessor = FeaturePreprocessor.fit(fit_rows, config)
    sizes = np.array(list(preprocessor.vocabulary_sizes.values()))
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def matrix(frame):
        categorical, numeric = _design(preprocessor, frame)
        rows = np.repeat(np.arange(len(frame)), categorical.shape[1])
        one_hot = sparse.csr_matrix((np.ones(rows.size), (rows, (categorical + offsets).ravel())),
                                    shape=(len(frame), int(sizes.sum())))
        return sparse.hstack([one_hot, sparse.csr_matrix(numeric), *_bag_matrices(preprocessor, frame)]).tocsr()

    labels, weights = normalised_watch_time_weights(fit_rows)
    model = LogisticRegression(C=params["inverse_regularization"], max_iter=2000)
    model.fit(matrix(fit_rows), labels, sample_weight=weights)
    def scorer(frame):
        return model.decision_function(matrix(frame))

    return Fitted(logits=scorer, final_score=scorer)


def fit_gradient_boosting(fit_rows: pd.DataFrame, config: RankerConfig, params: dict, seed: int) -> Fitted:
    """Watch-time-weighted HistGradientBoosting with early stopping on a random tenth of the fit
    rows (`seed` draws it); scores are log-odds."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    preprocessor = FeaturePreprocessor.fit(fit_rows, config)
    is_categorical = [size <= 255 for size in preprocessor.vocabulary_sizes.values()]

    def matrix(frame):
        categorical, numeric = _design(preprocessor, frame)
        return np.hstack([categorical, numeric[:, 0::4], numeric[:, 3::4]])

    labels, weights = normalised_watch_time_weights(fit_rows)
    mask = is_categorical + [False] * (2 * len(preprocessor.numeric))
    model = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=params["learning_rate"], max_leaf_nodes=int(params["max_leaf_nodes"]),
        l2_regularization=params["l2_regularization"], min_samples_leaf=int(params["min_samples_leaf"]),
        categorical_features=np.array(mask), early_stopping=True, validation_fraction=0.1, random_state=seed)
    model.fit(matrix(fit_rows), labels, sample_weight=weights)
    def scorer(frame):
        return model.decision_function(matrix(frame))

    return Fitted(logits=scorer, final_score=scorer)


def ranker_fitter(architecture: str):
    def fit_ranker(train_rows: pd.DataFrame, config: RankerConfig, params: dict, seed: int) -> Fitted:
        """Ours, on the train split: it cuts the same fit / validation rows itself (the same
        split_calibration_rows) and calibrates its heads on validation. Scores the product score."""
        bundle = train_ranker(train_rows, replace(config, architecture=architecture, seed=seed, **params))

        def probabilities(frame):
            values = bundle.head_values(frame)
            labels = head_labels(frame, bundle.config)
            return {head: (labels[head][0], values[head])
                    for head in bundle.model.head_names if head in PROBABILITY_HEADS}

        return Fitted(logits=bundle.logits, final_score=bundle.score, probabilities=probabilities, bundle=bundle)

    return fit_ranker


@dataclass(frozen=True)
class ModelSpec:
    name: str
    fit: Callable[[pd.DataFrame, RankerConfig, dict, int], Fitted]
    stochastic: bool
    fits_on_train_split: bool = False  # ours: gets the whole train split and cuts validation itself


MODELS = {
    OURS: ModelSpec(OURS, ranker_fitter("shared_bottom"), stochastic=True, fits_on_train_split=True),
    "ranker MMoE": ModelSpec("ranker MMoE", ranker_fitter("mmoe"), stochastic=True, fits_on_train_split=True),
    "logistic regression": ModelSpec("logistic regression", fit_logistic_regression, stochastic=False),
    "HistGradientBoosting": ModelSpec("HistGradientBoosting", fit_gradient_boosting, stochastic=True),
}
POPULARITY = "popularity (train clickers)"
DEFAULT_MODELS = (OURS, "logistic regression", "HistGradientBoosting", POPULARITY)


def validation_loss(frame: pd.DataFrame, logits: np.ndarray) -> float:
    """The watch-time-weighted log loss (every model's training objective) on `frame`: the
    default selection metric, for our ranker and the baselines alike."""
    clicked, weights = watch_time_labels(frame)
    return log_loss(clicked, 1.0 / (1.0 + np.exp(-logits)), sample_weight=weights)


@dataclass(frozen=True)
class SelectionMetric:
    """What the shared search ranks a trial by on the validation rows: `value(rows, fitted)`,
    better when lower (`direction` "minimize") or higher ("maximize")."""

    direction: str
    value: Callable[[pd.DataFrame, Fitted], float]


def _final_score_metric(key: str) -> Callable[[pd.DataFrame, Fitted], float]:
    """A key of `ranking_report` on the final score: the number the holdout tables report. NaN
    when a score is not finite (a diverged fit), which the ranking metrics would read as ties."""

    def value(rows: pd.DataFrame, fitted: Fitted) -> float:
        scores = fitted.final_score(rows)
        return ranking_report(rows, scores)[key] if np.isfinite(scores).all() else float("nan")

    return value


# One metric per run, the same for every model (equal tuning). log_loss scores the watch-time
# log-odds (every model's training objective); the ranking metrics score the final score a slate
# is ranked by, so for our ranker they include its heads calibrated on these same rows.
SELECTION_METRICS: dict[str, SelectionMetric] = {
    "log_loss": SelectionMetric("minimize", lambda rows, fitted: validation_loss(rows, fitted.logits(rows))),
    "gauc": SelectionMetric("maximize", _final_score_metric("gauc_clicked")),
    "pairwise_loss": SelectionMetric("minimize", _final_score_metric("pairwise_loss_watch_weighted")),
}
DEFAULT_SELECTION = "log_loss"
