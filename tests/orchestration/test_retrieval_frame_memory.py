"""The retrieval training frame is built a run of whole users at a time (bounded memory), and the
chunked file is the frame the whole mart gives: same rows, order, columns and metadata."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import materialize

from orchestration.assets import features
from orchestration.assets.features import (
    RETRIEVAL_EXAMPLE_ORDER,
    _user_chunks,
    _write_retrieval_frame,
    retrieval_frame,
    retrieval_frame_path,
    retrieval_training_frame,
)
from orchestration.resources import VidrecResource
from tests.models.retrieval.user_feature_marts import history_row, profile_row, store_over_marts
from vidrec.marts import Mart, mart_path
from vidrec.settings import VidrecSettings

# User 1 never searched and has no profile: a chunk of user 1 alone has no value of the search
# tokens or the categoricals (Arrow would type them null). User 4's state lies beyond the ttl: a
# chunk of user 4 alone keeps no example.
HISTORIES = [
    history_row(1, datetime(2026, 1, 2, 10), [10], []),
    history_row(1, datetime(2026, 1, 2, 12), [10, 11], []),
    history_row(2, datetime(2026, 1, 2, 10), [20], []),
    history_row(2, datetime(2026, 1, 2, 11), [20], ["cat"]),
    history_row(2, datetime(2026, 1, 2, 12), [20, 21], ["cat"]),
    history_row(3, datetime(2026, 1, 2, 9), [30], ["dog", "park"]),
    history_row(4, datetime(2024, 12, 1), [40], []),
]
PROFILES = [profile_row(2, datetime(2026, 1, 2), country="FR"),
            profile_row(3, datetime(2026, 1, 2), country="US", gender=None),
            profile_row(4, datetime(2026, 1, 2), country="US")]
# (user, label video, label time, rolled-back history, search tokens, last watch, split), not in the frame's order
EXAMPLES = [
    (3, 31, "2026-01-02 10:00", [30], ["dog", "park"], "2026-01-02 09:00", "holdout"),
    (2, 22, "2026-01-02 13:00", [20, 21], ["cat"], "2026-01-02 12:00", "holdout"),
    (1, 12, "2026-01-02 13:00", [10, 11], [], "2026-01-02 12:00", "train"),
    (4, 41, "2026-01-02 09:00", [40], [], "2024-12-01 00:00", "train"),
    (2, 21, "2026-01-02 12:00", [20], ["cat"], "2026-01-02 10:00", "train"),
    (1, 11, "2026-01-02 12:00", [10], [], "2026-01-02 10:00", "train"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("frame_memory_home")
    store_over_marts(home, PROFILES, HISTORIES)
    return home


@pytest.fixture(scope="module")
def store(home):
    from feature_repo.store import feature_store

    return feature_store(VidrecSettings(home=home))


def write_mart(path: Path, rows=EXAMPLES) -> Path:
    """A retrieval_training_examples mart of `rows` (typed as dbt writes it)."""
    users, videos, times, histories, tokens, last, splits = zip(*rows)
    pd.DataFrame({
        "user_id": list(users),
        "label_video_id": list(videos),
        "label_time": pd.to_datetime(list(times)).astype("datetime64[us]"),
        "history_video_ids": [np.array(history, dtype=np.int64) for history in histories],
        "history_search_tokens": [np.array(words, dtype=object) for words in tokens],
        "history_last_watch_time": pd.to_datetime(list(last)).astype("datetime64[us]"),
        "example_age_days": [1.0 + 0.1 * position for position in range(len(rows))],
        "split": list(splits),
    }).to_parquet(path, index=False)
    return path


def whole_mart_frame(store, mart: Path, tmp_path: Path) -> pd.DataFrame:
    """The frame as the asset wrote it before chunks: the whole mart sorted, joined, `to_parquet`."""
    examples = pd.read_parquet(mart).sort_values(RETRIEVAL_EXAMPLE_ORDER, kind="stable").reset_index(drop=True)
    frame, _ = retrieval_frame(store, examples)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    return pd.read_parquet(tmp_path / "whole.parquet")


def test_chunks_are_runs_of_whole_users_in_user_order(tmp_path):
    mart = write_mart(tmp_path / "mart.parquet")
    assert _user_chunks(mart, 1) == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert _user_chunks(mart, 2) == [(1, 1), (2, 2), (3, 4)]  # users 1 and 2 have two examples each
    assert _user_chunks(mart, 3) == [(1, 2), (3, 4)]  # user 2's examples are never split off user 1's chunk
    assert _user_chunks(mart, 100) == [(1, 4)]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_the_chunked_frame_is_the_whole_marts_frame(store, tmp_path, chunk_rows):
    mart = write_mart(tmp_path / "mart.parquet")
    path = tmp_path / "frame.parquet"
    tally = _write_retrieval_frame(store, mart, path, chunk_rows)
    written = pd.read_parquet(path)
    pd.testing.assert_frame_equal(written, whole_mart_frame(store, mart, tmp_path))
    assert written[["user_id", "label_video_id"]].values.tolist() == [[1, 11], [1, 12], [2, 21], [2, 22], [3, 31]]
    assert written["history_search_tokens"].map(list).tolist() == [[], [], ["cat"], ["cat"], ["dog", "park"]]
    assert written["country"].tolist() == [None, None, "FR", "FR", "US"]
    assert (tally.rows, tally.users, tally.without_state) == (5, 3, 1)
    assert tally.split_counts() == {"train": 3, "holdout": 2}
    assert tally.chunks == len(_user_chunks(mart, chunk_rows))
    assert not list(tmp_path.glob(".*.partial"))


def test_a_mismatch_in_a_later_chunk_raises_and_keeps_the_previous_frame(store, tmp_path):
    path = tmp_path / "frame.parquet"
    _write_retrieval_frame(store, write_mart(tmp_path / "mart.parquet"), path, 100)
    previous = pd.read_parquet(path)
    tampered = [row if row[0] != 3 else (*row[:3], [30, 99], *row[4:]) for row in EXAMPLES]
    mart = write_mart(tmp_path / "tampered.parquet", tampered)
    mismatch = r"1 retrieval examples get a history_video_ids .* service \[30\], mart \[30, 99\]"
    with pytest.raises(ValueError, match=mismatch):
        _write_retrieval_frame(store, mart, path, 1)  # user 3 is the third chunk
    pd.testing.assert_frame_equal(pd.read_parquet(path), previous)
    assert not list(tmp_path.glob(".*.partial"))


def test_a_mart_whose_every_example_lacks_a_state_gives_an_empty_frame_with_the_columns(store, tmp_path):
    mart = write_mart(tmp_path / "mart.parquet", [row for row in EXAMPLES if row[0] == 4])
    path = tmp_path / "frame.parquet"
    tally = _write_retrieval_frame(store, mart, path, 1)
    written = pd.read_parquet(path)
    assert (tally.rows, tally.without_state) == (0, 1)
    assert list(written.columns) == list(whole_mart_frame(store, mart, tmp_path).columns)
    assert written.empty


def test_the_asset_in_chunks_reports_what_it_reports_in_one(home, monkeypatch):
    settings = VidrecSettings(home=home)
    write_mart(mart_path(settings.marts_dir, Mart.RETRIEVAL_TRAINING_EXAMPLES))
    resources = {"vidrec": VidrecResource(home=str(home))}

    def run() -> tuple[dict, pd.DataFrame]:
        result = materialize([retrieval_training_frame], resources=resources)
        [event] = result.get_asset_materialization_events()
        metadata = {key: value.value for key, value in event.materialization.metadata.items()}
        return metadata, pd.read_parquet(retrieval_frame_path(settings))

    one_metadata, one_frame = run()
    monkeypatch.setattr(features, "RETRIEVAL_FRAME_CHUNK_ROWS", 1)
    chunked_metadata, chunked_frame = run()
    assert chunked_metadata == one_metadata
    assert one_metadata["rows"] == 5 and one_metadata["users"] == 3
    assert one_metadata["examples_without_history_state"] == 1
    assert one_metadata["split_counts"] == {"train": 3, "holdout": 2}
    pd.testing.assert_frame_equal(chunked_frame, one_frame)
