"""What the service serves is in the raw log the next pipeline run reads, with what only the
service knew: the real recommender's rows, and the running service's."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest

from serving.served_log import served_impressions
from tests.e2e.recommenders import known_users
from vidrec.rawlog import read_raw_table


def test_each_served_item_is_logged_with_the_head_values_its_score_combined(serving):
    _, recommender = serving
    user = known_users(serving)[0]

    answer = recommender.recommend_traced(user, 10, "home")

    rows = [impression.row for impression in served_impressions(answer)]
    items = answer.response.items
    assert ([(row["video_id"], row["position"]) for row in rows]
            == [(item.video_id, slot) for slot, item in enumerate(items)])
    ranker = recommender.models.ranker
    for row, item in zip(rows, items, strict=True):
        assert row["head_predictions"].keys() == set(ranker.model.head_names)
        combined = sum(weight * row["head_predictions"][head] for head, weight in ranker.config.score_weights.items())
        assert combined == pytest.approx(item.score, rel=1e-9, abs=1e-9)  # the values of this very item
        assert 0 < row["source_score"] <= 1 and 0 < row["propensity"] <= 1
        assert (row["source"], row["reason"], row["explored"]) == (item.source, item.reason, item.explored)
        assert row["model_versions"] == answer.response.model_versions
    clock = datetime.fromtimestamp(recommender.request_clock(), UTC).replace(tzinfo=None)
    assert {row["impression_time"] for row in rows} == {clock}  # the data clock: the log continues


def test_the_running_service_logs_what_it_answered(pipeline_run, service_url):
    settings = pipeline_run[0]
    user = int(pd.read_parquet(settings.marts_dir / "user_watch_history.parquet")["user_id"].iloc[0])

    response = httpx.post(f"{service_url}/recommend", json={"user_id": user, "k": 4}, timeout=30)

    assert response.status_code == 200, response.text
    answer = response.json()
    logged = _wait_for_rows(settings.raw_dir, answer["request_id"], len(answer["items"]))
    assert logged[["video_id", "position", "user_id", "surface"]].to_dict("records") == [
        {"video_id": item["video_id"], "position": slot, "user_id": user, "surface": "home"}
        for slot, item in enumerate(answer["items"])
    ]
    assert logged["score"].tolist() == pytest.approx([item["score"] for item in answer["items"]])
    assert logged["propensity"].tolist() == pytest.approx([item["propensity"] for item in answer["items"]])
    assert [dict(versions) for versions in logged["model_versions"]] == [answer["model_versions"]] * len(logged)


def test_a_shadow_request_is_answered_and_logged_nowhere(pipeline_run, service_url):
    settings = pipeline_run[0]
    user = int(pd.read_parquet(settings.marts_dir / "user_watch_history.parquet")["user_id"].iloc[1])

    shadow = httpx.post(f"{service_url}/recommend", json={"user_id": user, "k": 4, "shadow": True}, timeout=30)
    shown = httpx.post(f"{service_url}/recommend", json={"user_id": user, "k": 4}, timeout=30)

    assert shadow.status_code == 200 and shown.status_code == 200, (shadow.text, shown.text)
    assert len(shadow.json()["items"]) == 4
    # the shown answer's rows are written in the flush after it; a logged shadow would be in that one or earlier
    _wait_for_rows(settings.raw_dir, shown.json()["request_id"], len(shown.json()["items"]))
    impressions = read_raw_table("impressions", settings.raw_dir)
    assert not (impressions["request_id"] == shadow.json()["request_id"]).any()


def _wait_for_rows(raw_dir, request_id: str, count: int, within_seconds: float = 30) -> pd.DataFrame:
    """The request's rows once the service's log has written them (it flushes every few seconds)."""
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        impressions = read_raw_table("impressions", raw_dir)
        rows = impressions[impressions["request_id"] == request_id]
        if len(rows) == count:
            return rows.sort_values("position").reset_index(drop=True)
        time.sleep(0.5)
    raise AssertionError(f"{request_id}: {count} served rows not in the raw log within {within_seconds} s")
