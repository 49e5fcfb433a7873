"""The inspect web app: the page and its scripts, the JSON API (routes.py), and what guards them.

    GET  /                  the page (queries, one query, training data, labelling, charts)
    GET  /static/NAME       its script and style, and plotly.js from the installed plotly package (no CDN)
    GET  /api/...           the data the page shows; POST /api/labels appends a judgment to the labels file

Every response carries a Content-Security-Policy that runs no script but the page's own files, so a document
holding HTML or a script can only ever show as text. With an API key every path but the login page needs it:
`Authorization: Bearer KEY`, or the cookie the login page sets. A POST must be JSON, small, and from the page's
own origin."""

from __future__ import annotations

import hashlib
import hmac
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from starlette.exceptions import HTTPException as StarletteHTTPException

from rerankforge.core.errors import RerankforgeError

from .routes import api_router
from .state import InspectState

STATIC = ("inspect.js", "inspect.css", "index.html", "login.html")
COOKIE = "rerankforge_inspect"
MAX_BODY = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
"""Scripts from the page's own files only (no inline script, no eval); plotly sets inline styles."""


class Login(BaseModel):
    key: str = Field(max_length=4096)


def create_app(state: InspectState, key: str | None = None) -> FastAPI:
    app = FastAPI(title="rerankforge inspect", docs_url=None, redoc_url=None, openapi_url=None)
    token = hashlib.sha256(key.encode()).hexdigest() if key else None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token and request.url.path not in ("/login", "/static/login.html") and not _authorized(request, token):
            if request.url.path == "/" and request.method == "GET":
                return _secured(RedirectResponse("/login", status_code=303))
            return _secured(JSONResponse({"error": "missing or wrong API key"}, status_code=401,
                                         headers={"WWW-Authenticate": "Bearer"}))
        refused = _refuse_post(request)
        return _secured(refused or await call_next(request))

    @app.exception_handler(RerankforgeError)
    async def user_error(request: Request, error: RerankforgeError):
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        errors = error.errors()
        text = "; ".join(f"{'.'.join(map(str, e.get('loc', [])[1:]))}: {e.get('msg')}" for e in errors)
        return JSONResponse({"error": text or "invalid request"}, status_code=422)

    @app.get("/")
    def page():
        return FileResponse(_static("index.html"), media_type="text/html")

    @app.get("/login")
    def login_page():
        return FileResponse(_static("login.html"), media_type="text/html")

    @app.post("/login")
    def login(body: Login):
        if not token or not hmac.compare_digest(hashlib.sha256(body.key.encode()).hexdigest(), token):
            raise HTTPException(401, "wrong API key")
        response = JSONResponse({"ok": True})
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/static/{name}")
    def static(name: str):
        if name == "plotly.min.js":  # 4.6 MB: the browser keeps it
            return FileResponse(_plotly(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
        if name not in STATIC:
            raise HTTPException(404, f"no static file {name!r}")
        kinds = {"js": "text/javascript", "css": "text/css", "html": "text/html"}
        return FileResponse(_static(name), media_type=kinds[name.rsplit(".", 1)[1]])

    app.include_router(api_router(state))
    return app


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and given:
        return hmac.compare_digest(hashlib.sha256(given.strip().encode()).hexdigest(), token)
    return hmac.compare_digest(request.cookies.get(COOKIE, ""), token)


def _refuse_post(request: Request) -> Response | None:
    """A POST from another origin (a page elsewhere making the browser post here), one that is not JSON, or one
    over MAX_BODY bytes by its Content-Length is answered here, before anything reads it."""
    if request.method != "POST":
        return None
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        return JSONResponse({"error": f"cross-origin POST refused (origin {origin!r})"}, status_code=403)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return JSONResponse({"error": "expected Content-Type: application/json"}, status_code=415)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_BODY:
        return JSONResponse({"error": f"expected a JSON body of at most {MAX_BODY} bytes with Content-Length"},
                            status_code=413 if length and length.isdigit() else 411)
    return None


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _static(name: str) -> Path:
    return Path(str(resources.files("rerankforge.inspector") / "static" / name))


def _plotly() -> Path:
    try:
        import plotly
    except ImportError:
        raise HTTPException(404, "charts need plotly (pip install plotly): its bundled plotly.min.js draws them")
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
