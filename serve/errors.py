"""Every error the service answers, whatever raised it, as JSON: {"error": TYPE, "message": TEXT} (422 adds
"details", 500 and 502 a "request_id" that the server log files the cause under)."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batching import Overloaded, TooLarge
from .generators import GeneratorError
from .middleware import error_response, logger


class ApiError(Exception):
    """An answer other than 200 that a route decides on: its status, error type and message."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers


def add_error_handlers(app: FastAPI) -> None:
    """Our errors, FastAPI's and Starlette's own, a full queue, too many pairs and a failed generator, each
    answered in the one JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError):
        return error_response(error.status, error.kind, error.message, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError):
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        if details and details[0]["type"] == "json_invalid":
            syntax = error.errors()[0].get("ctx", {}).get("error", "a syntax error")
            return error_response(400, "invalid_json", f"body: expected JSON, got {syntax} at character "
                                                       f"{details[0]['loc'][-1]}")
        summary = "; ".join(f"{'.'.join(map(str, d['loc'][1:])) or 'body'}: {d['msg']}" for d in details[:5])
        return error_response(422, "invalid_request", summary, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        """FastAPI's and Starlette's own errors (unparsable body, no such route, wrong method), in our shape."""
        kind, message = {
            400: ("invalid_json", "body: expected a JSON object in UTF-8, got something the JSON parser refused "
                                  "(bad bytes, or nesting too deep)"),
            404: ("not_found", f"no route {request.url.path}"),
            405: ("method_not_allowed", f"{request.method} is not allowed on {request.url.path}"),
        }.get(error.status_code, ("http_error", str(error.detail)))
        return error_response(error.status_code, kind, message, headers=error.headers)

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, busy: Overloaded):
        return error_response(429, "overloaded", str(busy), headers={"Retry-After": str(math.ceil(busy.retry_after))})

    @app.exception_handler(TooLarge)
    async def too_large(_: Request, error: TooLarge):
        return error_response(413, "too_many_pairs", str(error))

    @app.exception_handler(GeneratorError)
    async def generator_failed(request: Request, error: GeneratorError):
        """The upstream's answer can hold anything (its URL, a key it echoes): it goes to the log only."""
        request_id = request.state.request_id
        logger.error("request %s: %s", request_id, error)
        return error_response(502, "generator_failed", f"the answer generator failed; the server log has the "
                                                       f"details under request id {request_id}",
                              request_id=request_id)
