"""The frame the ranking benchmark runs on: the pipeline's ranking frame with the train-click
features added (what the baselines and our ranker see beyond the feature service), and the
ranker config over the feature service's inputs plus those features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from models.ranking.config import RankerConfig

TRAIN_CLICK_FEATURES = ("candidate_train_clickers", "history_cowatch_count", "history_cowatch_share")
CLICK_SETTLES_AFTER = pd.Timedelta(hours=1)  # a click is a watch within 30 min of its impression


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


def benchmark_frame(frame: pd.DataFrame, inputs: dict[str, list[str]]) -> tuple[pd.DataFrame, RankerConfig]:
    """`frame` with the train-click features, and the ranker config the pipeline trains on
    `inputs` (the feature service's columns by kind, `ranking_data.INPUT_KINDS`) with those
    features added. Epochs are a tuned hyper-parameter here, every one of them run (no early
    stopping), as when docs/benchmarks.md's tables were made."""
    config = RankerConfig(categorical_features=list(inputs["categorical"]),
                          numeric_features=[*inputs["numeric"], *TRAIN_CLICK_FEATURES],
                          bag_features=list(inputs["lists"]), show_progress=False,
                          early_stopping_patience=None)
    bag = next(iter(inputs["lists"]), "recent_watch_video_ids")
    return pd.concat([frame, train_click_features(frame, config.max_bag_length, bag)], axis=1), config
