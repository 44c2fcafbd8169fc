"""The ranker's cross features: what this user did with this video, its creator and its category.

The paper's strongest ranking signals are the user's own past interaction with the candidate
(Covington et al. 2016, §4.1). They are per (user, candidate) pair, so storing them per pair
would mean one online-store read per candidate; instead the store keeps the user's recent
engagement log once per request (`user_engagement_history` mart, Feast view
`request_engagement`), and this module turns that log plus the
request into per-candidate features. It is the `candidate_engagement` on-demand feature view's
transformation, run on point-in-time-joined logs in training (`feature_repo.training_frames`) and
on the online logs at serving, so the computation exists once.

Counts and recencies are over the log's window (the last `history_length` watches and the last
`impression_history_length` impressions), not over the user's lifetime. A recency is NaN when
the log has no such watch: the ranker's preprocessing turns NaN into its missing indicator.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0

# Inputs (feature view features and request data) and outputs, by name. The logs are JSON objects
# of parallel lists (see the user_engagement_history mart for why JSON):
#   watch_log      {"video_ids", "creator_ids", "categories", "unix_seconds", "fractions"}
#   impression_log {"video_ids", "unix_seconds"}
WATCH_LOG = "watch_log"
IMPRESSION_LOG = "impression_log"
CANDIDATE_COLUMNS = ("creator_id", "category")
REQUEST_TIME = "request_unix_seconds"
RETRIEVAL_SOURCE = "retrieval_source"
RETRIEVAL_SOURCE_SCORE = "retrieval_source_score"

COUNT_FEATURES = (
    "user_video_watches",
    "user_video_unclicked_impressions",
    "user_creator_watches",
    "user_category_watches",
)
DAYS_SINCE_FEATURES = (
    "user_video_days_since_watch",
    "user_creator_days_since_watch",
    "user_category_days_since_watch",
)
FRACTION_FEATURES = ("user_creator_watch_fraction", "user_category_watch_fraction")
CANDIDATE_SOURCE = "candidate_source"
CANDIDATE_SOURCE_SCORE = "candidate_source_score"
# Outputs copied from the request data (no stored input behind them).
REQUEST_PASSTHROUGH_FEATURES = (CANDIDATE_SOURCE, CANDIDATE_SOURCE_SCORE)


class _EngagementSummary:
    """One user's log folded into lookups: (count, last time, summed fraction) per key.

    Built once per distinct log, so the few hundred candidates of one request share one summary.
    Keys are compared as Python values: ints, numpy ints and integral floats of one id hash alike.
    """

    def __init__(self, watch_log: object, impression_log: object):
        watches = _parse_log(watch_log, WATCH_LOG)
        impressions = _parse_log(impression_log, IMPRESSION_LOG)
        times = watches.get("unix_seconds", [])
        fractions = watches.get("fractions", [])
        self.by_video = _fold(watches.get("video_ids", []), times, fractions)
        self.by_creator = _fold(watches.get("creator_ids", []), times, fractions)
        self.by_category = _fold(watches.get("categories", []), times, fractions)
        # Churn: per shown video, the impressions after the user's last watch of it (all, if never).
        self.unclicked_impressions: dict[object, int] = {}
        for video, shown_at in zip(impressions.get("video_ids", []), impressions.get("unix_seconds", []), strict=False):
            if _number(shown_at) > self.by_video.get(video, _NEVER_WATCHED)[1]:
                self.unclicked_impressions[video] = self.unclicked_impressions.get(video, 0) + 1


def candidate_engagement_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """Per-candidate cross features from the user's engagement log and the request.

    `inputs` has one row per (user, candidate): the `watch_log` and `impression_log` of the
    user's `user_engagement_history` row, the candidate's `video_id`, `creator_id` and
    `category`, and the request data `request_unix_seconds`, `retrieval_source` and
    `retrieval_source_score`. Each distinct log is parsed and folded once, however many
    candidates (or training examples) share it; `one_user_engagement` computes each group.
    """
    missing = [
        column
        for column in (WATCH_LOG, IMPRESSION_LOG, *CANDIDATE_COLUMNS, REQUEST_TIME)
        if column not in inputs.columns
    ]
    if missing:
        raise ValueError(f"candidate_engagement needs columns {missing}; got {list(inputs.columns)}")
    size = len(inputs)
    outputs: dict[str, np.ndarray] = {
        **{name: np.zeros(size, dtype=np.int64) for name in COUNT_FEATURES},
        **{name: np.full(size, np.nan) for name in (*DAYS_SINCE_FEATURES, *FRACTION_FEATURES)},
    }
    videos = inputs["video_id"].to_numpy(object) if "video_id" in inputs.columns else np.full(size, None)
    creators = inputs["creator_id"].to_numpy(object)
    categories = inputs["category"].to_numpy(object)
    request_times = _floats(inputs[REQUEST_TIME].to_numpy())
    watch_logs = inputs[WATCH_LOG].to_numpy(object)
    impression_logs = inputs[IMPRESSION_LOG].to_numpy(object)
    for first_row, rows in _rows_by_log(watch_logs, impression_logs).items():
        group = one_user_engagement(
            watch_logs[first_row], impression_logs[first_row], videos[rows], creators[rows], categories[rows],
            request_times[rows],
        )
        for name, values in group.items():
            outputs[name][rows] = values
    sources = inputs[RETRIEVAL_SOURCE].to_numpy(object) if RETRIEVAL_SOURCE in inputs.columns else np.full(size, None)
    scores = (
        _floats(inputs[RETRIEVAL_SOURCE_SCORE].to_numpy()) if RETRIEVAL_SOURCE_SCORE in inputs.columns
        else np.full(size, np.nan)
    )
    return pd.DataFrame(
        {**outputs, CANDIDATE_SOURCE: np.where(pd.isna(sources), None, sources), CANDIDATE_SOURCE_SCORE: scores},
        index=inputs.index,
    )


def one_user_engagement(
    watch_log: object,
    impression_log: object,
    videos: Sequence,
    creators: Sequence,
    categories: Sequence,
    request_times: np.ndarray | float,
) -> dict[str, np.ndarray]:
    """The count, recency and fraction features (every output but the passthroughs) of candidates
    that share one user's logs, column by column.

    The one computation behind the `candidate_engagement` view: its pandas transformation calls
    this per distinct log (training, Feast's own serving), and the request path calls it
    directly with numpy columns, where building DataFrames around it cost more than the
    features themselves (`serving.online_features`).
    """
    summary = _EngagementSummary(watch_log, impression_log)
    videos = _keys(videos)
    outputs: dict[str, np.ndarray] = {}
    for prefix, keys, lookup in (
        ("user_video", videos, summary.by_video),
        ("user_creator", _keys(creators), summary.by_creator),
        ("user_category", _keys(categories), summary.by_category),
    ):
        folded = np.array([lookup.get(key, _NEVER_WATCHED) for key in keys], dtype=float).reshape(-1, 3)
        watched = folded[:, 0]
        outputs[f"{prefix}_watches"] = watched.astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            outputs[f"{prefix}_days_since_watch"] = np.where(
                watched > 0, np.maximum(request_times - folded[:, 1], 0.0) / SECONDS_PER_DAY, np.nan
            )
            if f"{prefix}_watch_fraction" in FRACTION_FEATURES:
                outputs[f"{prefix}_watch_fraction"] = np.where(watched > 0, folded[:, 2] / watched, np.nan)
    churn = summary.unclicked_impressions
    outputs["user_video_unclicked_impressions"] = np.array([churn.get(video, 0) for video in videos], dtype=np.int64)
    return outputs


def watched_fractions(watch_log: object) -> tuple[np.ndarray, np.ndarray]:
    """(video ids, the largest fraction of each the user watched) over a watch log; empty
    arrays for a missing log. Serving's policy drops videos watched nearly to the end."""
    watches = _parse_log(watch_log, WATCH_LOG)
    videos = np.asarray(watches.get("video_ids", []), dtype=np.int64)
    fractions = np.asarray([_number(value) for value in watches.get("fractions", [])], dtype=np.float64)
    if len(videos) == 0 or len(fractions) != len(videos):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    order = np.lexsort((-np.nan_to_num(fractions, nan=-1.0), videos))  # per video, the largest fraction first
    first = np.ones(len(order), dtype=bool)
    first[1:] = videos[order][1:] != videos[order][:-1]
    return videos[order][first], np.nan_to_num(fractions[order][first], nan=0.0)


def _keys(values: Sequence) -> list:
    """Candidate keys as plain Python values (numpy ints hash like the logs' ints, but a list of
    Python ints is looked up faster)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _floats(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "iuf":
        return values.astype(float, copy=False)
    return pd.to_numeric(pd.Series(values, copy=False), errors="coerce").to_numpy(float)


_NEVER_WATCHED = (0, -math.inf, 0.0)


def _rows_by_log(watch_logs: np.ndarray, impression_logs: np.ndarray) -> dict[int, np.ndarray]:
    """Row positions grouped by the (watch log, impression log) they carry, keyed by the first row."""
    if len(watch_logs) and _all_equal(watch_logs) and _all_equal(impression_logs):
        # serving: one request's candidates share one user's logs
        return {0: np.arange(len(watch_logs))}
    watch_codes, _ = pd.factorize(watch_logs, use_na_sentinel=False)
    impression_codes, distinct_impression_logs = pd.factorize(impression_logs, use_na_sentinel=False)
    group = watch_codes * (len(distinct_impression_logs) + 1) + impression_codes
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    return {int(rows[0]): rows for rows in np.split(order, bounds) if len(rows)}


def _all_equal(logs: np.ndarray) -> bool:
    """Every cell is the first one (the same object, or equal text; None equals None)."""
    first = logs[0]
    return all(log is first or log == first for log in logs)


def _fold(keys: Sequence, times: Sequence, fractions: Sequence) -> dict[object, tuple[int, float, float]]:
    """key → (watches, latest watch time, summed watched fraction) over the log."""
    folded: dict[object, tuple[int, float, float]] = {}
    for key, watched_at, fraction in zip(keys, times, fractions, strict=False):
        count, last_time, fraction_sum = folded.get(key, _NEVER_WATCHED)
        fraction = _number(fraction)
        folded[key] = (
            count + 1,
            max(last_time, _number(watched_at)),
            fraction_sum + (0.0 if math.isnan(fraction) else fraction),
        )
    return folded


def _parse_log(log: object, name: str) -> dict[str, list]:
    """A log cell as a dict of lists; a missing log (the user has no history yet) is empty.

    Text that is not a JSON object also reads as empty, logged: Feast probes the transformation
    with placeholder strings when it registers the view. Real logs come from the
    user_engagement_history mart, whose dbt test (`parallel_json_lists`) rejects malformed ones.
    """
    if log is None or (isinstance(log, float) and math.isnan(log)) or log == "":
        return {}
    try:
        parsed = json.loads(log)
    except (TypeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        logger.debug("%s %r is not a JSON object of lists: read as an empty log", name, str(log)[:80])
        return {}
    return parsed


def _number(value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
