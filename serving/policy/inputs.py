"""What the policy is given per request: the ranked candidates and what it knows of the user.

Parallel numpy arrays rather than one object per candidate: a request re-ranks ~500 candidates
within a budget of a few hundred µs, and every rule is a vectorised mask over these columns.
Construction converts and checks lengths only (cheap); the columns are not copied when they are
already arrays of the right dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNKNOWN_VIDEO = -1  # in `because_video_ids`: the source did not say which watched video led here


def as_column(
    values: object, dtype: type | None, name: str, length: int | None = None, per: str = "video_id"
) -> np.ndarray:
    """`values` as a 1-d array (of `dtype` when given), its length checked against `length`."""
    column = np.asarray(values, dtype=dtype)
    if column.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {column.shape}")
    if length is not None and len(column) != length:
        raise ValueError(f"{name} has {len(column)} entries, expected {length} (one per {per})")
    return column


def dense_codes(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes 0..C-1 for the values of two arrays on one shared scale, and C."""
    values, codes = np.unique(np.concatenate([left, right]), return_inverse=True)
    return codes[: len(left)], codes[len(left):], len(values)


def as_embeddings(values: object | None, name: str, length: int) -> np.ndarray | None:
    if values is None:
        return None
    embeddings = np.asarray(values, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) != length:
        raise ValueError(f"{name} must have shape ({length}, dim), got {embeddings.shape}")
    return embeddings


@dataclass(frozen=True)
class RankedCandidates:
    """One request's candidates after ranking, one entry per video in every column.

    `categories` may hold ints (fastest) or strings. `sources` is the retrieval source that
    nominated each video (models.sources.SOURCE_PRIORITY names) and `source_scores` its rank
    score. `because_video_ids` names, for item-to-item sources, the watched video that nominated
    the candidate (`UNKNOWN_VIDEO` where not known). `embeddings` (n, dim) are only read when the
    policy's diversity similarity is "embedding".
    """

    video_ids: np.ndarray
    scores: np.ndarray  # the ranker's final score; higher is better, any scale
    creator_ids: np.ndarray
    categories: np.ndarray
    upload_times: np.ndarray  # unix seconds
    sources: Sequence[str]
    source_scores: np.ndarray
    because_video_ids: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        video_ids = as_column(self.video_ids, np.int64, "video_ids")
        length = len(video_ids)
        columns = {
            "video_ids": video_ids,
            "scores": as_column(self.scores, np.float64, "scores", length),
            "creator_ids": as_column(self.creator_ids, np.int64, "creator_ids", length),
            "categories": as_column(self.categories, None, "categories", length),
            "upload_times": as_column(self.upload_times, np.float64, "upload_times", length),
            "source_scores": as_column(self.source_scores, np.float64, "source_scores", length),
            "because_video_ids": (
                np.full(length, UNKNOWN_VIDEO, dtype=np.int64)
                if self.because_video_ids is None
                else as_column(self.because_video_ids, np.int64, "because_video_ids", length)
            ),
            "embeddings": as_embeddings(self.embeddings, "embeddings", length),
        }
        if len(self.sources) != length:
            raise ValueError(f"sources has {len(self.sources)} entries, expected {length} (one per video_id)")
        if not np.isfinite(columns["scores"]).all():
            bad = int(np.flatnonzero(~np.isfinite(columns["scores"]))[0])
            raise ValueError(
                f"scores[{bad}] is {columns['scores'][bad]} (video {video_ids[bad]}); ranker scores must be finite"
            )
        for name, column in columns.items():
            object.__setattr__(self, name, column)

    def __len__(self) -> int:
        return len(self.video_ids)


@dataclass(frozen=True)
class UserContext:
    """What the policy knows of the user at request time.

    `watched_video_ids`/`watched_fractions`: the share of each watched video's duration the user
    watched (the most they ever did); videos past the policy's threshold are dropped.
    """

    request_time: float  # unix seconds; "fresh" is measured back from here
    subscribed_creator_ids: np.ndarray | Sequence[int] = ()
    watched_video_ids: np.ndarray | Sequence[int] = ()
    watched_fractions: np.ndarray | Sequence[float] = ()

    def __post_init__(self) -> None:
        watched = as_column(self.watched_video_ids, np.int64, "watched_video_ids")
        object.__setattr__(self, "watched_video_ids", watched)
        fractions = as_column(self.watched_fractions, np.float64, "watched_fractions", len(watched), "watched_video_id")
        object.__setattr__(self, "watched_fractions", fractions)
        object.__setattr__(
            self, "subscribed_creator_ids", as_column(self.subscribed_creator_ids, np.int64, "subscribed_creator_ids")
        )
