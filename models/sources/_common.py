"""What every source shares: checked inputs, the exclusion-aware top-k, and the on-disk format.

A source is saved as two files in a directory: `<name>.json` (its config and the `now` it was
fitted at) and `<name>.npz` (numeric arrays only, loaded with `allow_pickle=False`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models import safe_loading

NANOSECONDS_PER_DAY = 86_400 * 10**9


def require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; expected at least {list(columns)}")


def as_timestamp(now: pd.Timestamp | str) -> pd.Timestamp:
    """`now` is the data's end time (never wall-clock): timezone-naive UTC, like the raw logs."""
    timestamp = pd.Timestamp(now)
    if timestamp.tzinfo is not None:
        raise ValueError(f"now must be timezone-naive UTC like the raw logs, got {timestamp!r}")
    return timestamp


def days_before(times: pd.Series, now: pd.Timestamp) -> np.ndarray:
    """Age in days of each timestamp at `now` (negative for timestamps after it)."""
    nanoseconds = now.value - pd.to_datetime(times).to_numpy("datetime64[ns]").astype(np.int64)
    return nanoseconds / NANOSECONDS_PER_DAY


def take_top(
    ranked: Iterable[tuple[int, float]], exclude: set[int] | frozenset[int], k: int
) -> list[tuple[int, float]]:
    """The first `k` (video_id, score) pairs of an already-ranked iterable whose id is not excluded."""
    picked: list[tuple[int, float]] = []
    if k < 1:
        return picked
    for video, score in ranked:
        if video in exclude:
            continue
        picked.append((video, score))
        if len(picked) == k:
            break
    return picked


def save_arrays(
    directory: str | Path, name: str, config: dict, now: pd.Timestamp, arrays: dict[str, np.ndarray]
) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps({"config": config, "now": now.isoformat()}, indent=2))
    np.savez(directory / f"{name}.npz", **arrays)


def load_arrays(directory: str | Path, name: str) -> tuple[dict, pd.Timestamp, dict[str, np.ndarray]]:
    directory = Path(directory)
    meta_path, arrays_path = directory / f"{name}.json", directory / f"{name}.npz"
    if not meta_path.exists() or not arrays_path.exists():
        raise FileNotFoundError(f"{directory} holds no saved '{name}' source (expected {name}.json and {name}.npz)")
    meta = json.loads(meta_path.read_text())
    return meta["config"], pd.Timestamp(meta["now"]), safe_loading.load_arrays(arrays_path)


def split_by_offsets(keys: np.ndarray, offsets: np.ndarray, *columns: np.ndarray) -> dict[int, tuple[list, ...]]:
    """CSR arrays → {key: (column slice as a Python list, ...)}, so requests touch no numpy."""
    return {
        int(key): tuple(column[offsets[row]:offsets[row + 1]].tolist() for column in columns)
        for row, key in enumerate(keys.tolist())
    }


def group_offsets(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys of a key-sorted array and the CSR offsets (len = unique + 1) of their runs."""
    keys, starts = np.unique(sorted_keys, return_index=True)
    return keys.astype(np.int64), np.append(starts, len(sorted_keys)).astype(np.int64)
