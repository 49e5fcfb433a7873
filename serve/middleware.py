"""The service's ASGI middleware, outermost first: request ids, metrics and unexpected failures; the API key;
the body limit.

Plain ASGI rather than `@app.middleware("http")`, so each acts before FastAPI reads the body: a request
without the key is refused unread, and a body is counted while it streams in, so a chunked upload past
`max_body_bytes` is cut off at the limit instead of being read whole first."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import Match

logger = logging.getLogger("rerankforge.serve")

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Probes: they answer without the API key."""

UNMATCHED = "unmatched"
"""The metrics label of every request no route matches (one label, however many paths are tried)."""


TEI_ERROR_TYPES = {429: "Overloaded", 503: "Unhealthy"}
"""TEI's `error_type` (router/src/lib.rs `ErrorType`) where it is not the rule (`Validation` below 500, `Backend`
from 500): TEI's clients read it."""


def error_body(status: int, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one shape of every error: {"error": KIND, "message": TEXT, "error_type": TEI's class, ...}."""
    error_type = "Empty" if kind == "empty" else TEI_ERROR_TYPES.get(
        status, "Backend" if status >= 500 else "Validation")
    return {"error": kind, "message": message, "error_type": error_type, **extra}


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    """An error in the one shape (`error_body`)."""
    return JSONResponse(error_body(status, kind, message, **extra), status_code=status, headers=headers)


class RequestLog:
    """Gives each request an id (`request.state.request_id`, the X-Request-ID header), counts it in the
    metrics under its route's template, and turns an unexpected exception into a 500 that names only the
    id; the traceback goes to the log under that id."""

    def __init__(self, app, metrics, routes: list):
        self.app, self.metrics, self.routes = app, metrics, routes  # the routers' own routes, whose templates label

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started, status = time.perf_counter(), None

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("request %s: %s %s failed", request_id, scope["method"], scope["path"])
            if status is not None:  # too late for an error body; the server closes the connection
                raise
            await error_response(500, "internal_error", f"internal server error; the server log has the details "
                                                        f"under request id {request_id}",
                                 request_id=request_id)(scope, receive, send_with_id)
        finally:  # no answer at all: the client left first (499, as nginx counts it)
            self.metrics.observe_request(self._route(scope), status or 499, time.perf_counter() - started)

    def _route(self, scope) -> str:
        """The template of the route the request is for (`/v2/rerank`), never the raw path: labels stay few."""
        for route in self.routes:
            if route.matches(scope)[0] is not Match.NONE:
                return route.path
        return UNMATCHED


class ApiKeyGuard:
    """Every path but the probes needs `Authorization: Bearer KEY` (the scheme in any case); the key is
    compared in constant time, and checked before anything reads the body."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
            return await error_response(401, "unauthorized", "missing or wrong API key: send `Authorization: "
                                                             "Bearer KEY`",
                                        {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        await self.app(scope, receive, send)

    def _authorized(self, scope) -> bool:
        header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        scheme, _, token = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)


class BodyLimit:
    """Reads the body. Refuses one over `max_bytes` with 413: at once when Content-Length says so, else as soon as the
    bytes received pass the limit; and one that has not fully arrived `timeout` seconds after its headers with
    408; one that is not JSON in UTF-8 by its Content-Type (415) or its bytes (400, see `_not_json`). The app then
    gets the body as one message, so at most `max_bytes` (plus one chunk) of a request is
    ever held, for at most `timeout` seconds."""

    def __init__(self, app, max_bytes: int, timeout: float = 30.0):
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(f"request body of {int(length)} bytes exceeds max_body_bytes="
                                         f"{self.max_bytes}")(scope, receive, send)
        chunks, size = [], 0
        deadline = asyncio.get_running_loop().time() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except asyncio.TimeoutError:
                return await error_response(408, "request_timeout", f"request body not received within "
                                                                    f"body_timeout={self.timeout:g} s",
                                            {"Connection": "close"})(scope, receive, send)
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._too_large(f"request body exceeds max_body_bytes={self.max_bytes}")(
                    scope, receive, send)
            if not message.get("more_body", False):
                break
        body, delivered = b"".join(chunks), False
        refusal = _not_json(scope, body)
        if refusal is not None:
            return await refusal(scope, receive, send)

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _too_large(message: str) -> JSONResponse:
        return error_response(413, "payload_too_large", message, {"Connection": "close"})


JSON_TYPES = ("application/json",)


def _not_json(scope, body: bytes) -> JSONResponse | None:
    """Every POST body here is JSON in UTF-8 (RFC 8259). A Content-Type that is not JSON gets 415
    (as TEI answers; a form-encoded `curl -d` and a missing Content-Type included), so the client learns what to
    send instead of a 422 about fields. NUL bytes mean UTF-16 or UTF-32, which
    Python's JSON parser would otherwise guess its way through: 400."""
    if not body:
        return None
    header = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
    media_type, _, params = header.decode("latin-1").partition(";")
    media_type = media_type.strip().lower()
    charset = next((p.split("=", 1)[1].strip().strip('"').lower() for p in params.split(";")
                    if p.strip().lower().startswith("charset=")), "utf-8")
    if not (media_type in JSON_TYPES or media_type.endswith("+json")) or charset not in ("utf-8", "utf8"):
        got = repr(header.decode("latin-1")[:100]) if header else "none"
        return error_response(415, "unsupported_media_type", f"body: expected Content-Type: application/json "
                                                             f"(UTF-8), got {got}")
    if b"\x00" in body:
        return error_response(400, "invalid_json", "body: expected JSON in UTF-8, got NUL bytes (UTF-16 or UTF-32?)")
    return None
