"""One error body for the whole API, and the OpenAPI responses that document it.

BentoML documents every error as `{"error": string, "detail": string}` but answers a validation
error with `detail` as a list of pydantic errors, and any other 4xx `BentoMLException` as a JSON
list; clients (and schemathesis) that trust the spec break on both. `normalize_error_body` turns
whatever an inner layer answered into `ErrorResponse`, naming each invalid field, and
`document_guard_responses` adds the statuses the API guard and BentoML's traffic control answer
(401, 413, 415, 429, 503, 504) to the spec, so every status a route can answer is documented, and
marks a request body required when its schema has required fields (BentoML never says so).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from serving.schemas import ErrorResponse

ERROR_SCHEMA_NAME = "ErrorResponse"
API_KEY_SCHEME = "apiKey"

# Statuses any API route can answer besides the ones BentoML documents (200, 400, 404, 500):
# the guard's size and media-type checks, and BentoML's concurrency limit, readiness and timeout.
API_ROUTE_ERRORS = {
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "The request body is larger than VIDREC_API_MAX_BODY_BYTES.",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "The request body is not in a media type this route documents.",
    HTTPStatus.TOO_MANY_REQUESTS: "The service is at its concurrency limit; retry later.",
    HTTPStatus.SERVICE_UNAVAILABLE: "The service is not ready (models not loaded yet).",
    HTTPStatus.GATEWAY_TIMEOUT: "The request did not finish within the service's timeout.",
}
UNAUTHORIZED_DESCRIPTION = "The route writes or administers and VIDREC_API_KEY is set: a missing or wrong API key."


def error_body(error: str, detail: str = "") -> bytes:
    return ErrorResponse(error=error, detail=detail).model_dump_json().encode()


def normalize_error_body(status: int, body: bytes) -> bytes:
    """`body` as an `ErrorResponse`, keeping what the inner layer said (field names above all)."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and len(parsed) == 1:  # BentoML wraps 4xx BentoMLExceptions in a list
        parsed = parsed[0]
    if isinstance(parsed, dict) and isinstance(parsed.get("detail"), list):
        return error_body(*_describe_validation_errors(parsed["detail"]))
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        detail = parsed.get("detail")
        return error_body(parsed["error"], detail if isinstance(detail, str) else "")
    text = body.decode("utf-8", "replace").strip()
    return error_body(text or _phrase(status))


def _describe_validation_errors(errors: Iterable[Any]) -> tuple[str, str]:
    """("invalid request: user_id: Input should be a valid integer", "user_id: int_type") from pydantic errors."""
    messages, kinds = [], []
    for error in errors:
        if not isinstance(error, dict):
            continue
        field = ".".join(str(part) for part in error.get("loc") or ()) or "body"
        messages.append(f"{field}: {error.get('msg', 'invalid')}")
        kinds.append(f"{field}: {error.get('type', 'invalid')}")
    return "invalid request: " + ("; ".join(messages) or "the body does not match the schema"), "; ".join(kinds)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def document_guard_responses(
    spec: dict[str, Any], api_routes: Iterable[str], protected_prefixes: Iterable[str]
) -> dict[str, Any]:
    """`spec` with `ErrorResponse`, the guard's statuses on every API route and the API key on protected ones.

    A hand-written spec would drift from the pydantic models; this edits BentoML's generated one
    only where BentoML cannot know (responses from outside its handlers, the key, a required body).
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA_NAME] = ErrorResponse.model_json_schema()
    reference = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}}}
    api_routes, protected_prefixes = set(api_routes), tuple(protected_prefixes)
    for path, item in spec.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if path in api_routes:
                _require_body_with_required_fields(operation.get("requestBody"))
                for status, description in API_ROUTE_ERRORS.items():
                    responses.setdefault(str(status.value), {"description": description, **reference})
            if is_protected(path, protected_prefixes):
                responses[str(HTTPStatus.UNAUTHORIZED.value)] = {"description": UNAUTHORIZED_DESCRIPTION, **reference}
                operation["security"] = [{API_KEY_SCHEME: []}]
                spec["components"].setdefault("securitySchemes", {})[API_KEY_SCHEME] = {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <VIDREC_API_KEY>",
                }
    return spec


def _require_body_with_required_fields(request_body: dict[str, Any] | None) -> None:
    """BentoML leaves `requestBody.required` unset; a body whose schema requires fields cannot be left out."""
    if not request_body:
        return
    schemas = [media.get("schema", {}) for media in request_body.get("content", {}).values()]
    if any(schema.get("required") for schema in schemas):
        request_body["required"] = True


def is_protected(path: str, protected_prefixes: tuple[str, ...]) -> bool:
    """True for a prefix itself and anything below it: "/admin" covers "/admin/reload", not "/administrators"."""
    return any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in protected_prefixes)
