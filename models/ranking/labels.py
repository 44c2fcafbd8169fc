"""Labels and weights of the ranker's heads, from the ranking frame's outcome columns.

Every head's weight includes `example_weight` (negative down-sampling correction), so losses,
calibration and metrics estimate the full impression log.

- `watch_time`: label `clicked`; a positive weighs its watch seconds, a negative 1 (Covington et
  al.'s weighted logistic regression: e^f ≈ expected watch seconds per impression). With
  `watch_time_weighted=False` every row weighs 1 (the equal-weight ablation).
- `click`: label `clicked`, P(click | impression).
- `like`: label `liked`, on every impression (not only clicked ones): P(like | impression), so it
  composes with the others per impression and calibrates against the full log without a
  conditional base rate. A like needs a click, so this is P(click) · P(like | click).
- `skip`: a short watch, P(skip | impression): clicked and (watch_seconds < skip_watch_fraction ×
  duration_seconds, or watch_seconds < skip_watch_seconds). Without `duration_seconds` only the
  seconds threshold applies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.ranking.config import RankerConfig

EXAMPLE_WEIGHT_COLUMN = "example_weight"
LABEL_COLUMNS = {"watch_time": ("clicked", "watch_seconds"), "click": ("clicked",), "like": ("liked",),
                 "skip": ("clicked", "watch_seconds")}


def example_weights(frame: pd.DataFrame) -> np.ndarray:
    """Per-row weights that undo negative down-sampling (`example_weight` column; 1 when absent).

    A frame that keeps every click but only a share r of non-clicks gives each kept non-click the
    weight 1/r, so losses and metrics estimate what the full impression log would give.
    """
    if EXAMPLE_WEIGHT_COLUMN not in frame.columns:
        return np.ones(len(frame))
    weights = frame[EXAMPLE_WEIGHT_COLUMN].fillna(1.0).to_numpy(np.float64)
    if np.any(weights <= 0):
        raise ValueError(f"{EXAMPLE_WEIGHT_COLUMN} must be positive, found minimum {weights.min()}")
    return weights


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].fillna(False).astype(bool).to_numpy()


def _watch_seconds(frame: pd.DataFrame) -> np.ndarray:
    watch_seconds = frame["watch_seconds"].fillna(0.0).to_numpy(np.float64)
    if np.any(watch_seconds < 0):
        raise ValueError(f"watch_seconds must be non-negative, found minimum {watch_seconds.min()}")
    return watch_seconds


def watch_time_labels(frame: pd.DataFrame, weighted: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(clicked float64 0/1, weight float64): positives weigh their watch seconds, negatives 1,
    each times its `example_weight`."""
    clicked = _flag(frame, "clicked")
    base = np.where(clicked, _watch_seconds(frame), 1.0) if weighted else np.ones(len(frame))
    return clicked.astype(np.float64), base * example_weights(frame)


def skip_labels(frame: pd.DataFrame, config: RankerConfig) -> np.ndarray:
    watch_seconds = _watch_seconds(frame)
    short = watch_seconds < config.skip_watch_seconds
    if "duration_seconds" in frame.columns:
        duration = frame["duration_seconds"].to_numpy(np.float64, na_value=np.nan)
        short |= np.nan_to_num(watch_seconds / duration, nan=1.0) < config.skip_watch_fraction
    return _flag(frame, "clicked") & short


def head_labels(frame: pd.DataFrame, config: RankerConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Head → (labels float64 0/1, weights float64) for every head in `config.heads`."""
    missing = sorted({column for head in config.heads for column in LABEL_COLUMNS[head]} - set(frame.columns))
    if missing:
        raise ValueError(f"ranking frame lacks label columns {missing} needed by heads {config.heads}")
    weights = example_weights(frame)
    labels = {}
    for head in config.heads:
        if head == "watch_time":
            labels[head] = watch_time_labels(frame, config.watch_time_weighted)
        elif head == "click":
            labels[head] = (_flag(frame, "clicked").astype(np.float64), weights)
        elif head == "like":
            labels[head] = (_flag(frame, "liked").astype(np.float64), weights)
        else:
            labels[head] = (skip_labels(frame, config).astype(np.float64), weights)
    return labels


def request_groups(frame: pd.DataFrame) -> np.ndarray:
    """The unit of one ranked list: `request_id`, else user × calendar day of the impression,
    else the user, else the whole frame."""
    if "request_id" in frame.columns:
        return frame["request_id"].astype(str).to_numpy()
    if "user_id" not in frame.columns:
        return np.zeros(len(frame), dtype=np.int64)
    if "event_timestamp" not in frame.columns:
        return frame["user_id"].to_numpy()
    day = pd.to_datetime(frame["event_timestamp"]).dt.strftime("%Y-%m-%d")
    return (frame["user_id"].astype(str) + "@" + day).to_numpy()
