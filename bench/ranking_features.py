"""The frame the ranking benchmark runs on: the pipeline's ranking frame with the train-click
features added (what the baselines and our ranker see beyond the feature service), and the
ranker config over the feature service's inputs plus those features.

Two kinds of train-click features, both from the frame's train-split clicks that settled before
the row's UTC day began (a row's own label never counts):
- counts (`TRAIN_CLICK_FEATURES`): the candidate's clickers, and its co-clicks with the user's
  recent-watch bag;
- click factors (`click_factor_features`; `benchmark_frame(click_factors=True)`, which
  bench/ranking.py and bench/ranking_variants.py ask for unless `--no-click-factors`): a low-rank
  factorization of who clicked what, refit per day. Why: the ground-truth ceilings
  (bench/ranking_ceiling.py) put most of the models' distance from what simulated data allows in
  the latent user × video match, which the counts hardly describe (on the default world's
  validation rows the three correlate 0.04 to 0.07 with it, the factor score 0.15).
  Factorizing the click matrix is the classic way to recover such a match from logs (PureSVD:
  Cremonesi et al., 2010).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.ranking.config import RankerConfig

TRAIN_CLICK_FEATURES = ("candidate_train_clickers", "history_cowatch_count", "history_cowatch_share")
CLICK_SETTLES_AFTER = pd.Timedelta(hours=1)  # a click is a watch within 30 min of its impression


def _row_days(frame: pd.DataFrame) -> np.ndarray:
    return pd.to_datetime(frame["event_timestamp"], utc=True).dt.floor("D").to_numpy()


@dataclass(frozen=True)
class _TrainClicks:
    """The frame's train-split clicks, indexed so that the users × videos matrix of those known
    on a day is one call: the one rule (settled before the day began) every train-click feature
    shares."""

    settled_day: np.ndarray  # per click: the UTC day its settling time falls in
    users: np.ndarray  # distinct user ids; a click's matrix row is its index here
    rows: np.ndarray
    videos: np.ndarray  # distinct video ids; a click's matrix column
    columns: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _TrainClicks:
        clicks = frame[(frame["split"] == "train") & frame["clicked"].fillna(False).astype(bool)]
        settled = (pd.to_datetime(clicks["event_timestamp"], utc=True) + CLICK_SETTLES_AFTER).dt.floor("D")
        videos, columns = np.unique(clicks["video_id"].to_numpy(np.int64), return_inverse=True)
        users, rows = np.unique(clicks["user_id"].to_numpy(), return_inverse=True)
        return cls(settled.to_numpy(), users, rows, videos, columns)

    def video_position(self) -> dict[int, int]:
        """Video id → its matrix column."""
        return {int(video): column for column, video in enumerate(self.videos)}

    def video_columns(self, video_ids, position: dict[int, int] | None = None) -> np.ndarray:
        """Each id's matrix column, -1 for a video with no train click."""
        position = self.video_position() if position is None else position
        return np.array([position.get(int(video), -1) for video in video_ids], dtype=np.int64)

    def known_before(self, day):
        """(users, videos) 0/1 CSR: who clicked what, of the clicks settled before `day` began;
        a repeat click counts once."""
        from scipy import sparse

        known = self.settled_day < day
        clicked = sparse.csr_matrix((np.ones(known.sum()), (self.rows[known], self.columns[known])),
                                    shape=(len(self.users), len(self.videos)))
        clicked.data[:] = 1.0
        return clicked


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
    row_day = _row_days(frame)
    clicks = _TrainClicks.of(frame)
    position = clicks.video_position()
    candidates = clicks.video_columns(frame["video_id"], position)
    bags = _bag_matrix(frame, bag_column, position, candidates, max_bag_length)
    clickers, cowatch = np.zeros(len(frame)), np.zeros(len(frame))
    for day in np.unique(row_day):
        rows = np.flatnonzero((row_day == day) & (candidates >= 0))
        clicked = clicks.known_before(day)  # users, not clicks: a repeat click counts once
        together = (clicked.T @ clicked).tocsr()  # (videos, videos): users who clicked both
        clickers[rows] = together.diagonal()[candidates[rows]]
        cowatch[rows] = np.asarray(together[candidates[rows]].multiply(bags[rows]).sum(axis=1)).ravel()
    pairs = np.diff(bags.indptr) * clickers
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(pairs > 0, cowatch / pairs, np.nan)
    return pd.DataFrame({"candidate_train_clickers": clickers, "history_cowatch_count": cowatch,
                         "history_cowatch_share": share}, index=frame.index)


CLICK_FACTOR_RANK = 16  # fixed before any run: style (4 dims) plus category taste and popularity
CLICK_FACTOR_SCORE = "click_factor_score"


def factor_columns(rank: int = CLICK_FACTOR_RANK) -> tuple[list[str], list[str]]:
    """The user-factor and video-factor column names, `rank` of each."""
    return ([f"user_click_factor_{i}" for i in range(rank)], [f"video_click_factor_{i}" for i in range(rank)])


def _top_right_vectors(clicked, rank: int) -> np.ndarray:
    """(videos, rank): the top `rank` right singular vectors of `clicked`, zero columns where the
    matrix has fewer than `rank` nonzero singular values."""
    from scipy.sparse.linalg import svds

    videos = clicked.shape[1]
    usable = min(rank, min(clicked.shape) - 1)
    vectors = np.zeros((videos, rank))
    if clicked.nnz == 0 or usable < 1:
        return vectors
    _, values, right = svds(clicked, k=usable, random_state=0)
    order = np.argsort(values)[::-1]
    vectors[:, :usable] = right[order].T * (values[order] > 1e-9)
    return vectors


def _aligned(vectors: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """`vectors` rotated (orthogonal Procrustes) to lie closest to `previous` (unrotated when there
    is none yet)."""
    if previous is None or not previous.any():
        return vectors
    left, _, right = np.linalg.svd(vectors.T @ previous)
    return vectors @ (left @ right)


def click_factor_features(frame: pd.DataFrame, rank: int = CLICK_FACTOR_RANK) -> pd.DataFrame:
    """`click_factor_score` and the `rank`-wide user and video factors per row of `frame` (indexed
    like it); NaN score and zero factors where the user or the candidate has no known click.

    Per UTC day d of the frame, from the train-split clicks that settled before d began: X, the
    users × videos 0/1 matrix of those clicks, and its top `rank` right singular vectors V. The
    user's factor is x_u V (their clicks projected on the factors), the candidate's V[c], and the
    score their dot product x_u V V[c]ᵀ, PureSVD's score of the candidate.

    Every model gets all three. A linear model or a tree can use the score; the ranker's DCN-v2
    cross layers can also weigh the factors' products one by one, which a number does not allow.
    For the factors to mean the same thing on every day, each day's V is rotated onto the day
    before's (orthogonal Procrustes): the rotation uses nothing later than the day it aligns, and
    leaves the score unchanged."""
    user_columns, video_columns = factor_columns(rank)
    row_day = _row_days(frame)
    clicks = _TrainClicks.of(frame)
    user_position = {user: row for row, user in enumerate(clicks.users)}
    candidates = clicks.video_columns(frame["video_id"])
    row_users = np.array([user_position.get(user, -1) for user in frame["user_id"]], dtype=np.int64)
    user_factors, video_factors = np.zeros((len(frame), rank)), np.zeros((len(frame), rank))
    score = np.full(len(frame), np.nan)
    previous = None
    for day in np.unique(row_day):
        clicked = clicks.known_before(day)
        vectors = _aligned(_top_right_vectors(clicked, rank), previous)
        previous = vectors
        rows = np.flatnonzero(row_day == day)
        with_user, with_video = rows[row_users[rows] >= 0], rows[candidates[rows] >= 0]
        user_factors[with_user] = clicked[row_users[with_user]] @ vectors
        video_factors[with_video] = vectors[candidates[with_video]]
        clicks_known = np.asarray(clicked.sum(axis=1)).ravel()
        scored = rows[(row_users[rows] >= 0) & (candidates[rows] >= 0)]
        scored = scored[(clicks_known[row_users[scored]] > 0)
                        & (np.abs(video_factors[scored]).sum(axis=1) > 0)]
        score[scored] = np.einsum("ik,ik->i", user_factors[scored], video_factors[scored])
    columns = {CLICK_FACTOR_SCORE: score}
    columns.update(zip(user_columns, user_factors.T, strict=True))
    columns.update(zip(video_columns, video_factors.T, strict=True))
    return pd.DataFrame(columns, index=frame.index)


def benchmark_frame(frame: pd.DataFrame, inputs: dict[str, list[str]],
                    click_factors: bool = False) -> tuple[pd.DataFrame, RankerConfig]:
    """`frame` with the train-click features (and, with `click_factors`, the click factors), and
    the ranker config the pipeline trains on `inputs` (the feature service's columns by kind,
    `ranking_data.INPUT_KINDS`) with those features added. Epochs are a tuned hyper-parameter
    here, every one of them run (no early stopping), as when docs/benchmarks.md's tables were made."""
    user_factors, video_factors = factor_columns()
    factor_names = [CLICK_FACTOR_SCORE, *user_factors, *video_factors] if click_factors else []
    config = RankerConfig(categorical_features=list(inputs["categorical"]),
                          numeric_features=[*inputs["numeric"], *TRAIN_CLICK_FEATURES, *factor_names],
                          bag_features=list(inputs["lists"]), show_progress=False,
                          early_stopping_patience=None)
    bag = next(iter(inputs["lists"]), "recent_watch_video_ids")
    added = [train_click_features(frame, config.max_bag_length, bag)]
    if click_factors:
        added.append(click_factor_features(frame))
    return pd.concat([frame, *added], axis=1), config
