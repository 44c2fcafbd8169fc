"""The ASGI layer in front of the service: what a request must be before any handler sees it.

BentoML parses whatever arrives: a multipart body without a boundary crashes its form parser
(500), a body of any size is read into memory, and its error bodies do not match the spec it
publishes. `ApiGuard` answers those requests itself, in the documented `ErrorResponse` shape:

- 401 on a protected route (anything under `PROTECTED_ROUTE_PREFIXES`: the routes that write or
  administer) when `VIDREC_API_KEY` is set and the request lacks `Authorization: Bearer <key>`;
- 413 when the body is larger than `VIDREC_API_MAX_BODY_BYTES` (declared or streamed);
- 415 when an API route is sent a body in a media type its spec does not list;
- every other error an API route answers is rewritten into `ErrorResponse` (api_errors.py), and
  `GET /docs.json` documents all of the above, writes pydantic's exclusive bounds the way the
  spec's OpenAPI 3.0 reads them, then applies the policy's `spec_documenters`: a route that
  answers what BentoML cannot know (POST /events: 202, 409) corrects its own entry.

A route is protected by its path, not by remembering a decorator: a new route under `/admin/`
is guarded the moment it exists. The guard is plain ASGI so it runs (and is tested) without BentoML.
"""

from __future__ import annotations

import hmac
import json
import logging
import operator
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from serving.api_errors import document_guard_responses, error_body, is_protected, normalize_error_body

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Routes that change state or administer the service: POST /events, POST /admin/reload, ...
PROTECTED_ROUTE_PREFIXES = ("/events", "/admin")
SPEC_PATH = "/docs.json"


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard enforces; `api_media_types` maps each API route to the media types it documents.

    `spec_documenters` edit the spec after the guard's own responses are in (so they may refer to
    `ErrorResponse`), in order; each takes the spec and returns it.
    """

    max_body_bytes: int
    api_key: str | None = None
    api_media_types: Mapping[str, frozenset[str]] = field(default_factory=dict)
    protected_prefixes: tuple[str, ...] = PROTECTED_ROUTE_PREFIXES
    spec_documenters: tuple[Callable[[dict[str, Any]], dict[str, Any]], ...] = ()


class Rejection(Exception):
    """A request the guard answers itself, with `status` and an `ErrorResponse` body."""

    def __init__(self, status: HTTPStatus, error: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.headers = status, error, dict(headers or {})

    async def send_to(self, send: Send) -> None:
        body = error_body(self.error)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(name.lower().encode(), value.encode()) for name, value in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status.value, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class ApiGuard:
    """ASGI middleware enforcing a `GuardPolicy` (see the module docstring for what answers what)."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app, self.policy = app, policy
        if policy.api_key is None:
            logger.info("VIDREC_API_KEY is not set: routes under %s are open", ", ".join(policy.protected_prefixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == SPEC_PATH and scope["method"] == "GET":
            await self.app(scope, receive, _SpecDocumenter(send, self.policy))
            return
        headers = _headers(scope)
        try:
            self._authorize(path, headers)
            self._check_declared_length(headers)
            self._check_media_type(path, headers)
            body = await _read_body(receive, self.policy.max_body_bytes)
        except Rejection as rejection:
            await rejection.send_to(send)
            return
        except _ClientGone:
            return
        if path in self.policy.api_media_types:
            send = _ErrorNormalizer(send)
        await self.app(scope, _replay(body, receive), send)

    def _authorize(self, path: str, headers: Mapping[str, str]) -> None:
        expected = self.policy.api_key
        if expected is None or not is_protected(path, self.policy.protected_prefixes):
            return
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not presented.strip():
            missing = f"{path} needs an API key: send 'Authorization: Bearer <key>'"
            raise Rejection(HTTPStatus.UNAUTHORIZED, missing, challenge)
        if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            raise Rejection(HTTPStatus.UNAUTHORIZED, f"wrong API key for {path}", challenge)

    def _check_declared_length(self, headers: Mapping[str, str]) -> None:
        declared = headers.get("content-length")
        if declared is None:
            return
        if not declared.strip().isdigit():
            raise Rejection(HTTPStatus.BAD_REQUEST, f"Content-Length {declared!r} is not a byte count")
        if int(declared) > self.policy.max_body_bytes:
            raise Rejection(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(int(declared), self.policy.max_body_bytes))

    def _check_media_type(self, path: str, headers: Mapping[str, str]) -> None:
        accepted = self.policy.api_media_types.get(path)
        if accepted is None or "content-type" not in headers:  # no header: BentoML reads JSON
            return
        media_type = headers["content-type"].split(";")[0].strip().lower()
        if media_type not in accepted:
            expected = ", ".join(sorted(accepted))
            raise Rejection(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type {media_type or '(empty)'!r} is not accepted by {path}: send {expected}",
            )


class _ClientGone(Exception):
    """The client disconnected before its body arrived: nobody to answer."""


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size} bytes exceeds the limit of {limit} bytes (VIDREC_API_MAX_BODY_BYTES)"


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refusing it as soon as it passes `limit` (chunked bodies declare no length)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejection(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(size, limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over once, then waits on the real one."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


class _BufferedResponse:
    """A `send` that holds a response back until its body is complete, for `finish` to rewrite it."""

    def __init__(self, send: Send) -> None:
        self.send, self.start, self.chunks = send, None, []

    def should_buffer(self, start: Message) -> bool:
        raise NotImplementedError

    def finish(self, status: int, body: bytes) -> bytes:
        raise NotImplementedError

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and self.should_buffer(message):
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = self.finish(self.start["status"], b"".join(self.chunks))
        headers = [(name, value) for name, value in self.start.get("headers", []) if name.lower() not in _REWRITTEN]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


_REWRITTEN = {b"content-type", b"content-length"}


class _ErrorNormalizer(_BufferedResponse):
    """Rewrites any error an API route answers into `ErrorResponse`; successes pass untouched."""

    def should_buffer(self, start: Message) -> bool:
        return start["status"] >= 400

    def finish(self, status: int, body: bytes) -> bytes:
        return normalize_error_body(status, body)


class _SpecDocumenter(_BufferedResponse):
    """Adds the guard's responses and the API key scheme to the OpenAPI spec BentoML generates,
    writes its exclusive bounds as OpenAPI 3.0 reads them, and applies the policy's corrections."""

    def __init__(self, send: Send, policy: GuardPolicy) -> None:
        super().__init__(send)
        self.policy = policy

    def should_buffer(self, start: Message) -> bool:
        return start["status"] == 200

    def finish(self, status: int, body: bytes) -> bytes:
        spec = document_guard_responses(json.loads(body), self.policy.api_media_types, self.policy.protected_prefixes)
        spec = exclusive_bounds_as_openapi_30(spec)
        for document in self.policy.spec_documenters:
            spec = document(spec)
        return json.dumps(spec).encode()


def exclusive_bounds_as_openapi_30(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with pydantic's exclusive bounds written as OpenAPI 3.0 reads them.

    BentoML labels its spec OpenAPI 3.0 but fills it with pydantic's JSON Schema 2020-12, where
    `exclusiveMinimum: 0` is the bound itself; OpenAPI 3.0 (JSON Schema draft 4) reads it as a
    flag beside `minimum`, so `Field(gt=0)` makes the schema invalid there (schemathesis refuses
    to generate from it). It becomes `minimum: 0, exclusiveMinimum: true`; likewise the maximum.
    """
    if str(spec.get("openapi", "")).startswith("3.0"):
        _rewrite_exclusive_bounds(spec)
    return spec


def _rewrite_exclusive_bounds(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite_exclusive_bounds(item)
        return
    if not isinstance(node, dict):
        return
    for inclusive, exclusive, tighter in (("minimum", "exclusiveMinimum", operator.gt),
                                          ("maximum", "exclusiveMaximum", operator.lt)):
        bound = node.get(exclusive)
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            continue  # already a 3.0 flag, or absent
        if inclusive in node and tighter(node[inclusive], bound):
            del node[exclusive]  # the inclusive bound beside it is the tighter one
        else:
            node[inclusive], node[exclusive] = bound, True
    for child in node.values():
        _rewrite_exclusive_bounds(child)


def service_media_types(service: Any) -> dict[str, frozenset[str]]:
    """Each `@bentoml.api` route of a BentoML service with the media type its spec documents."""
    return {api.route: frozenset({api.input_spec.mime_type()}) for api in service.apis.values()}
