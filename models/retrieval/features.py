"""Turn example and catalog frames into the padded index tensors the towers read.

Training and serving both go through these functions, so a user seen at serving time is encoded
exactly like a training example. Lists are truncated to their most recent entries (the marts keep
them oldest first) and right-padded with 0, which the towers mask out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from models.retrieval.vocabulary import Vocabulary

# The user tower's query columns. models/retrieval/query.py builds them from the Feast service
# retrieval_user_features (its tests hold the two to the same set).
HISTORY_VIDEO_IDS = "history_video_ids"
HISTORY_SEARCH_TOKENS = "history_search_tokens"
USER_CATEGORICAL_FEATURES = ("country", "device", "age_bucket", "gender")
USER_COLUMNS = (HISTORY_VIDEO_IDS, HISTORY_SEARCH_TOKENS, *USER_CATEGORICAL_FEATURES)
EXAMPLE_AGE_DAYS = "example_age_days"  # optional: 0 ("now") when absent
CATALOG_COLUMNS = ("video_id", "creator_id", "category", "title_tokens")


@dataclass
class UserInputs:
    history: torch.Tensor  # (n, history_length) int64 video indices, 0 = padding
    search_tokens: torch.Tensor  # (n, max_search_tokens) int64
    categorical: torch.Tensor  # (n, 4) int64: country, device, age_bucket, gender
    example_age: torch.Tensor  # (n,) float32, example_age_days / scale

    def __len__(self) -> int:
        return self.history.shape[0]

    def select(self, rows: torch.Tensor | slice) -> UserInputs:
        return UserInputs(
            self.history[rows], self.search_tokens[rows], self.categorical[rows], self.example_age[rows]
        )

    def to(self, device: torch.device | str) -> UserInputs:
        return UserInputs(
            self.history.to(device), self.search_tokens.to(device), self.categorical.to(device),
            self.example_age.to(device),
        )


@dataclass
class VideoInputs:
    video: torch.Tensor  # (n,) int64 video-id index, 0 when never watched in training
    creator: torch.Tensor  # (n,) int64
    category: torch.Tensor  # (n,) int64
    title_tokens: torch.Tensor  # (n, max_title_tokens) int64

    def __len__(self) -> int:
        return self.video.shape[0]

    def select(self, rows: torch.Tensor | slice) -> VideoInputs:
        return VideoInputs(self.video[rows], self.creator[rows], self.category[rows], self.title_tokens[rows])

    def to(self, device: torch.device | str) -> VideoInputs:
        return VideoInputs(
            self.video.to(device), self.creator.to(device), self.category.to(device), self.title_tokens.to(device)
        )


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; expected at least {list(columns)}")


def as_lists(column: pd.Series) -> list[list]:
    """Parquet lists arrive as lists or numpy arrays; missing lists become empty ones."""
    return [[] if value is None or (isinstance(value, float) and np.isnan(value)) else list(value) for value in column]


def pad_sequences(lists: list[list], vocabulary: Vocabulary, length: int) -> np.ndarray:
    """(n, length) int64 indices of the last `length` items of each list, right-padded with 0."""
    kept = [items[-length:] if length else [] for items in lists]
    lengths = np.fromiter((len(items) for items in kept), dtype=np.int64, count=len(kept))
    padded = np.zeros((len(kept), length), dtype=np.int64)
    if lengths.sum() == 0:
        return padded
    flat = np.concatenate([np.asarray(items) for items in kept if items])
    codes = vocabulary.encode(flat if flat.dtype.kind in "iu" else flat.astype(object))
    rows = np.repeat(np.arange(len(kept)), lengths)
    columns = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    padded[rows, columns] = codes
    return padded


def encode_users(
    frame: pd.DataFrame,
    vocabularies: dict[str, Vocabulary],
    history_length: int,
    max_search_tokens: int,
    example_age_scale: float,
) -> UserInputs:
    """Encode user rows; `example_age_days` defaults to 0 ("now") when the column is absent."""
    require_columns(frame, USER_COLUMNS, "user frame")
    history = pad_sequences(as_lists(frame[HISTORY_VIDEO_IDS]), vocabularies["video"], history_length)
    tokens = pad_sequences(as_lists(frame[HISTORY_SEARCH_TOKENS]), vocabularies["search_token"], max_search_tokens)
    categorical = np.stack(
        [vocabularies[name].encode(frame[name].tolist()) for name in USER_CATEGORICAL_FEATURES], axis=1
    ).reshape(len(frame), len(USER_CATEGORICAL_FEATURES))
    if EXAMPLE_AGE_DAYS in frame.columns:
        example_age = frame[EXAMPLE_AGE_DAYS].fillna(0.0).to_numpy(np.float32) / example_age_scale
    else:
        example_age = np.zeros(len(frame), dtype=np.float32)
    return UserInputs(
        torch.from_numpy(history),
        torch.from_numpy(tokens),
        torch.from_numpy(categorical),
        torch.from_numpy(example_age.astype(np.float32)),
    )


def encode_videos(catalog: pd.DataFrame, vocabularies: dict[str, Vocabulary], max_title_tokens: int) -> VideoInputs:
    require_columns(catalog, CATALOG_COLUMNS, "catalog")
    return VideoInputs(
        torch.from_numpy(vocabularies["video"].encode(catalog["video_id"].to_numpy(np.int64))),
        torch.from_numpy(vocabularies["creator"].encode(catalog["creator_id"].tolist())),
        torch.from_numpy(vocabularies["category"].encode(catalog["category"].tolist())),
        torch.from_numpy(
            pad_sequences(as_lists(catalog["title_tokens"]), vocabularies["title_token"], max_title_tokens)
        ),
    )
