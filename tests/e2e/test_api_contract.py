"""The served API keeps the contract its OpenAPI spec publishes, under fuzzing and for known bad input.

Schemathesis generates requests from `/docs.json` (valid ones and ones that break the schema) and
checks every answer: never a server error, a documented status, a body matching the schema
documented for that status (errors included), invalid input rejected and valid input accepted.
The named cases are what fuzzing once found; they stay as plain requests so they run every time.

Routes that write (POST /events, anything under PROTECTED_ROUTE_PREFIXES) are fuzzed apart from
the read routes, against a service of their own: the same `RecommendationService`, but over a
home whose raw log is a copy of the pipeline's, with VIDREC_API_KEY set and the key given to
schemathesis. Fuzzing them on the shared e2e service would append hundreds of random events
(unknown users, times back to 1995) to the raw log every other e2e test and any later pipeline
run over that home read; fuzzing them without the key would only ever see 401 and leave the
route's own answers (202, 400, 409) unchecked. So the write path is fuzzed for real, as an
authorised client, where nothing else looks, and the key's 401 is asserted by name.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.formats import unregister_string_format

from serving.api_errors import is_protected
from serving.api_guard import PROTECTED_ROUTE_PREFIXES
from serving.events.state import STATE_DIR_NAME
from tests.served_service import served
from vidrec.rawlog import read_raw_table
from vidrec.schema import IMPRESSIONS
from vidrec.settings import VidrecSettings

EXAMPLES_PER_MODE = 60
PROJECT_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "contract-test-key"
AUTHORIZED = {"Authorization": f"Bearer {API_KEY}"}
MODES = pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)


def writes(context) -> bool:
    return is_protected(context.operation.path, PROTECTED_ROUTE_PREFIXES)


@pytest.fixture(scope="module")
def api_schema(service_url):
    return schemathesis.openapi.from_url(f"{service_url}/docs.json")


@pytest.fixture(scope="module")
def recommend_operation(api_schema):
    return api_schema["/recommend"]["POST"]


@pytest.fixture(scope="module")
def events_service(pipeline_run, tmp_path_factory):
    """The service over a copy of the pipeline's raw log (no models: /recommend is 503 there), keyed.

    The intake's own index (`raw/_events`) is not copied, nor the files it wrote (the shared
    service's served-impression log appends to the pipeline's raw log): this log starts with no
    event logged, and its batches' file names cannot meet a copied one.
    """
    home = tmp_path_factory.mktemp("events_home")
    shutil.copytree(pipeline_run[0].raw_dir, home / "raw",
                    ignore=shutil.ignore_patterns(STATE_DIR_NAME, "events-*.parquet", ".*"))
    environment = {**os.environ, "VIDREC_HOME": str(home), "BENTOML_HOME": str(home / "bentoml"),
                   "VIDREC_API_KEY": API_KEY}
    with served("serving.service:RecommendationService", PROJECT_ROOT, environment, home / "serve.log",
                ready_path="/livez") as url:
        yield url, home / "raw"


@pytest.fixture(scope="module")
def events_schema(events_service):
    url, _ = events_service
    return schemathesis.openapi.from_url(f"{url}/docs.json")


@pytest.fixture
def plausible_event_times():
    """Valid (positive) bodies carry times the route accepts.

    The spec can say `date-time` and "not in the future" but not the range the route checks (from
    1995, the raw suite's earliest event, to a minute past the server's clock), so schemathesis'
    own years 0001-9999 would be valid by the spec and a 400 by the route. Times are drawn in that
    range instead, in UTC and two other offsets.
    """
    offsets = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
    # Naive bounds are local to the drawn offset: a day inside each end keeps every offset in range.
    times = st.datetimes(datetime(1995, 1, 2), datetime.now() - timedelta(days=1), timezones=offsets)
    schemathesis.openapi.format("date-time", times.map(datetime.isoformat))
    yield
    unregister_string_format("date-time")


def fuzz(schema, mode: GenerationMode, headers: dict[str, str] | None = None) -> None:
    @given(case=schema.as_strategy(mode))
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers_as_documented(case):
        case.call_and_validate(headers=headers, timeout=10)

    answers_as_documented()


def operations(schema) -> set[tuple[str, str]]:
    return {(result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()}


@MODES
def test_every_read_route_answers_as_its_spec_documents(api_schema, mode):
    read_routes = api_schema.exclude(writes)
    assert ("POST", "/recommend") in operations(read_routes)
    assert ("POST", "/events") in operations(api_schema) - operations(read_routes)

    fuzz(read_routes, mode)


@MODES
def test_every_write_route_answers_an_authorised_client_as_its_spec_documents(
    events_schema, plausible_event_times, mode
):
    write_routes = events_schema.include(writes)
    assert ("POST", "/events") in operations(write_routes)

    fuzz(write_routes, mode, AUTHORIZED)


def assert_documented(operation, response: httpx.Response) -> None:
    """The status is one the spec lists for `operation` and the body matches the schema listed for it."""
    assert str(response.status_code) in operation.definition.raw["responses"], response.status_code
    operation.validate_response(response)


def test_the_spec_documents_what_events_answers(api_schema):
    operation = api_schema["/events"]["POST"].definition.raw

    assert {"202", "400", "401", "409", "413", "415", "429", "503"} <= set(operation["responses"])
    assert "200" not in operation["responses"]
    assert operation["security"] == [{"apiKey": []}]


@pytest.fixture(scope="module")
def data_clock(events_service) -> datetime:
    """The end of the copied simulated log: events of the simulated world happen then, not today."""
    _, raw_dir = events_service
    return read_raw_table("impressions", raw_dir)["impression_time"].max().to_pydatetime().replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def known_user_and_video(events_service) -> tuple[int, int]:
    _, raw_dir = events_service
    return (int(read_raw_table("users", raw_dir)["user_id"].iloc[0]),
            int(read_raw_table("videos", raw_dir)["video_id"].iloc[0]))


def one_viewing(request_id: str, user_id: int, video_id: int, shown_at: datetime) -> list[dict]:
    """A video shown at slot 2, played from a second later (`started(shown_at)`), watched for 42.5 s and liked."""
    playback = {"user_id": user_id, "video_id": video_id, "watch_time": started(shown_at).isoformat()}
    return [
        {"kind": "impression", "event_id": f"{request_id}-imp", "request_id": request_id, "user_id": user_id,
         "video_id": video_id, "surface": "home", "position": 2, "impression_time": shown_at.isoformat(),
         "source": "ann", "source_score": 0.5},
        {"kind": "click", "event_id": f"{request_id}-click", **playback},
        {"kind": "watch", "event_id": f"{request_id}-watch", "watch_seconds": 42.5, **playback},
        {"kind": "like", "event_id": f"{request_id}-like", **playback},
    ]


def started(shown_at: datetime) -> datetime:
    return shown_at + timedelta(seconds=1)


def raw_time(value: datetime) -> pd.Timestamp:
    """How the raw log stores a time: naive UTC."""
    return pd.Timestamp(value.astimezone(UTC).replace(tzinfo=None))


def test_a_batch_is_logged_once_where_the_next_pipeline_run_reads_it(
    events_service, events_schema, data_clock, known_user_and_video
):
    url, raw_dir = events_service
    user_id, video_id = known_user_and_video
    shown_at = data_clock + timedelta(minutes=1)
    events = one_viewing("contract-req-1", user_id, video_id, shown_at)
    impressions_before = len(read_raw_table("impressions", raw_dir))

    first = httpx.post(f"{url}/events", json={"events": events}, headers=AUTHORIZED, timeout=30)
    again = httpx.post(f"{url}/events", json={"events": events}, headers=AUTHORIZED, timeout=30)

    assert (first.status_code, first.json()) == (202, {"accepted": 4, "duplicates": 0})
    assert (again.status_code, again.json()) == (202, {"accepted": 0, "duplicates": 4})
    assert_documented(events_schema["/events"]["POST"], first)
    impressions, watches = read_raw_table("impressions", raw_dir), read_raw_table("watches", raw_dir)
    assert len(impressions) == impressions_before + 1
    logged = impressions[impressions["request_id"] == "contract-req-1"]
    assert logged[IMPRESSIONS.required_columns].to_dict("records") == [{
        "request_id": "contract-req-1", "user_id": user_id, "video_id": video_id, "surface": "home",
        "position": 2, "impression_time": raw_time(shown_at), "source": "ann", "source_score": 0.5,
    }]
    assert logged[sorted(IMPRESSIONS.optional_columns)].isna().all().all()  # what only the service knows
    playback_key = (user_id, video_id, raw_time(started(shown_at)))
    playback = watches.set_index(["user_id", "video_id", "watch_time"]).loc[[playback_key]]
    assert playback.to_dict("records") == [{"watch_seconds": 42.5, "liked": True, "shared": False, "disliked": False}]
    # Beside the simulated day partitions, in a file of the intake's own (events-<batch>.parquet).
    assert list((raw_dir / "impressions" / f"day={shown_at.date().isoformat()}").glob("events-*.parquet"))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-key"}], ids=["no key", "wrong key"])
def test_events_without_the_api_key_are_refused_as_documented_and_nothing_is_logged(
    events_service, events_schema, data_clock, known_user_and_video, headers
):
    url, raw_dir = events_service
    events = one_viewing("contract-req-unauthorised", *known_user_and_video, data_clock)

    response = httpx.post(f"{url}/events", json={"events": events}, headers=headers, timeout=30)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_documented(events_schema["/events"]["POST"], response)
    assert "contract-req-unauthorised" not in set(read_raw_table("impressions", raw_dir)["request_id"])


def test_a_boolean_user_id_is_not_user_zero(service_url, recommend_operation):
    response = httpx.post(f"{service_url}/recommend", json={"user_id": False, "k": 3}, timeout=30)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid request: user_id: Input should be a valid integer"
    assert_documented(recommend_operation, response)


@pytest.mark.parametrize("body", [{"user_id": "7"}, {"user_id": 7, "k": True}, {"user_id": 7.5}])
def test_ids_and_k_must_be_json_integers(service_url, recommend_operation, body):
    response = httpx.post(f"{service_url}/recommend", json=body, timeout=30)

    assert response.status_code == 400
    assert_documented(recommend_operation, response)


def test_malformed_json_is_a_bad_request_in_the_documented_shape(service_url, recommend_operation):
    response = httpx.post(
        f"{service_url}/recommend", content=b'{"user_id": ', headers={"Content-Type": "application/json"}, timeout=30
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid request: body: Invalid JSON")
    assert_documented(recommend_operation, response)


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/x-www-form-urlencoded", "text/plain"])
def test_bodies_in_undocumented_media_types_are_unsupported_not_a_crash(service_url, recommend_operation, content_type):
    response = httpx.post(
        f"{service_url}/recommend", content=b"user_id=7", headers={"Content-Type": content_type}, timeout=30
    )

    assert response.status_code == 415
    assert content_type in response.json()["error"]
    assert_documented(recommend_operation, response)


def test_a_body_over_the_configured_limit_is_refused(service_url, recommend_operation):
    limit = VidrecSettings().api_max_body_bytes
    padding = " " * limit  # still valid JSON: only the size is wrong

    response = httpx.post(
        f"{service_url}/recommend", content=f'{{"user_id": 7{padding}}}', headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 413
    assert f"limit of {limit} bytes" in response.json()["error"]
    assert_documented(recommend_operation, response)
