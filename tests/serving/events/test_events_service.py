"""POST /events through a real `bentoml serve` with two workers and the API guard, as the service wires it.

The service (tests/serving/events/events_bento.py) holds only the events route, so it starts in
seconds without models; its method and middleware are the lines serving/service.py needs.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serving.events.intake import LOCK_NAME
from serving.events.route import document_event_responses
from serving.events.state import state_dir
from tests.served_service import served
from tests.serving.events.events_data import make_raw_log, session_events
from tests.serving.events.log_checks import oracle, raw_rows

PROJECT_ROOT = Path(__file__).resolve().parents[3]
KEY = "events-test-key"
AUTHORIZED = {"Authorization": f"Bearer {KEY}"}
pytestmark = pytest.mark.e2e  # a real `bentoml serve`, over HTTP


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = tmp_path_factory.mktemp("events_home")
    make_raw_log(home / "raw")
    environment = {
        **os.environ,
        "VIDREC_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "VIDREC_API_KEY": KEY,
        "VIDREC_EVENTS_TEST_LOCK_WAIT_SECONDS": "0.5",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    with served("tests.serving.events.events_bento:EventsOnly", PROJECT_ROOT, environment, home / "serve.log") as url:
        yield url, home / "raw"


def post(url: str, events: list[dict], headers: dict = AUTHORIZED) -> httpx.Response:
    return httpx.post(f"{url}/events", json={"events": events}, headers=headers, timeout=30)


def test_a_batch_is_answered_202_and_its_resend_logs_nothing_twice(service):
    url, raw_dir = service
    events = session_events(session=100, videos=2)

    first, again = post(url, events), post(url, events)

    assert (first.status_code, first.json()) == (202, {"accepted": len(events), "duplicates": 0})
    assert (again.status_code, again.json()) == (202, {"accepted": 0, "duplicates": len(events)})
    shown = {row[0] for row in raw_rows(raw_dir)["impressions"]}
    assert "req-1-100" in shown


def test_an_invalid_field_is_a_400_that_names_it(service):
    url, _ = service
    events = session_events(session=101, videos=1)
    events[2]["watch_seconds"] = -3.0

    response = post(url, events)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid request: events.2.watch.watch_seconds: Input should be greater than or equal to 0",
        "detail": "events.2.watch.watch_seconds: greater_than_equal",
    }


def test_an_event_id_reused_for_other_content_is_a_409(service):
    url, _ = service
    events = session_events(session=102, videos=1)
    post(url, events)
    events[2]["watch_seconds"] = 999.0

    response = post(url, events)

    assert response.status_code == 409
    assert response.json()["error"].startswith("events.2.event_id: 'req-1-102-watch-0' was already sent")


def test_a_write_lock_held_too_long_is_a_503_with_retry_after(service):
    url, raw_dir = service
    events = session_events(session=103, videos=1)

    with (state_dir(raw_dir) / LOCK_NAME).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another writer, stuck
        busy = post(url, events)
    retried = post(url, events)

    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert "write lock stayed held" in busy.json()["error"]
    assert (retried.status_code, retried.json()["accepted"]) == (202, len(events))


def test_without_the_api_key_events_are_refused(service):
    url, _ = service

    response = post(url, session_events(session=104, videos=1), headers={})

    assert response.status_code == 401


def test_clients_sending_the_same_events_at_once_to_two_workers_log_each_once(service, tmp_path):
    url, raw_dir = service
    before = raw_rows(raw_dir)
    events = [event for session in range(200, 212) for event in session_events(session)]

    def send_all(seed: int) -> list[dict]:
        shuffled = random.Random(seed).sample(events, len(events))
        with httpx.Client(headers=AUTHORIZED, timeout=30) as client:  # its own connection: any worker
            return [send_until_written(client, shuffled[start:start + 25]) for start in range(0, len(shuffled), 25)]

    def send_until_written(client: httpx.Client, batch: list[dict]) -> dict:
        """As a client should: a 503 (the write lock stayed busy past this service's 0.5 s, as it can
        on a loaded machine; nothing was written) is sent again after its Retry-After."""
        for _ in range(30):
            response = client.post(f"{url}/events", json={"events": batch})
            if response.status_code != 503:
                return response.json()
            time.sleep(float(response.headers["Retry-After"]))
        raise AssertionError(f"still 503 after 30 tries: {response.json()}")

    with ThreadPoolExecutor(4) as pool:
        answers = [answer for client in pool.map(send_all, range(4)) for answer in client]

    assert sum(answer["accepted"] for answer in answers) == len(events)
    assert sum(answer["duplicates"] for answer in answers) == 3 * len(events)
    logged, expected = raw_rows(raw_dir), oracle(tmp_path, "oracle", events)
    for table in ("impressions", "watches"):
        assert sorted(set(logged[table]) - set(before[table])) == expected[table]


def test_the_spec_documents_what_the_route_answers(service):
    url, _ = service
    spec = httpx.get(f"{url}/docs.json", timeout=30).json()

    responses = document_event_responses(spec)["paths"]["/events"]["post"]["responses"]

    assert {"202", "400", "401", "409", "413", "415", "429", "503"} <= set(responses)
    assert "200" not in responses
    assert responses["202"]["content"]["application/json"]["schema"]["required"] == ["accepted", "duplicates"]
    body = spec["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    kinds = body["properties"]["events"]["items"]["oneOf"]
    assert [kind["$ref"].rsplit("/", 1)[1] for kind in kinds] == [
        "ImpressionEvent", "ClickEvent", "WatchEvent", "SkipEvent", "LikeEvent"
    ]
    assert spec["components"]["schemas"]["WatchEvent"]["properties"]["watch_seconds"]["minimum"] == 0
