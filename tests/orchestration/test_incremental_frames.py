"""Incremental training frames: which rows are reused from the last run and which are joined
again. The join here is a plain function of each row's key and time (what a point-in-time join
is); the real Feast join is held equal to a whole recomputation in tests/e2e/test_closed_loop.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from orchestration.incremental_frames import (
    MANIFEST_FILE,
    ROWS_FILE,
    FrameInputs,
    frame_inputs,
    incremental_features,
)
from vidrec.settings import VidrecSettings

KEYS = ["request_id", "video_id"]
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]


def _examples(days: list[str]) -> pd.DataFrame:
    rows = [(f"r{day}-{hour}", video, pd.Timestamp(day) + pd.Timedelta(hours=hour), video % 2)
            for day in days for hour in (1, 13) for video in (10, 11, 12)]
    return pd.DataFrame(rows, columns=["request_id", "video_id", "event_timestamp", "clicked"])


class Join:
    """A point-in-time join stand-in: a feature from the row's key and time (`offset` plays a
    corrected history from `changed_from` on), and every row it was asked for."""

    def __init__(self, offset: float = 0.0, changed_from: str | None = None):
        self.offset, self.changed_from = offset, changed_from
        self.asked: list[str] = []

    def __call__(self, rows: pd.DataFrame) -> pd.DataFrame:
        self.asked += rows["request_id"].tolist()
        hours = (rows["event_timestamp"] - pd.Timestamp("2026-01-01", tz="UTC")) / pd.Timedelta(hours=1)
        shifted = (rows["event_timestamp"] >= pd.Timestamp(self.changed_from, tz="UTC")
                   if self.changed_from else False)
        return rows.reset_index(drop=True).assign(
            video_rate=(rows["video_id"] * 0.01 + hours + self.offset * shifted).to_numpy(),
            user_days=(hours // 24).to_numpy())


def _inputs(days: dict[str, str], code: str = "code-1") -> FrameInputs:
    return FrameInputs(code=code, days=days)


def test_a_new_day_joins_only_its_rows_and_the_frame_equals_a_whole_join(tmp_path):
    incremental_features(tmp_path, _inputs(dict.fromkeys(DAYS[:2], "a")), _examples(DAYS[:2]), KEYS, Join())

    join = Join()
    frame, reuse = incremental_features(tmp_path, _inputs(dict.fromkeys(DAYS, "a")), _examples(DAYS), KEYS, join)

    assert set(join.asked) == {f"r{DAYS[2]}-1", f"r{DAYS[2]}-13"}
    assert (reuse.reused_rows, reuse.computed_rows) == (12, 6)
    assert reuse.recomputed_from == pd.Timestamp(DAYS[2], tz="UTC")
    pd.testing.assert_frame_equal(frame, Join()(_examples(DAYS).assign(
        event_timestamp=lambda rows: rows["event_timestamp"].dt.tz_localize("UTC"))))


def test_a_changed_old_day_joins_again_from_that_day_on(tmp_path):
    incremental_features(tmp_path, _inputs(dict.fromkeys(DAYS, "a")), _examples(DAYS), KEYS, Join())
    late_event = Join(offset=100.0, changed_from=DAYS[1])  # e.g. a late watch landed in day 2's files

    frame, reuse = incremental_features(tmp_path, _inputs({DAYS[0]: "a", DAYS[1]: "b", DAYS[2]: "a"}),
                                        _examples(DAYS), KEYS, late_event)

    assert set(late_event.asked) == {f"r{day}-{hour}" for day in DAYS[1:] for hour in (1, 13)}
    assert reuse.reused_rows == 6
    changed = frame["event_timestamp"] >= pd.Timestamp(DAYS[1], tz="UTC")
    whole = Join(offset=100.0, changed_from=DAYS[1])(frame[["request_id", "video_id", "event_timestamp", "clicked"]])
    pd.testing.assert_frame_equal(frame, whole)
    assert (frame.loc[changed, "video_rate"] >= 100).all() and (frame.loc[~changed, "video_rate"] < 100).all()


@pytest.mark.parametrize("next_inputs", [_inputs(dict.fromkeys(DAYS, "a"), code="code-2"), None],
                         ids=["feature code changed", "cache files from different runs"])
def test_nothing_is_reused_when_the_code_changed_or_the_cache_is_inconsistent(tmp_path, next_inputs):
    incremental_features(tmp_path, _inputs(dict.fromkeys(DAYS, "a")), _examples(DAYS), KEYS, Join())
    if next_inputs is None:  # a crash between the two writes: rows of another run under this manifest
        _examples(DAYS[:1]).to_parquet(tmp_path / ROWS_FILE)
        next_inputs = _inputs(dict.fromkeys(DAYS, "a"))
    join = Join()

    _, reuse = incremental_features(tmp_path, next_inputs, _examples(DAYS), KEYS, join)

    assert len(join.asked) == 18 and reuse.reused_rows == 0 and reuse.recomputed_from is None


def test_unchanged_data_joins_nothing_and_labels_still_come_from_the_examples(tmp_path):
    inputs = _inputs(dict.fromkeys(DAYS, "a"))
    incremental_features(tmp_path, inputs, _examples(DAYS), KEYS, Join())
    relabelled = _examples(DAYS).assign(clicked=1)  # outcomes are the mart's, never the cache's
    join = Join()

    frame, reuse = incremental_features(tmp_path, inputs, relabelled, KEYS, join)

    assert join.asked == [] and reuse.reused_rows == 18 and reuse.recomputed_from is None
    assert (frame["clicked"] == 1).all()
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["feature_columns"] == ["video_rate", "user_days"]


def test_a_day_whose_validated_records_change_gets_a_new_digest(tmp_path):
    settings = VidrecSettings(home=tmp_path)
    for table, day in (("watches", DAYS[0]), ("impressions", DAYS[0]), ("watches", DAYS[1])):
        directory = settings.validated_dir / table / f"day={day}"
        directory.mkdir(parents=True)
        (directory / "_source.json").write_text(json.dumps({"raw_files": [[f"{table}/{day}/a.parquet", 10, 1]]}))
    before = frame_inputs(settings, {"history_length": 50})

    (settings.validated_dir / "watches" / f"day={DAYS[1]}" / "_source.json").write_text(
        json.dumps({"raw_files": [[f"watches/{DAYS[1]}/a.parquet", 12, 2]]}))
    after = frame_inputs(settings, {"history_length": 50})

    assert sorted(before.days) == DAYS[:2]
    assert before.days[DAYS[0]] == after.days[DAYS[0]] and before.days[DAYS[1]] != after.days[DAYS[1]]
    assert before.code == after.code != frame_inputs(settings, {"history_length": 40}).code
