"""Before any pipeline run the service starts, is not ready, and says what to do (events included)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.served_service import served

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_an_empty_home_serves_not_ready_and_names_the_missing_pipeline(tmp_path):
    environment = {**os.environ, "VIDREC_HOME": str(tmp_path), "BENTOML_HOME": str(tmp_path / "bentoml")}

    with served("serving.service:RecommendationService", PROJECT_ROOT, environment, tmp_path / "serve.log",
                ready_path="/livez") as url:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        answer = httpx.post(f"{url}/recommend", json={"user_id": 1}, timeout=10)
        click = {"kind": "click", "event_id": "e-1", "user_id": 1, "video_id": 1, "watch_time": "2026-01-05T10:00:00Z"}
        events = httpx.post(f"{url}/events", json={"events": [click]}, timeout=10)

    assert ready.status_code == 503
    assert answer.status_code == 503
    assert "error" in answer.json()
    assert (events.status_code, events.headers["Retry-After"]) == (503, "1")
    assert "run the pipeline or an import first" in events.json()["error"]
    log = (tmp_path / "serve.log").read_text()
    assert "vidrec pipeline" in log
