"""Token ↔ index maps for embedding tables, saved with every model that uses them.

Index 0 is reserved for "unknown or padding": anything below `min_count` at build time, anything
new at serving time, `None` and padding all map to 0, and the embedding tables use
`padding_idx=0`, so they contribute a zero vector (and are left out of averages). Serving must
load the exact vocabulary training built, or every index shifts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

OOV_INDEX = 0


# Up to this many values are looked up one by one (same answers as the vectorised path).
SMALL_INPUT = 64


class Vocabulary:
    def __init__(self, tokens: Sequence[Hashable]):
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens: list[Hashable] = list(tokens)  # tokens[i] has index i + 1
        self._index = pd.Index(self.tokens, dtype=object)
        # one token at a time (a request's user features): a dict beats building an Index
        self._positions = {token: position for position, token in enumerate(self.tokens, start=1)}
        self._by_id = _id_table(self.tokens)

    @classmethod
    def build(cls, values: Iterable[Hashable], min_count: int = 1) -> Vocabulary:
        """Keep values seen at least `min_count` times, most frequent first (ties by value)."""
        counts = Counter(value for value in values if not _is_missing(value))
        kept = [(token, count) for token, count in counts.items() if count >= min_count]
        kept.sort(key=lambda pair: (-pair[1], str(pair[0])))
        return cls([_plain(token) for token, _ in kept])

    def __len__(self) -> int:
        """Size of the embedding table: the tokens plus index 0."""
        return len(self.tokens) + 1

    def __contains__(self, token: Hashable) -> bool:
        return self.index(token) != OOV_INDEX

    def index(self, token: Hashable) -> int:
        if _is_missing(token):
            return OOV_INDEX
        try:
            return self._positions.get(_plain(token), OOV_INDEX)
        except TypeError:  # unhashable: never a token
            return OOV_INDEX

    @property
    def holds_ids(self) -> bool:
        """Every token is a non-negative int (video, creator, user ids): numeric arrays of ids
        are then encoded by one array lookup, see `encode`."""
        return self._by_id is not None

    def encode(self, values: Sequence[Hashable] | np.ndarray) -> np.ndarray:
        """Indices (int64) of `values`; unknown and missing values get 0."""
        if len(values) == 0:
            return np.zeros(0, dtype=np.int64)
        if self._by_id is not None and isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            return self._encode_ids(values)
        if len(values) <= SMALL_INPUT:  # a serving request's few values: dict lookups beat building an index query
            return np.fromiter((self.index(value) for value in values), dtype=np.int64, count=len(values))
        if isinstance(values, np.ndarray):
            # Fast path: pandas hashes 7, 7.0 and np.int64(7) alike, and NaN/None match nothing.
            array = values if values.dtype.kind in "iu" else values.astype(object)
        else:
            array = np.empty(len(values), dtype=object)
            array[:] = [_plain(value) for value in values]
        positions = self._index.get_indexer(array)  # -1 when unknown
        return (positions + 1).astype(np.int64)

    def _encode_ids(self, values: np.ndarray) -> np.ndarray:
        """Numeric ids through the id table: a request's 500 candidate ids cost microseconds,
        not a hash lookup each. Same answers as the token lookup: 7.0 is the id 7, NaN, fractions
        and ids outside the table are unknown."""
        if values.dtype.kind == "f":
            whole = np.isfinite(values) & (values == np.floor(values))
            ids = np.where(whole, values, -1).astype(np.int64)
        else:
            ids = values.astype(np.int64, copy=False)
        table = self._by_id
        inside = (ids >= 0) & (ids < len(table))
        codes = np.zeros(len(ids), dtype=np.int64)
        codes[inside] = table[ids[inside]]
        return codes

    def to_dict(self) -> dict:
        return {"tokens": self.tokens}

    @classmethod
    def from_dict(cls, payload: dict) -> Vocabulary:
        return cls(payload["tokens"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls.from_dict(json.loads(Path(path).read_text()))


ID_TABLE_LIMIT = 1 << 24  # ids up to 16M get a dense table (128 MiB at most); larger ids use the hash path


def _id_table(tokens: list[Hashable]) -> np.ndarray | None:
    """index by id (0 where the id is no token) when every token is a non-negative int below
    ID_TABLE_LIMIT, else None."""
    if not tokens or not all(type(token) is int for token in tokens):
        return None
    ids = np.asarray(tokens, dtype=np.int64)
    if ids.min() < 0 or ids.max() >= ID_TABLE_LIMIT:
        return None
    table = np.zeros(int(ids.max()) + 1, dtype=np.int64)
    table[ids] = np.arange(1, len(ids) + 1)
    return table


def _is_missing(value: Hashable) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _plain(value: Hashable) -> Hashable:
    """numpy scalars → Python scalars, so 7, np.int64(7) and (JSON-loaded) 7 are one token."""
    if _is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
