"""The served API keeps the contract its OpenAPI spec publishes, under fuzzing and for known bad input.

Schemathesis generates requests from `/docs.json` (valid ones and ones that break the schema) and
checks every answer: never a server error, a documented status, a body matching the schema
documented for that status (errors included), invalid input rejected and valid input accepted.
The named cases are what fuzzing once found; they stay as plain requests so they run every time.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from vidrec.settings import VidrecSettings

EXAMPLES_PER_MODE = 60


@pytest.fixture(scope="module")
def api_schema(service_url):
    return schemathesis.openapi.from_url(f"{service_url}/docs.json")


@pytest.fixture(scope="module")
def recommend_operation(api_schema):
    return api_schema["/recommend"]["POST"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
def test_every_operation_answers_as_its_spec_documents(api_schema, mode):
    operations = {(result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()}
    assert ("POST", "/recommend") in operations

    @given(case=api_schema.as_strategy(mode))
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers_as_documented(case):
        case.call_and_validate(timeout=10)

    answers_as_documented()


def assert_documented(operation, response: httpx.Response) -> None:
    """The status is one the spec lists for `operation` and the body matches the schema listed for it."""
    assert str(response.status_code) in operation.definition.raw["responses"], response.status_code
    operation.validate_response(response)


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
