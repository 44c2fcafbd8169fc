"""Ranker benchmark: our multi-task ranker vs logistic regression, HistGradientBoosting and a
popularity scorer on any dataset the pipeline has run over, with tuning of equal effort, several
seeds, user-level bootstrap intervals and calibration read against base rates.

Commands (each dataset in its own VIDREC_HOME; `vidrec pipeline` builds the ranking frame there):

    # simulated data
    VIDREC_HOME=/tmp/sim .venv/bin/vidrec simulate
    VIDREC_HOME=/tmp/sim .venv/bin/vidrec pipeline
    .venv/bin/python bench/ranking.py --home /tmp/sim --dataset simulated
    # MovieLens 100k (or any raw-log directory `vidrec import ...` writes)
    VIDREC_HOME=/tmp/ml100k .venv/bin/vidrec import movielens /work/shared/data/ml-100k
    VIDREC_HOME=/tmp/ml100k .venv/bin/vidrec pipeline
    .venv/bin/python bench/ranking.py --home /tmp/ml100k --dataset ml-100k
    # a quick smoke run
    .venv/bin/python bench/ranking.py --home /tmp/sim --trials 3 --seeds 2 --no-mlflow

`--home` defaults to VIDREC_HOME; `--dataset` is only the label results are logged under.

Data. The pipeline's ranking frame (`<home>/artifacts/ranking_training_frame.parquet`: every
click, the whole holdout and a weighted sample of the other non-clicks, features joined through
Feast's `ranker_features` service as of each impression's request start). Rows `split == 'train'`
are cut by time: the last 10 % are the validation rows (our ranker calibrates on them; no model
fits on them), the rest the fit rows. Every model fits on the fit rows with the same
watch-time-weighted objective (positives weigh their watch seconds), is tuned on validation, and
is scored on `split == 'holdout'` (the pipeline's temporal holdout).

What each model sees (`ranker_inputs` of the feature service, plus `TRAIN_CLICK_FEATURES`):
- the ranker: every categorical (embedded; the candidate's id and the last watched video share a
  table), every numeric (quantile-normalised), the recent-watch bag (averaged embeddings and
  their dot product with the candidate's), and the train-click features;
- logistic regression: the categoricals one-hot, the same normalised numerics, each bag as a
  normalised multi-hot, and the train-click features;
- HistGradientBoosting: the categoricals as vocabulary codes (native splits up to 255 values),
  the numerics' CDF and missing flag, and the train-click features; no bag (a tree has no use
  for a set of ids: `history_cowatch_*` is its summary of the bag against the candidate);
- popularity: `candidate_train_clickers` alone.
The train-click features (`train_click_features`) come from the frame's train-split clicks
only, and a click counts only for rows on days after it settled (its request start + 1 hour):
how many users clicked the candidate, and how often the candidate was clicked by users who
clicked the videos in this user's recent-watch bag (count, and share).

Tuning. Every tuned model gets the same Optuna search (TPE, seeded): `--trials` trials on the
validation loss (the watch-time-weighted log loss of the watch-time log-odds), each trial fit with
seed 0. When the best point lies in the outer tenth of a range whose edge is not a hard limit,
that edge is widened by half the range and `--trials` more trials run (earlier trials are kept),
at most `--max-widenings` times per model: the tuning table says which edges moved.

Seeds and intervals. The chosen configuration of every stochastic model (ranker, HGB) is fit
with `--seeds` seeds and scores the holdout once per seed; LR (lbfgs) and popularity are
deterministic and run once. GAUC and the pairwise loss are ratios of per-user sums
(models/ranking/evaluate.py::user_components); each user's numerator is averaged over seeds
(denominators do not depend on the model), so the point estimate is the mean over seeds of the
per-seed metric and the interval is for the seed-averaged model. Users are resampled
(`--resamples`, percentile 95 % intervals, models/evaluation/bootstrap.py); every comparison
with our ranker is paired (the same resampled users for both), and "beats" means the paired
interval of the difference excludes 0. The spread over seeds is printed beside.

The holdout is touched only by the chosen configuration of each model, once per seed; the MLflow
run (experiment `vidrec-benchmarks`) lists them (`holdout_configurations.json`, tag
`holdout_touches`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from feature_repo.feature_columns import ranker_inputs
from feature_repo.store import feature_store
from models.evaluation.bootstrap import DEFAULT_RESAMPLES, Interval, bootstrap_interval, mean_over_seeds, paired_difference
from models.evaluation.ranking_metrics import log_loss, reliability_bins
from models.ranking.config import PROBABILITY_HEADS, RankerConfig
from models.ranking.evaluate import base_rates, ranking_report, user_components
from models.ranking.labels import example_weights, head_labels, watch_time_labels
from models.ranking.preprocessing import FeaturePreprocessor
from models.ranking.train import split_calibration_rows, train_ranker
from vidrec.settings import VidrecSettings

Scorer = Callable[[pd.DataFrame], np.ndarray]  # frame → one value per row

OURS = "ranker"
TRAIN_CLICK_FEATURES = ("candidate_train_clickers", "history_cowatch_count", "history_cowatch_share")
CLICK_SETTLES_AFTER = pd.Timedelta(hours=1)  # a click is a watch within 30 min of its impression
EDGE_SHARE = 0.1  # the outer share of a range that counts as its edge


# --- the train-click features -------------------------------------------------------------------

def _bag_matrix(frame: pd.DataFrame, bag_column: str, position: dict[int, int], candidates: np.ndarray,
                max_bag_length: int):
    """(rows, videos) 0/1 CSR: the distinct clicked videos among each row's last `max_bag_length`
    bag ids, the row's candidate left out."""
    from scipy import sparse

    bags = frame[bag_column].to_numpy(object) if bag_column in frame.columns else np.full(len(frame), None)
    columns_per_row = []
    for bag, candidate in zip(bags, candidates, strict=True):
        has_bag = bag is not None and not (isinstance(bag, float) and math.isnan(bag))
        columns = {position.get(int(video), -1) for video in list(bag)[-max_bag_length:]} if has_bag else set()
        columns_per_row.append(sorted(columns - {-1, candidate}))
    lengths = [len(columns) for columns in columns_per_row]
    return sparse.csr_matrix(
        (np.ones(sum(lengths)), (np.repeat(np.arange(len(frame)), lengths),
                                 np.fromiter((column for columns in columns_per_row for column in columns), np.int64))),
        shape=(len(frame), len(position)))


def train_click_features(frame: pd.DataFrame, max_bag_length: int = 50,
                         bag_column: str = "recent_watch_video_ids") -> pd.DataFrame:
    """`TRAIN_CLICK_FEATURES` per row of `frame` (indexed like it), from the frame's train-split
    clicks that settled before the row's UTC day began (the label is never counted):

    - `candidate_train_clickers`: users who clicked the candidate;
    - `history_cowatch_count`: Σ over the distinct videos h of the row's bag (its last
      `max_bag_length` ids, the candidate left out) of the users who clicked both h and the
      candidate;
    - `history_cowatch_share`: that count / (the bag's videos anyone clicked × the candidate's
      clickers), NaN when either is 0: the mean share of the candidate's clickers who also
      clicked a bag video.
    """
    from scipy import sparse

    row_day = pd.to_datetime(frame["event_timestamp"], utc=True).dt.floor("D").to_numpy()
    clicks = frame[(frame["split"] == "train") & frame["clicked"].fillna(False).astype(bool)]
    settled_day = (pd.to_datetime(clicks["event_timestamp"], utc=True) + CLICK_SETTLES_AFTER).dt.floor("D").to_numpy()
    videos, click_columns = np.unique(clicks["video_id"].to_numpy(np.int64), return_inverse=True)
    users, click_rows = np.unique(clicks["user_id"].to_numpy(), return_inverse=True)
    position = {int(video): column for column, video in enumerate(videos)}
    candidates = np.array([position.get(int(video), -1) for video in frame["video_id"]], dtype=np.int64)
    bags = _bag_matrix(frame, bag_column, position, candidates, max_bag_length)
    clickers, cowatch = np.zeros(len(frame)), np.zeros(len(frame))
    for day in np.unique(row_day):
        rows = np.flatnonzero((row_day == day) & (candidates >= 0))
        known = settled_day < day  # settled on a day before this one began
        clicked = sparse.csr_matrix((np.ones(known.sum()), (click_rows[known], click_columns[known])),
                                    shape=(len(users), len(videos)))
        clicked.data[:] = 1.0  # users, not clicks: a repeat click counts once
        together = (clicked.T @ clicked).tocsr()  # (videos, videos): users who clicked both
        clickers[rows] = together.diagonal()[candidates[rows]]
        cowatch[rows] = np.asarray(together[candidates[rows]].multiply(bags[rows]).sum(axis=1)).ravel()
    pairs = np.diff(bags.indptr) * clickers
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(pairs > 0, cowatch / pairs, np.nan)
    return pd.DataFrame({"candidate_train_clickers": clickers, "history_cowatch_count": cowatch,
                         "history_cowatch_share": share}, index=frame.index)


# --- search spaces and the edge rule ------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One searched hyper-parameter: [low, high] now, never beyond [floor, ceiling]."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False
    floor: float = -math.inf
    ceiling: float = math.inf

    def distribution(self):
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.log)

    def _scale(self, value: float) -> float:
        return math.log(value) if self.log else value

    def edge_of(self, value: float) -> str | None:
        """"low" / "high" when `value` lies in the outer EDGE_SHARE of the range at an edge that
        can still move, else None."""
        low, high = self._scale(self.low), self._scale(self.high)
        where = (self._scale(value) - low) / (high - low) if high > low else 0.5
        if where <= EDGE_SHARE and self.low > self.floor:
            return "low"
        if where >= 1 - EDGE_SHARE and self.high < self.ceiling:
            return "high"
        return None

    def widened(self, edge: str) -> Param:
        """The range with `edge` moved out by half its width (in the search's scale)."""
        low, high = self._scale(self.low), self._scale(self.high)
        step = (high - low) / 2
        unscale = math.exp if self.log else (lambda value: value)
        if edge == "low":
            new_low = max(unscale(low - step), self.floor)
            return replace(self, low=math.floor(new_low) if self.integer else new_low)
        new_high = min(unscale(high + step), self.ceiling)
        return replace(self, high=math.ceil(new_high) if self.integer else new_high)


def widen_on_edge(space: Sequence[Param], best: dict[str, float]) -> tuple[tuple[Param, ...], list[str]]:
    """The space with every edge the best point sits on widened, and which edges moved
    ("name low" / "name high"); the same space and [] when the best point is inside."""
    widened, moved = [], []
    for param in space:
        edge = param.edge_of(best[param.name])
        widened.append(param if edge is None else param.widened(edge))
        if edge is not None:
            moved.append(f"{param.name} {edge}")
    return tuple(widened), moved


# Starting ranges, the same kind of search for every model. Ours: epochs × weight decay ×
# learning rate (without decay the id embeddings overfit within a few epochs).
SEARCH_SPACES: dict[str, tuple[Param, ...]] = {
    OURS: (Param("epochs", 4, 48, integer=True, floor=1, ceiling=200),
           Param("weight_decay", 1e-5, 1e-2, log=True),
           Param("learning_rate", 5e-4, 1e-2, log=True, ceiling=0.1)),
    "logistic regression": (Param("inverse_regularization", 1e-3, 1e2, log=True),),
    "HistGradientBoosting": (Param("learning_rate", 0.02, 0.3, log=True, ceiling=1.0),
                             Param("max_leaf_nodes", 7, 127, log=True, integer=True, floor=2, ceiling=1024),
                             Param("l2_regularization", 1e-4, 10.0, log=True),
                             Param("min_samples_leaf", 5, 200, log=True, integer=True, floor=1)),
}
SEARCH_SPACES["ranker MMoE"] = SEARCH_SPACES[OURS]


@dataclass
class Tuning:
    model: str
    best_params: dict
    best_loss: float
    trials: list[dict] = field(default_factory=list)  # every trial: round, params, validation loss, seconds
    widened: list[str] = field(default_factory=list)  # per round that widened: "round r: name edge, ..."


def tune(model: str, space: Sequence[Param], validation_loss_of: Callable[[dict], float], trials: int,
         max_widenings: int, seed: int = 0) -> Tuning:
    """Minimise `validation_loss_of(params)` with `trials` TPE trials, widening edges the best
    point sits on and searching `trials` more each time, at most `max_widenings` times."""
    import optuna
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuning = Tuning(model, {}, math.inf)
    space = tuple(space)
    for search_round in range(max_widenings + 1):
        distributions = {param.name: param.distribution() for param in space}
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed + search_round))
        study.add_trials([create_trial(params=trial["params"], distributions=distributions, value=trial["validation_loss"])
                          for trial in tuning.trials])

        def objective(trial, search_round=search_round, space=space):
            params = {param.name: _suggest(trial, param) for param in space}
            started = time.perf_counter()
            loss = validation_loss_of(params)
            loss = loss if math.isfinite(loss) else math.inf  # a diverged fit loses, it does not fail the study
            tuning.trials.append({"round": search_round, "params": params, "validation_loss": loss,
                                  "seconds": time.perf_counter() - started})
            return loss

        study.optimize(objective, n_trials=trials)
        tuning.best_params, tuning.best_loss = dict(study.best_params), float(study.best_value)
        space, moved = widen_on_edge(space, tuning.best_params)
        if not moved or search_round == max_widenings:
            if moved:
                tuning.widened.append(f"still on an edge after {max_widenings} widenings: {', '.join(moved)}")
            break
        tuning.widened.append(f"round {search_round + 1}: {', '.join(moved)}")
    return tuning


def _suggest(trial, param: Param):
    if param.integer:
        return trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(param.name, param.low, param.high, log=param.log)


# --- the models ---------------------------------------------------------------------------------

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


def _normalised_weights(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
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

    labels, weights = _normalised_weights(fit_rows)
    model = LogisticRegression(C=params["inverse_regularization"], max_iter=2000)
    model.fit(matrix(fit_rows), labels, sample_weight=weights)
    scorer = lambda frame: model.decision_function(matrix(frame))
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

    labels, weights = _normalised_weights(fit_rows)
    mask = is_categorical + [False] * (2 * len(preprocessor.numeric))
    model = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=params["learning_rate"], max_leaf_nodes=int(params["max_leaf_nodes"]),
        l2_regularization=params["l2_regularization"], min_samples_leaf=int(params["min_samples_leaf"]),
        categorical_features=np.array(mask), early_stopping=True, validation_fraction=0.1, random_state=seed)
    model.fit(matrix(fit_rows), labels, sample_weight=weights)
    scorer = lambda frame: model.decision_function(matrix(frame))
    return Fitted(logits=scorer, final_score=scorer)


def ranker_fitter(architecture: str):
    def fit_ranker(train_rows: pd.DataFrame, config: RankerConfig, params: dict, seed: int) -> Fitted:
        """Ours, on the train split: it cuts the same fit / validation rows itself (the same
        split_calibration_rows) and calibrates its heads on validation. Scores the product score."""
        bundle = train_ranker(train_rows, replace(config, architecture=architecture, seed=seed, **params))

        def probabilities(frame):
            values = bundle.head_values(frame)
            labels = head_labels(frame, bundle.config)
            return {head: (labels[head][0], values[head]) for head in bundle.model.head_names if head in PROBABILITY_HEADS}

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
    """The watch-time-weighted log loss (every model's training objective) on `frame`: what
    hyper-parameters are chosen by, for our ranker and the baselines alike."""
    clicked, weights = watch_time_labels(frame)
    return log_loss(clicked, 1.0 / (1.0 + np.exp(-logits)), sample_weight=weights)


# --- running the benchmark ----------------------------------------------------------------------

@dataclass
class Scored:
    """One model's holdout results: per seed the report and the per-user components."""

    model: str
    seeds: list[int]
    reports: list[dict[str, float]]
    components: list[pd.DataFrame]
    params: dict
    train_seconds: list[float]
    bundle: object | None = None  # ours, first seed: for latency and reliability diagrams
    diagrams: dict[str, bytes] = field(default_factory=dict)  # head → PNG, raw vs calibrated, first seed


@dataclass
class Splits:
    train: pd.DataFrame  # split == 'train'
    fit: pd.DataFrame  # train less its last calibration_share by time
    validation: pd.DataFrame
    holdout: pd.DataFrame


def make_splits(frame: pd.DataFrame, config: RankerConfig) -> Splits:
    train = frame[frame["split"] == "train"]
    fit, validation = split_calibration_rows(train, config.calibration_share)
    holdout = frame[frame["split"] == "holdout"]
    if train.empty or validation.empty or holdout.empty:
        raise SystemExit(f"the ranking frame needs train, validation and holdout rows; have {len(fit)} fit, "
                         f"{len(validation)} validation, {len(holdout)} holdout")
    return Splits(train, fit, validation, holdout)


def tune_model(spec: ModelSpec, splits: Splits, config: RankerConfig, trials: int, max_widenings: int) -> Tuning:
    rows = splits.train if spec.fits_on_train_split else splits.fit
    return tune(spec.name, SEARCH_SPACES[spec.name],
                lambda params: validation_loss(splits.validation, spec.fit(rows, config, params, 0).logits(splits.validation)),
                trials, max_widenings)


def score_model(spec: ModelSpec, params: dict, splits: Splits, config: RankerConfig, seeds: Sequence[int],
                constant_rates: dict[str, float], touches: list[dict]) -> Scored:
    """Fit the chosen configuration once per seed and score the holdout once with each."""
    rows = splits.train if spec.fits_on_train_split else splits.fit
    scored = Scored(spec.name, [], [], [], params, [])
    for seed in (seeds if spec.stochastic else seeds[:1]):
        started = time.perf_counter()
        fitted = spec.fit(rows, config, params, seed)
        scored.train_seconds.append(time.perf_counter() - started)
        touches.append({"model": spec.name, "seed": seed if spec.stochastic else "deterministic", "params": params})
        final = fitted.final_score(splits.holdout)
        probabilities = fitted.probabilities(splits.holdout) if fitted.probabilities else None
        scored.seeds.append(seed)
        scored.reports.append(ranking_report(splits.holdout, final, probabilities, config.calibration_bins, constant_rates))
        scored.components.append(user_components(splits.holdout, final))
        if scored.bundle is None and fitted.bundle is not None:
            scored.bundle = fitted.bundle
            scored.diagrams = reliability_diagrams(fitted.bundle, splits.holdout)
    return scored


def reliability_diagrams(bundle, holdout: pd.DataFrame) -> dict[str, bytes]:
    """Head → PNG of the holdout reliability diagram, raw sigmoid vs calibrated."""
    from models.calibration import reliability_diagram_png

    logits = bundle.all_logits(holdout)
    values = bundle.head_values(holdout)
    labels = head_labels(holdout, bundle.config)
    weights = example_weights(holdout)
    bins = bundle.config.calibration_bins
    diagrams = {}
    for head in bundle.calibrators:
        before = reliability_bins(labels[head][0], 1.0 / (1.0 + np.exp(-logits[head])), weights, bins)
        after = reliability_bins(labels[head][0], values[head], weights, bins)
        diagrams[head] = reliability_diagram_png(before, after, f"{head} (holdout)")
    return diagrams


def score_popularity(splits: Splits, touches: list[dict]) -> Scored:
    final = splits.holdout["candidate_train_clickers"].to_numpy(np.float64)
    touches.append({"model": POPULARITY, "seed": "deterministic", "params": {}})
    return Scored(POPULARITY, [0], [ranking_report(splits.holdout, final)], [user_components(splits.holdout, final)], {}, [0.0])


def run(frame: pd.DataFrame, config: RankerConfig, models: Sequence[str], seeds: Sequence[int], trials: int,
        max_widenings: int) -> tuple[list[Tuning], list[Scored], list[dict]]:
    """Tune every model on validation, then score each chosen configuration on the holdout once
    per seed. Returns the tunings, the holdout results and the list of holdout touches."""
    splits = make_splits(frame, config)
    constant_rates = base_rates(splits.train, config)
    tunings, results, touches = [], [], []
    for name in models:
        if name == POPULARITY:
            results.append(score_popularity(splits, touches))
            continue
        spec = MODELS[name]
        tuning = tune_model(spec, splits, config, trials, max_widenings)
        tunings.append(tuning)
        results.append(score_model(spec, tuning.best_params, splits, config, seeds, constant_rates, touches))
    return tunings, results, touches


# --- intervals and tables -----------------------------------------------------------------------

@dataclass
class Summary:
    gauc: Interval
    pairwise_loss: Interval
    gauc_advantage: Interval | None = None  # ours − this model (> 0: ours ranks better)
    loss_advantage: Interval | None = None  # this model − ours (> 0: ours ranks better)

    @property
    def ours_beats(self) -> bool:
        return bool(self.gauc_advantage and self.loss_advantage and self.gauc_advantage.low > 0
                    and self.loss_advantage.low > 0)


def _seed_averaged(scored: Scored) -> pd.DataFrame:
    """Per-user components with numerators averaged over seeds (denominators are the model's
    and seed's common weights: checked)."""
    first = scored.components[0]
    for other in scored.components[1:]:
        if not (np.allclose(other["gauc_weight"], first["gauc_weight"])
                and np.allclose(other["pairwise_pair_weight"], first["pairwise_pair_weight"])):
            raise ValueError(f"{scored.model}: per-user weights differ between seeds; the components are misaligned")
    averaged = first.copy()
    for column in ("gauc_numerator", "pairwise_wrong_weight"):
        averaged[column] = mean_over_seeds([components[column] for components in scored.components])
    return averaged


def summarise(results: Sequence[Scored], resamples: int) -> dict[str, Summary]:
    averaged = {scored.model: _seed_averaged(scored) for scored in results}
    ours = averaged.get(OURS)
    summaries = {}
    for name, components in averaged.items():
        if ours is not None and not components.index.equals(ours.index):
            raise ValueError(f"{name}'s users are not ours in the same order")
        summary = Summary(
            bootstrap_interval(components["gauc_numerator"], components["gauc_weight"], resamples),
            bootstrap_interval(components["pairwise_wrong_weight"], components["pairwise_pair_weight"], resamples))
        if ours is not None and name != OURS:
            summary.gauc_advantage = paired_difference(
                ours["gauc_numerator"], components["gauc_numerator"], ours["gauc_weight"], components["gauc_weight"],
                resamples)
            summary.loss_advantage = paired_difference(
                components["pairwise_wrong_weight"], ours["pairwise_wrong_weight"], components["pairwise_pair_weight"],
                ours["pairwise_pair_weight"], resamples)
        summaries[name] = summary
    return summaries


def _spread(values: Sequence[float]) -> str:
    finite = [value for value in values if np.isfinite(value)]
    if not finite:
        return "—"
    if len(finite) == 1:
        return f"{finite[0]:.4f}"
    return f"{statistics.mean(finite):.4f} ± {statistics.stdev(finite):.4f}"


def results_table(results: Sequence[Scored], summaries: dict[str, Summary]) -> str:
    lines = ["| model | seeds | GAUC [95% CI] | pairwise loss ↓ [95% CI] | AUC click | NDCG@10 | train s |",
             "|---|---|---|---|---|---|---|"]
    for scored in results:
        summary = summaries[scored.model]
        metric = lambda key: _spread([report.get(key, float("nan")) for report in scored.reports])
        lines.append(f"| {scored.model} | {len(scored.seeds)} | {summary.gauc.format()} | "
                     f"{summary.pairwise_loss.format()} | {metric('auc_clicked')} | "
                     f"{metric('ndcg_at_10_watch_seconds')} | {statistics.mean(scored.train_seconds):.0f} |")
    return "\n".join(lines)


def comparison_table(summaries: dict[str, Summary]) -> str:
    lines = [f"| model | GAUC: {OURS} − model [95% CI] | pairwise loss: model − {OURS} [95% CI] | {OURS} beats it |",
             "|---|---|---|---|"]
    for name, summary in summaries.items():
        if summary.gauc_advantage is None:
            continue
        lines.append(f"| {name} | {summary.gauc_advantage.format()} | {summary.loss_advantage.format()} | "
                     f"{'yes' if summary.ours_beats else 'no'} |")
    return "\n".join(lines)


SPREAD_METRICS = (("gauc_clicked", "GAUC"), ("pairwise_loss_watch_weighted", "pairwise loss"),
                  ("auc_clicked", "AUC click"))


def seed_table(results: Sequence[Scored]) -> str:
    lines = ["| model | metric | per seed | min | max |", "|---|---|---|---|---|"]
    for scored in results:
        if len(scored.seeds) < 2:
            continue
        for key, title in SPREAD_METRICS:
            values = [report[key] for report in scored.reports]
            listed = ", ".join(f"{value:.4f}" for value in values)
            lines.append(f"| {scored.model} | {title} | {listed} | {min(values):.4f} | {max(values):.4f} |")
    return "\n".join(lines)


def calibration_table(scored: Scored) -> str:
    """Our heads' ECE (over seeds) beside the base rate, a constant predictor at the training
    rows' base rate, and whether the head has enough holdout positives to count."""
    lines = ["| head | holdout positives | base rate | ECE | ECE / base rate | constant (train rate) ECE | counts toward a bar |",
             "|---|---|---|---|---|---|---|"]
    first = scored.reports[0]
    for head in PROBABILITY_HEADS:
        if f"ece_{head}" not in first:
            continue
        eces = [report[f"ece_{head}"] for report in scored.reports]
        base = first[f"base_rate_{head}"]
        relative = statistics.mean(eces) / base if base > 0 else float("nan")
        counts = "yes" if first[f"ece_counts_toward_bar_{head}"] else "no (fewer than 200 positives)"
        lines.append(f"| {head} | {first[f'positives_{head}']:.0f} | {base:.4f} | {_spread(eces)} | {relative:.2f} | "
                     f"{first[f'ece_constant_{head}']:.4f} | {counts} |")
    return "\n".join(lines)


def tuning_table(tunings: Sequence[Tuning]) -> str:
    lines = ["| model | trials | best hyper-parameters | validation loss | widened edges |", "|---|---|---|---|---|"]
    for tuning in tunings:
        point = ", ".join(f"{key} {_short(value)}" for key, value in tuning.best_params.items())
        widened = "; ".join(tuning.widened) or "none"
        lines.append(f"| {tuning.model} | {len(tuning.trials)} | {point} | {tuning.best_loss:.5f} | {widened} |")
    return "\n".join(lines)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def score_latency_ms(bundle, frame: pd.DataFrame, calls: int = 200) -> float:
    """Median wall time of `bundle.score` on `frame` (preprocessing included), after a warm-up."""
    bundle.score(frame)
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        bundle.score(frame)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


# --- entry point --------------------------------------------------------------------------------

def pipeline_frame(settings: VidrecSettings, frame_path: Path | None = None) -> tuple[pd.DataFrame, RankerConfig]:
    """The pipeline's ranking frame of `settings.home` with the train-click features, and the
    ranker config the pipeline trains with those features added."""
    path = frame_path or settings.artifacts_dir / "ranking_training_frame.parquet"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `vidrec pipeline` with VIDREC_HOME={settings.home} first")
    inputs = ranker_inputs(feature_store(settings))
    config = RankerConfig(categorical_features=list(inputs.categorical),
                          numeric_features=[*inputs.numeric, *TRAIN_CLICK_FEATURES],
                          bag_features=list(inputs.lists), show_progress=False)
    frame = pd.read_parquet(path)
    bag = next(iter(inputs.lists), "recent_watch_video_ids")
    return pd.concat([frame, train_click_features(frame, config.max_bag_length, bag)], axis=1), config


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--home", type=Path, help="a VIDREC_HOME where `vidrec pipeline` ran (default: VIDREC_HOME)")
    parser.add_argument("--dataset", default="simulated", help="the label results are logged under (data: --home)")
    parser.add_argument("--frame", type=Path, help="ranking frame Parquet; default <home>/artifacts/...")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated, '{OURS}' first; known: {', '.join([*MODELS, POPULARITY])}")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per stochastic model (≥ 5 for reported numbers)")
    parser.add_argument("--trials", type=int, default=12, help="Optuna trials per model and search round")
    parser.add_argument("--max-widenings", type=int, default=2, help="edge widenings per model, at most")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples of users")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the latency budget assumes ≤ 2)")
    parser.add_argument("--mlflow-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in args.models if name not in MODELS and name != POPULARITY]
    if unknown or not args.models or args.models[0] != OURS:
        parser.error(f"--models must start with '{OURS}' and name known models; got {args.models}")
    if args.seeds < 1 or args.trials < 1 or args.max_widenings < 0:
        parser.error("--seeds and --trials must be at least 1, --max-widenings at least 0")
    return args


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    # tuning trains ours on the train split alone: its "no holdout rows" warning is expected
    logging.getLogger("models.ranking.train").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    settings = VidrecSettings(home=args.home) if args.home else VidrecSettings()
    frame, config = pipeline_frame(settings, args.frame)
    seeds = list(range(args.seeds))
    print(f"dataset: {args.dataset} from {settings.home}; {len(frame)} rows, "
          f"{(frame['split'] == 'holdout').sum()} holdout ({frame.loc[frame['split'] == 'holdout', 'user_id'].nunique()} "
          f"users); seeds {seeds}; {args.trials} trials per search round; torch threads {args.threads}")
    if args.seeds < 5:
        print(f"note: {args.seeds} seeds; reported numbers need at least 5")

    started = time.perf_counter()
    tunings, results, touches = run(frame, config, args.models, seeds, args.trials, args.max_widenings)
    summaries = summarise(results, args.resamples)
    ours = next(scored for scored in results if scored.model == OURS)
    sample = frame.sample(min(500, len(frame)), random_state=0).drop(
        columns=["clicked", "watch_seconds", "liked", "shared", "disliked", "position", "split"], errors="ignore")
    latency = score_latency_ms(ours.bundle, sample)
    tables = {
        "tuning (validation rows)": tuning_table(tunings),
        "holdout: seed-averaged, user-bootstrap 95% intervals": results_table(results, summaries),
        f"paired differences against {OURS} (> 0: {OURS} ranks better)": comparison_table(summaries),
        "spread over seeds": seed_table(results),
        f"{OURS}: calibration on the holdout": calibration_table(ours),
    }
    report = "\n\n".join(f"### {title}\n\n{table}" for title, table in tables.items())
    print(report)
    print(f"\nbundle.score on {len(sample)} rows, median of 200 calls: {latency:.2f} ms; "
          f"benchmark wall time {time.perf_counter() - started:.0f} s")
    if not args.no_mlflow:
        log_to_mlflow(args, settings, tunings, results, summaries, touches, report, latency)


def log_to_mlflow(args, settings: VidrecSettings, tunings, results, summaries, touches, report: str,
                  latency: float) -> None:
    import mlflow

    mlflow.set_tracking_uri(args.mlflow_uri or settings.mlflow_tracking_uri)
    mlflow.set_experiment(experiment_id=_experiment_id("vidrec-benchmarks", _artifact_location(args.mlflow_uri, settings)))
    with mlflow.start_run(run_name=f"ranking-{args.dataset}"):
        mlflow.log_params({"dataset": args.dataset, "home": str(settings.home)[:250], "threads": args.threads,
                           "seeds": args.seeds, "trials": args.trials, "max_widenings": args.max_widenings,
                           "resamples": args.resamples, "models": ",".join(args.models)[:250]})
        mlflow.set_tag("holdout_touches", "; ".join(
            f"{touch['model']} seed {touch['seed']} {json.dumps(touch['params'])}" for touch in touches)[:5000])
        mlflow.log_dict(touches, "holdout_configurations.json")
        mlflow.log_dict([{"model": tuning.model, "trials": tuning.trials, "widened": tuning.widened}
                         for tuning in tunings], "tuning_trials.json")
        for scored in results:
            slug = scored.model.split(" (")[0].replace(" ", "_").replace("-", "_")
            keys = sorted({key for seed_report in scored.reports for key in seed_report})
            means = {key: float(np.nanmean([seed_report.get(key, np.nan) for seed_report in scored.reports]))
                     for key in keys}
            mlflow.log_metrics({f"{slug}.{key}": value for key, value in means.items() if np.isfinite(value)})
            summary = summaries[scored.model]
            intervals = {"gauc": summary.gauc, "pairwise_loss": summary.pairwise_loss,
                         "gauc_ours_minus_model": summary.gauc_advantage,
                         "pairwise_loss_model_minus_ours": summary.loss_advantage}
            mlflow.log_metrics({f"{slug}.{name}_{key}": value for name, interval in intervals.items() if interval
                                for key, value in interval.as_dict().items()})
        mlflow.log_metric("score_500_rows_ms", latency)
        mlflow.log_text(report + "\n", "ranking_benchmark.md")
        ours = next(scored for scored in results if scored.model == OURS)
        for head, png in ours.diagrams.items():
            mlflow.log_image(_png_to_array(png), f"reliability_{head}.png")


def _artifact_location(mlflow_uri: str | None, settings: VidrecSettings) -> str | None:
    """The settings' artifact store; beside the database for `--mlflow-uri sqlite:///…/x.db`
    (never MLflow's default ./mlruns in the working directory)."""
    if mlflow_uri is None:
        return settings.mlflow_artifact_location
    if mlflow_uri.startswith("sqlite:///"):
        return (Path(mlflow_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return None


def _experiment_id(name: str, artifact_location: str | None) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_location)


def _png_to_array(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


if __name__ == "__main__":
    main()
