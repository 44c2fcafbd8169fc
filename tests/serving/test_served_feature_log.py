"""The served-feature log: which requests it samples, what it keeps of each served item (the
ranker's inputs as fed), and the files the skew checks read back."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from models.ranking.preprocessing import constant_column
from models.sources.candidate import CandidateColumns
from serving.request_trace import RequestTrace
from serving.schemas import RecommendationResponse, RecommendedVideo
from serving.served_list import ServedAnswer, served_items
from serving.served_log import ServedFeatureLog
from serving.served_log.feature_files import read_recent, served_feature_files
from serving.served_log.feature_log import fed_feature_rows
from serving.served_log.sampling import sampled

CANDIDATES = CandidateColumns.from_ranked("ann", [(30, 0.9), (10, 0.8), (20, 0.7)])
KINDS = {"watch_seconds_28d": "numeric", "creator_id": "categorical", "category": "categorical",
         "recent_watch_video_ids": "list", "request_unix_seconds": "request_numeric",
         "retrieval_source": "request_categorical"}
HISTORY = [5, 6]
# the columns as the ranker is fed them: one row per candidate (30, 10, 20)
FED = {
    "watch_seconds_28d": np.broadcast_to(np.array([600.0]), (3,)),  # a user feature: stride 0
    "creator_id": np.array([7.0, np.nan, 9.0]),  # the video cache holds ids as floats
    "category": np.array(["music", None, "news"], dtype=object),
    "recent_watch_video_ids": constant_column(HISTORY, 3),  # one list on every row, as serving feeds it
    "request_unix_seconds": np.full(3, 1_767_607_200.0),
    "retrieval_source": np.array(["ann"] * 3, dtype=object),
    "surface": np.array(["home"] * 3, dtype=object),  # fed, but not a kept column here
}
REQUEST_TIME = datetime(2026, 1, 5, 10, 0, tzinfo=UTC).timestamp()


def answer(request_id: str = "req-1", user_id: int = 42, request_time: float = REQUEST_TIME,
           sampled_request: bool = True) -> ServedAnswer:
    """A ranked answer serving videos 20 then 30 (the policy's order, not the candidates')."""
    items = [RecommendedVideo(video_id=video, score=1.0, source="ann", retrieval_score=0.5) for video in (20, 30)]
    served = served_items(items, CANDIDATES, None, FED, KINDS if sampled_request else None)
    response = RecommendationResponse(request_id=request_id, user_id=user_id, surface="home", known_user=True,
                                      items=items, model_versions={"ranker": "4"})
    return ServedAnswer(response, RequestTrace(), request_time, served)


def test_sampling_is_decided_by_the_request_id_and_holds_its_share():
    ids = [f"{number:032x}" for number in range(20_000)]

    picked = [sampled(request_id, 0.1) for request_id in ids]

    assert picked == [sampled(request_id, 0.1) for request_id in ids]  # the same ids, the same choice
    assert 0.09 < np.mean(picked) < 0.11
    assert not any(sampled(request_id, 0.0) for request_id in ids[:100])
    assert all(sampled(request_id, 1.0) for request_id in ids[:100])


def test_a_sampled_answer_keeps_the_fed_values_of_its_served_items_in_served_order():
    fed = answer().served.fed_features

    np.testing.assert_array_equal(fed.positions, [0, 1])
    assert set(fed.columns) == set(KINDS)  # what the ranker was fed and the log keeps
    np.testing.assert_array_equal(fed.columns["creator_id"], [9.0, 7.0])  # videos 20, 30
    assert fed.columns["recent_watch_video_ids"].tolist() == [HISTORY, HISTORY]
    assert answer(sampled_request=False).served.fed_features is None


def test_rows_hold_the_keys_and_each_value_in_its_stored_form():
    first, second = (row.values for row in fed_feature_rows(answer()))

    assert {key: first[key] for key in ("request_id", "user_id", "video_id", "position", "ranker_version")} == {
        "request_id": "req-1", "user_id": 42, "video_id": 20, "position": 0, "ranker_version": "4"}
    assert first["request_time"] == datetime(2026, 1, 5, 10, 0)  # naive UTC
    assert (first["watch_seconds_28d"], first["creator_id"], first["category"]) == (600.0, "9", "news")
    assert first["recent_watch_video_ids"] == ["5", "6"]
    assert (second["video_id"], second["creator_id"], second["category"]) == (30, "7", "music")
    assert "surface" not in first


def test_the_log_writes_day_files_that_read_back_with_their_kinds(tmp_path):
    log = ServedFeatureLog(tmp_path, max_pending=100, flush_seconds=3600)
    try:
        assert log.offer(answer("req-1"))
        assert not log.offer(answer("req-2", sampled_request=False))  # nothing to log: not held
        assert log.offer(answer("req-3", user_id=0))  # held, then dropped as an invalid id
        log.flush()
    finally:
        log.close()

    [path] = served_feature_files(tmp_path)
    assert path.parent.name == "day=2026-01-05"
    frame, kinds = read_recent(tmp_path, window_days=7)
    assert kinds == KINDS
    assert frame[["request_id", "video_id", "position"]].to_dict("records") == [
        {"request_id": "req-1", "video_id": 20, "position": 0}, {"request_id": "req-1", "video_id": 30, "position": 1}]
    assert frame["recent_watch_video_ids"].map(list).tolist() == [["5", "6"], ["5", "6"]]
    assert frame["creator_id"].tolist() == ["9", "7"] and frame["watch_seconds_28d"].tolist() == [600.0, 600.0]


def test_reading_keeps_the_window_before_the_newest_request(tmp_path):
    log = ServedFeatureLog(tmp_path, max_pending=100, flush_seconds=3600)
    day = 86_400.0
    for request_id, days_before in (("old", 10), ("edge", 2.5), ("new", 0)):
        log.offer(answer(request_id, request_time=REQUEST_TIME - days_before * day))
    log.close()

    frame, _ = read_recent(tmp_path, window_days=3)

    assert frame["request_id"].unique().tolist() == ["edge", "new"]
    assert read_recent(tmp_path / "nothing_yet", window_days=3)[0].empty


def test_a_directory_that_cannot_be_written_keeps_the_rows_for_a_later_flush(tmp_path):
    directory = tmp_path / "served_features"
    directory.write_text("a file where the directory should be")  # every write fails with an OSError
    log = ServedFeatureLog(directory, max_pending=100, flush_seconds=3600)
    try:
        log.offer(answer())
        log.flush()
        assert log.pending_rows == 2  # kept, not dropped

        directory.unlink()
        log.flush()
        assert log.pending_rows == 0
    finally:
        log.close()
    assert len(pd.concat(pd.read_parquet(path) for path in served_feature_files(directory))) == 2
