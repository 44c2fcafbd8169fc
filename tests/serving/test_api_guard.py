"""The API guard on a minimal ASGI app: API keys, body limits, media types, one error body."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.api_guard import ApiGuard, GuardPolicy, exclusive_bounds_as_openapi_30
from serving.schemas import ErrorResponse
from vidrec.settings import VidrecSettings

KEY = "s3cret-key"
SPEC = {
    "openapi": "3.0.2",
    "paths": {
        "/recommend": {"post": {"responses": {"200": {"description": "ok"}}}},
        "/admin/reload": {"post": {"responses": {"200": {"description": "ok"}}}},
        "/healthz": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
    "components": {"schemas": {}},
}


async def echo_body_size(request: Request) -> JSONResponse:
    return JSONResponse({"received_bytes": len(await request.body())})


async def reload_models(request: Request) -> JSONResponse:
    return JSONResponse({"reloaded": True})


async def bentoml_validation_error(request: Request) -> JSONResponse:
    """What BentoML answers for a pydantic ValidationError: `detail` is a list, not the documented string."""
    detail = [{"type": "int_type", "loc": ["user_id"], "msg": "Input should be a valid integer"}]
    return JSONResponse({"error": "1 validation error for Input", "detail": detail}, status_code=400)


async def bentoml_listed_error(request: Request) -> JSONResponse:
    """What BentoML answers for a 4xx BentoMLException: the error object wrapped in a list."""
    return JSONResponse([{"error": "video 7 not found"}], status_code=404)


async def plain_text_error(request: Request) -> PlainTextResponse:
    return PlainTextResponse("upstream exploded", status_code=502)


async def openapi_spec(request: Request) -> JSONResponse:
    return JSONResponse(SPEC)


def guarded_client(api_key: str | None = KEY, max_body_bytes: int = 1000, spec_documenters=()) -> TestClient:
    app = Starlette(
        routes=[
            Route("/recommend", echo_body_size, methods=["POST"]),
            Route("/admin/reload", reload_models, methods=["POST"]),
            Route("/administrators", echo_body_size, methods=["POST"]),
            Route("/validation", bentoml_validation_error, methods=["POST"]),
            Route("/listed", bentoml_listed_error, methods=["POST"]),
            Route("/plain", plain_text_error, methods=["POST"]),
            Route("/docs.json", openapi_spec),
        ]
    )
    json_routes = {path: frozenset({"application/json"}) for path in ["/recommend", "/validation", "/listed", "/plain"]}
    policy = GuardPolicy(max_body_bytes=max_body_bytes, api_key=api_key, api_media_types=json_routes,
                         spec_documenters=spec_documenters)
    return TestClient(ApiGuard(app, policy))


def error_of(response) -> ErrorResponse:
    assert response.headers["content-type"] == "application/json"
    return ErrorResponse.model_validate_json(response.content)


# ---- API key on routes that write or administer -------------------------------------------------
def test_admin_route_without_a_key_is_unauthorized():
    response = guarded_client().post("/admin/reload")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in error_of(response).error


def test_admin_route_with_a_wrong_key_is_unauthorized():
    response = guarded_client().post("/admin/reload", headers={"Authorization": "Bearer not-the-key"})

    assert response.status_code == 401
    assert error_of(response).error == "wrong API key for /admin/reload"


def test_admin_route_with_the_key_runs():
    response = guarded_client().post("/admin/reload", headers={"Authorization": f"Bearer {KEY}"})

    assert response.status_code == 200
    assert response.json() == {"reloaded": True}


def test_without_a_configured_key_admin_routes_are_open():
    assert guarded_client(api_key=None).post("/admin/reload").status_code == 200


def test_read_routes_and_lookalike_paths_need_no_key():
    client = guarded_client()

    assert client.post("/recommend", json={"user_id": 1}).status_code == 200
    assert client.post("/administrators", json={}).status_code == 200


def test_settings_read_the_key_and_treat_an_empty_one_as_unset(monkeypatch):
    monkeypatch.setenv("VIDREC_API_KEY", KEY)
    assert VidrecSettings().api_key.get_secret_value() == KEY
    assert KEY not in repr(VidrecSettings())

    monkeypatch.setenv("VIDREC_API_KEY", "")
    assert VidrecSettings().api_key is None


# ---- body size ----------------------------------------------------------------------------------
def test_a_body_within_the_limit_reaches_the_route_whole():
    response = guarded_client(max_body_bytes=1000).post("/recommend", content=b"x" * 1000)

    assert response.status_code == 200
    assert response.json() == {"received_bytes": 1000}


def test_a_declared_oversized_body_is_refused_with_413():
    response = guarded_client(max_body_bytes=1000).post("/recommend", content=b"x" * 1001)

    assert response.status_code == 413
    assert error_of(response).error == (
        "request body of 1001 bytes exceeds the limit of 1000 bytes (VIDREC_API_MAX_BODY_BYTES)"
    )


def test_a_streamed_oversized_body_without_length_is_refused_with_413():
    chunks = (b"x" * 400 for _ in range(5))  # chunked transfer: no Content-Length to trust

    response = guarded_client(max_body_bytes=1000).post("/recommend", content=chunks)

    assert response.status_code == 413
    assert "exceeds the limit of 1000 bytes" in error_of(response).error


def test_a_nonnumeric_content_length_is_a_bad_request():
    response = guarded_client().post("/recommend", content=b"{}", headers={"Content-Length": "two"})

    assert response.status_code == 400
    assert "Content-Length 'two'" in error_of(response).error


# ---- media types --------------------------------------------------------------------------------
def test_multipart_without_a_boundary_is_unsupported_not_a_crash():
    response = guarded_client().post("/recommend", content=b"a=1", headers={"Content-Type": "multipart/form-data"})

    assert response.status_code == 415
    assert error_of(response).error == (
        "Content-Type 'multipart/form-data' is not accepted by /recommend: send application/json"
    )


def test_json_with_parameters_is_accepted():
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}

    assert guarded_client().post("/recommend", content=b"{}", headers=headers).status_code == 200


# ---- one error body -----------------------------------------------------------------------------
def test_validation_errors_name_each_field_in_the_documented_shape():
    response = guarded_client().post("/validation", json={"user_id": False})

    assert response.status_code == 400
    assert error_of(response) == ErrorResponse(
        error="invalid request: user_id: Input should be a valid integer", detail="user_id: int_type"
    )


def test_listed_and_plain_text_errors_become_one_error_object():
    client = guarded_client()

    listed = client.post("/listed", json={})
    plain = client.post("/plain", json={})

    assert (listed.status_code, error_of(listed).error) == (404, "video 7 not found")
    assert (plain.status_code, error_of(plain).error) == (502, "upstream exploded")
    assert int(plain.headers["content-length"]) == len(plain.content)


def test_the_spec_documents_what_the_guard_answers():
    spec = guarded_client().get("/docs.json").json()

    recommend = spec["paths"]["/recommend"]["post"]
    reload_route = spec["paths"]["/admin/reload"]["post"]
    assert {"413", "415", "429", "503", "504"} <= set(recommend["responses"])
    assert "401" not in recommend["responses"] and "security" not in recommend
    assert "401" in reload_route["responses"]
    assert reload_route["security"] == [{"apiKey": []}]
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert spec["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]
    assert spec["paths"]["/healthz"] == SPEC["paths"]["/healthz"]


def test_a_route_corrects_its_own_spec_entry_after_the_guards_responses_are_in():
    def reload_answers_202(spec: dict) -> dict:
        assert "ErrorResponse" in spec["components"]["schemas"]  # the guard's responses came first
        responses = spec["paths"]["/admin/reload"]["post"]["responses"]
        responses["202"] = responses.pop("200")
        return spec

    spec = guarded_client(spec_documenters=(reload_answers_202,)).get("/docs.json").json()

    reload_responses = spec["paths"]["/admin/reload"]["post"]["responses"]
    assert "202" in reload_responses and "200" not in reload_responses
    assert "401" in reload_responses
    assert "200" in spec["paths"]["/recommend"]["post"]["responses"]


def test_pydantic_exclusive_bounds_are_written_as_openapi_30_reads_them():
    spec = {"openapi": "3.0.2", "components": {"schemas": {"Scores": {"properties": {
        "score": {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "null"}]},
        "rate": {"type": "number", "exclusiveMinimum": 0, "minimum": 0.5, "exclusiveMaximum": 1.0},
        "flagged": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    }}}}}

    properties = exclusive_bounds_as_openapi_30(spec)["components"]["schemas"]["Scores"]["properties"]

    assert properties["score"]["anyOf"][0] == {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1}
    assert properties["rate"] == {"type": "number", "minimum": 0.5, "maximum": 1.0, "exclusiveMaximum": True}
    assert properties["flagged"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}


@pytest.mark.parametrize("path", ["/admin", "/admin/reload", "/events", "/events/batch"])
def test_everything_under_a_protected_prefix_needs_the_key(path):
    response = guarded_client().post(path, content=json.dumps({}))

    assert response.status_code == 401
