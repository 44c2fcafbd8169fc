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

On a GPU machine without the pipeline's stack. `--export DIR` (run where the pipeline ran) writes
the home's ranking frame and the ranker's input lists (what the `ranker_features` feature service
provides) to DIR/ranking_frame.parquet and DIR/ranker_inputs.json, and exits. `--frame-dir DIR`
benchmarks from those two files alone: that path imports no Feast, Dagster, dbt or MLflow, so
torch, numpy, pandas, scipy, scikit-learn, pyarrow, optuna and pydantic(-settings) suffice.
`--device cuda` trains our ranker on the GPU (the baselines are scikit-learn, on the CPU);
`--results-json` keeps everything the report is built from, and `--from-results` rebuilds the
report from it where MLflow is, and logs it:

    .venv/bin/python bench/ranking.py --home /tmp/sim --export /tmp/sim_export
    # there, from the repository root (no install: PYTHONPATH finds models/ and vidrec/)
    PYTHONPATH=. python3 bench/ranking.py --frame-dir /tmp/sim_export --dataset simulated \
        --device cuda --no-mlflow --results-json /tmp/ranking_simulated.json
    # back here
    .venv/bin/python bench/ranking.py --from-results /tmp/ranking_simulated.json

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

Tuning. Every tuned model gets the project's one search (models/evaluation/tuning.py: Optuna's
TPE, seeded), minimising the validation loss (the watch-time-weighted log loss of the watch-time
log-odds), each trial fit with seed 0: `--trials` trials per round; a best point near an edge of
its range that is not a hard limit widens that edge, and another round of `--trials` trials runs
from the best point so far, at most `--max-widenings` times per model. The tuning table says how
many rounds each model took and which edges moved.

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
import base64
import json
import logging
import math
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.evaluation.bootstrap import DEFAULT_RESAMPLES, Interval, bootstrap_interval, mean_over_seeds, paired_difference
from models.evaluation.ranking_metrics import log_loss, reliability_bins
from models.evaluation.tuning import FloatRange, IntRange, SearchSpace, TuningResult, tune
from models.ranking.config import PROBABILITY_HEADS, RankerConfig
from models.ranking.evaluate import base_rates, ranking_report, user_components
from models.ranking.labels import example_weights, head_labels, watch_time_labels
from models.ranking.preprocessing import FeaturePreprocessor
from models.ranking.train import split_calibration_rows, train_ranker, training_device
from vidrec.settings import VidrecSettings

Scorer = Callable[[pd.DataFrame], np.ndarray]  # frame → one value per row

OURS = "ranker"
TRAIN_CLICK_FEATURES = ("candidate_train_clickers", "history_cowatch_count", "history_cowatch_share")
CLICK_SETTLES_AFTER = pd.Timedelta(hours=1)  # a click is a watch within 30 min of its impression


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


# --- search spaces ------------------------------------------------------------------------------

# Starting ranges, the same kind of search for every model. Ours: epochs × weight decay ×
# learning rate (without decay the id embeddings overfit within a few epochs). A hard limit is
# an edge the search never widens past.
SEARCH_SPACES: dict[str, SearchSpace] = {
    OURS: {"epochs": IntRange(4, 48, hard_low=1, hard_high=200),
           "weight_decay": FloatRange(1e-5, 1e-2, log=True),
           "learning_rate": FloatRange(5e-4, 1e-2, log=True, hard_high=0.1)},
    "logistic regression": {"inverse_regularization": FloatRange(1e-3, 1e2, log=True)},
    "HistGradientBoosting": {"learning_rate": FloatRange(0.02, 0.3, log=True, hard_high=1.0),
                             "max_leaf_nodes": IntRange(7, 127, log=True, hard_low=2, hard_high=1024),
                             "l2_regularization": FloatRange(1e-4, 10.0, log=True),
                             "min_samples_leaf": IntRange(5, 200, log=True, hard_low=1)},
}
SEARCH_SPACES["ranker MMoE"] = SEARCH_SPACES[OURS]


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


def tune_model(spec: ModelSpec, splits: Splits, config: RankerConfig, trials: int, max_widenings: int) -> TuningResult:
    """The shared search over `SEARCH_SPACES[spec.name]`, minimising the validation loss of fits
    with seed 0."""
    rows = splits.train if spec.fits_on_train_split else splits.fit

    def loss_of(params: dict) -> float:
        loss = validation_loss(splits.validation, spec.fit(rows, config, params, 0).logits(splits.validation))
        return loss if math.isfinite(loss) else math.inf  # a diverged fit loses; it does not fail the study

    return tune(loss_of, SEARCH_SPACES[spec.name], trials, max_widenings, seed=0, direction="minimize")


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
        max_widenings: int) -> tuple[dict[str, TuningResult], list[Scored], list[dict]]:
    """Tune every model on validation, then score each chosen configuration on the holdout once
    per seed. Returns the tunings, the holdout results and the list of holdout touches."""
    splits = make_splits(frame, config)
    constant_rates = base_rates(splits.train, config)
    tunings, results, touches = {}, [], []
    for name in models:
        if name == POPULARITY:
            results.append(score_popularity(splits, touches))
            continue
        spec = MODELS[name]
        tunings[name] = tune_model(spec, splits, config, trials, max_widenings)
        results.append(score_model(spec, tunings[name].best_params, splits, config, seeds, constant_rates, touches))
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


def tuning_table(tunings: dict[str, TuningResult]) -> str:
    lines = ["| model | trials | rounds | best hyper-parameters | validation loss | widened edges |",
             "|---|---|---|---|---|---|"]
    for model, tuning in tunings.items():
        point = ", ".join(f"{key} {_short(value)}" for key, value in tuning.best_params.items())
        widened = "; ".join(tuning.widened) or "none"
        lines.append(f"| {model} | {len(tuning.trials)} | {tuning.rounds} | {point} | {tuning.best_value:.5f} | "
                     f"{widened} |")
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


# --- data: a pipeline's home, or an export of it ------------------------------------------------

FRAME_FILE = "ranking_frame.parquet"
INPUTS_FILE = "ranker_inputs.json"
INPUT_KINDS = ("categorical", "numeric", "lists")  # the column lists of feature_repo's ranker_inputs


def benchmark_frame(frame: pd.DataFrame, inputs: dict[str, list[str]]) -> tuple[pd.DataFrame, RankerConfig]:
    """`frame` with the train-click features, and the ranker config the pipeline trains on
    `inputs` (the feature service's columns by kind, `INPUT_KINDS`) with those features added."""
    config = RankerConfig(categorical_features=list(inputs["categorical"]),
                          numeric_features=[*inputs["numeric"], *TRAIN_CLICK_FEATURES],
                          bag_features=list(inputs["lists"]), show_progress=False)
    bag = next(iter(inputs["lists"]), "recent_watch_video_ids")
    return pd.concat([frame, train_click_features(frame, config.max_bag_length, bag)], axis=1), config


def pipeline_frame_path(settings: VidrecSettings, frame_path: Path | None = None) -> Path:
    path = frame_path or settings.artifacts_dir / "ranking_training_frame.parquet"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `vidrec pipeline` with VIDREC_HOME={settings.home} first")
    return path


def pipeline_inputs(settings: VidrecSettings) -> dict[str, list[str]]:
    """The ranker's inputs by kind, as the pipeline's `ranker_features` feature service gives
    them. The only code here that needs Feast, so it is imported here."""
    from feature_repo.feature_columns import ranker_inputs
    from feature_repo.store import feature_store

    inputs = ranker_inputs(feature_store(settings))
    return {kind: list(getattr(inputs, kind)) for kind in INPUT_KINDS}


def export_frame(settings: VidrecSettings, frame_path: Path | None, directory: Path) -> None:
    """Write what `--frame-dir` reads: the home's ranking frame, unchanged, and its ranker inputs."""
    source = pipeline_frame_path(settings, frame_path)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, directory / FRAME_FILE)
    inputs = {**pipeline_inputs(settings), "exported_from": str(source)}
    (directory / INPUTS_FILE).write_text(json.dumps(inputs, indent=2) + "\n")


def exported_frame(directory: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The frame and ranker inputs `export_frame` wrote to `directory`."""
    for name in (FRAME_FILE, INPUTS_FILE):
        if not (directory / name).is_file():
            raise SystemExit(f"{directory / name} not found: write it where the pipeline ran with "
                             f"`bench/ranking.py --home <home> --export {directory}`")
    inputs = json.loads((directory / INPUTS_FILE).read_text())
    missing = [kind for kind in INPUT_KINDS if not isinstance(inputs.get(kind), list)]
    if missing:
        raise SystemExit(f"{directory / INPUTS_FILE} lacks the column lists {missing}; expected {list(INPUT_KINDS)}")
    return pd.read_parquet(directory / FRAME_FILE), {kind: inputs[kind] for kind in INPUT_KINDS}


# --- results: what a report is built from -------------------------------------------------------

@dataclass
class Outcome:
    """Everything the report and the MLflow run are built from: what `--results-json` writes and
    `--from-results` reads (our ranker's bundle is not kept; its latency and diagrams are)."""

    setup: dict  # what ran on which data: the report's header and the MLflow params
    tunings: dict[str, TuningResult]
    results: list[Scored]
    touches: list[dict]


def benchmark(args: argparse.Namespace) -> Outcome:
    torch.set_num_threads(args.threads)
    if args.frame_dir:
        frame, inputs = exported_frame(args.frame_dir)
        source = str(args.frame_dir)
    else:
        settings = _settings(args.home)
        frame, inputs = pd.read_parquet(pipeline_frame_path(settings, args.frame)), pipeline_inputs(settings)
        source = str(settings.home)
    frame, config = benchmark_frame(frame, inputs)
    config = replace(config, device=args.device)
    holdout = frame[frame["split"] == "holdout"]
    setup = {"dataset": args.dataset, "source": source, "rows": len(frame), "holdout_rows": len(holdout),
             "holdout_users": int(holdout["user_id"].nunique()), "seeds": list(range(args.seeds)),
             "trials": args.trials, "max_widenings": args.max_widenings,
             "resamples": args.resamples or DEFAULT_RESAMPLES, "models": args.models, "threads": args.threads,
             "device": args.device}
    print(_header(setup))
    if args.seeds < 5:
        print(f"note: {args.seeds} seeds; reported numbers need at least 5")

    started = time.perf_counter()
    tunings, results, touches = run(frame, config, args.models, setup["seeds"], args.trials, args.max_widenings)
    ours = next(scored for scored in results if scored.model == OURS)
    sample = frame.sample(min(500, len(frame)), random_state=0).drop(
        columns=["clicked", "watch_seconds", "liked", "shared", "disliked", "position", "split"], errors="ignore")
    setup.update(latency_rows=len(sample), latency_ms=score_latency_ms(ours.bundle, sample),
                 wall_seconds=time.perf_counter() - started)
    return Outcome(setup, tunings, results, touches)


def report_of(outcome: Outcome, summaries: dict[str, Summary]) -> str:
    ours = next(scored for scored in outcome.results if scored.model == OURS)
    tables = {
        "tuning (validation rows)": tuning_table(outcome.tunings),
        "holdout: seed-averaged, user-bootstrap 95% intervals": results_table(outcome.results, summaries),
        f"paired differences against {OURS} (> 0: {OURS} ranks better)": comparison_table(summaries),
        "spread over seeds": seed_table(outcome.results),
        f"{OURS}: calibration on the holdout": calibration_table(ours),
    }
    return "\n\n".join(f"### {title}\n\n{table}" for title, table in tables.items())


def _header(setup: dict) -> str:
    return (f"dataset: {setup['dataset']} from {setup['source']}; {setup['rows']} rows, {setup['holdout_rows']} "
            f"holdout ({setup['holdout_users']} users); seeds {setup['seeds']}; {setup['trials']} trials per search "
            f"round; torch threads {setup['threads']}; ranker trained on {setup['device']}")


def _footer(setup: dict) -> str:
    return (f"bundle.score on {setup['latency_rows']} rows, median of 200 calls: {setup['latency_ms']:.2f} ms; "
            f"benchmark wall time {setup['wall_seconds']:.0f} s")


def write_results(outcome: Outcome, path: Path) -> None:
    """`outcome` as JSON: per model and seed the holdout report and per-user components, the
    tuning trials, the holdout touches and our reliability diagrams (base64 PNG)."""
    payload = {
        "setup": outcome.setup,
        "tunings": {model: {"best_params": tuning.best_params, "best_value": tuning.best_value,
                            "rounds": tuning.rounds, "widened": tuning.widened, "trials": _records(tuning.trials)}
                    for model, tuning in outcome.tunings.items()},
        "results": [{"model": scored.model, "seeds": scored.seeds, "params": scored.params,
                     "train_seconds": scored.train_seconds, "reports": scored.reports,
                     "components": [components.reset_index().to_dict(orient="list") for components in scored.components],
                     "diagrams": {head: base64.b64encode(png).decode() for head, png in scored.diagrams.items()}}
                    for scored in outcome.results],
        "touches": outcome.touches,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, default=_plain) + "\n")


def read_results(path: Path) -> Outcome:
    payload = json.loads(path.read_text())
    tunings = {model: TuningResult(tuning["best_params"], tuning["best_value"], pd.DataFrame(tuning["trials"]),
                                   tuning["widened"], tuning["rounds"])
               for model, tuning in payload["tunings"].items()}
    results = [Scored(scored["model"], scored["seeds"], scored["reports"],
                      [pd.DataFrame(columns).set_index("user_id") for columns in scored["components"]],
                      scored["params"], scored["train_seconds"],
                      diagrams={head: base64.b64decode(png) for head, png in scored["diagrams"].items()})
               for scored in payload["results"]]
    return Outcome(payload["setup"], tunings, results, payload["touches"])


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict(orient="records")  # Python scalars; a diverged trial's inf stays inf


def _plain(value):
    """JSON for the numpy scalars reports and components hold."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to the results JSON")


# --- entry point --------------------------------------------------------------------------------

def _settings(home: Path | None) -> VidrecSettings:
    return VidrecSettings(home=home) if home else VidrecSettings()


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--home", type=Path, help="a VIDREC_HOME where `vidrec pipeline` ran (default: VIDREC_HOME)")
    parser.add_argument("--dataset", default="simulated", help="the label results are logged under (data: --home)")
    parser.add_argument("--frame", type=Path, help="ranking frame Parquet; default <home>/artifacts/...")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--export", type=Path, metavar="DIR",
                      help=f"write the home's ranking frame and ranker inputs to DIR/{FRAME_FILE} and "
                           f"DIR/{INPUTS_FILE}, then exit")
    mode.add_argument("--frame-dir", type=Path, metavar="DIR",
                      help="benchmark on what --export wrote to DIR instead of a home (needs no Feast)")
    mode.add_argument("--from-results", type=Path, metavar="PATH",
                      help="rebuild the report (and MLflow run) from a --results-json file; nothing is trained")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated, '{OURS}' first; known: {', '.join([*MODELS, POPULARITY])}")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per stochastic model (≥ 5 for reported numbers)")
    parser.add_argument("--trials", type=int, default=12, help="Optuna trials per model and search round")
    parser.add_argument("--max-widenings", type=int, default=2, help="edge widenings per model, at most")
    parser.add_argument("--resamples", type=int, default=None,
                        help=f"bootstrap resamples of users (default {DEFAULT_RESAMPLES}; with --from-results, the file's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the latency budget assumes ≤ 2)")
    parser.add_argument("--device", default="cpu", help="where our ranker trains: cpu, cuda, cuda:1, ...")
    parser.add_argument("--results-json", type=Path, metavar="PATH",
                        help="also write what the report is built from (per-user components, tunings) to PATH")
    parser.add_argument("--mlflow-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in args.models if name not in MODELS and name != POPULARITY]
    if unknown or not args.models or args.models[0] != OURS:
        parser.error(f"--models must start with '{OURS}' and name known models; got {args.models}")
    if args.seeds < 1 or args.trials < 1 or args.max_widenings < 0:
        parser.error("--seeds and --trials must be at least 1, --max-widenings at least 0")
    if args.frame_dir and (args.home or args.frame):
        parser.error("--frame-dir reads the exported frame; it takes no --home or --frame")
    if not (args.export or args.from_results):
        try:
            training_device(args.device)
        except ValueError as error:
            parser.error(f"--device: {error}")
    return args


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    # tuning trains ours on the train split alone: its "no holdout rows" warning is expected
    logging.getLogger("models.ranking.train").setLevel(logging.ERROR)
    if args.export:
        export_frame(_settings(args.home), args.frame, args.export)
        print(f"wrote {args.export / FRAME_FILE} and {args.export / INPUTS_FILE}")
        return
    if args.from_results:
        outcome = read_results(args.from_results)
        outcome.setup["resamples"] = args.resamples or outcome.setup["resamples"]
        print(_header(outcome.setup))
    else:
        outcome = benchmark(args)
    summaries = summarise(outcome.results, outcome.setup["resamples"])
    report = report_of(outcome, summaries)
    print(report)
    print(f"\n{_footer(outcome.setup)}")
    if args.results_json:
        write_results(outcome, args.results_json)
        print(f"results: {args.results_json}")
    if not args.no_mlflow:
        log_to_mlflow(args.mlflow_uri, _settings(args.home), outcome, summaries, report)


def log_to_mlflow(mlflow_uri: str | None, settings: VidrecSettings, outcome: Outcome, summaries: dict[str, Summary],
                  report: str) -> None:
    import mlflow

    setup = outcome.setup
    mlflow.set_tracking_uri(mlflow_uri or settings.mlflow_tracking_uri)
    mlflow.set_experiment(experiment_id=_experiment_id("vidrec-benchmarks", _artifact_location(mlflow_uri, settings)))
    with mlflow.start_run(run_name=f"ranking-{setup['dataset']}"):
        mlflow.log_params({"dataset": setup["dataset"], "home": setup["source"][:250], "threads": setup["threads"],
                           "device": setup["device"], "seeds": len(setup["seeds"]), "trials": setup["trials"],
                           "max_widenings": setup["max_widenings"], "resamples": setup["resamples"],
                           "models": ",".join(setup["models"])[:250]})
        mlflow.set_tag("holdout_touches", "; ".join(
            f"{touch['model']} seed {touch['seed']} {json.dumps(touch['params'])}" for touch in outcome.touches)[:5000])
        mlflow.log_dict(outcome.touches, "holdout_configurations.json")
        mlflow.log_dict([{"model": model, "rounds": tuning.rounds, "widened": tuning.widened,
                          "trials": _records(tuning.trials)} for model, tuning in outcome.tunings.items()],
                        "tuning_trials.json")
        for scored in outcome.results:
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
        mlflow.log_metric("score_500_rows_ms", setup["latency_ms"])
        mlflow.log_text(report + "\n", "ranking_benchmark.md")
        ours = next(scored for scored in outcome.results if scored.model == OURS)
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
