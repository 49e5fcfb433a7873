"""The HTTP service (FastAPI): rerank endpoints that existing clients already speak, and the RAG pipeline.

    POST /v1/rerank, /v2/rerank   Cohere's rerank API (request and response)
    POST /rerank                  Hugging Face Text Embeddings Inference's rerank API
    POST /search, /ask            the two-stage pipeline over a loaded index
    GET  /health, /ready, /metrics

Errors are JSON: {"error": TYPE, "message": TEXT} (422 adds "details"). Every scoring request goes
through one `DynamicBatcher`, so concurrent requests share forward passes and a full queue answers 503
with Retry-After instead of growing without bound."""

from __future__ import annotations

import math
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StrictBool, StrictStr, field_validator

from .batching import DynamicBatcher, Overloaded
from .config import ServeConfig
from .generators import GeneratorError
from .prompt import cited


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


class CohereRerankRequest(BaseModel):
    """Cohere's /v1/rerank and /v2/rerank body. `model` is accepted and echoed (one model is served)."""

    query: StrictStr
    documents: list[StrictStr | dict[str, Any]] = Field(min_length=1)
    model: StrictStr | None = None
    top_n: int | None = Field(default=None, ge=1)
    return_documents: StrictBool = False
    max_tokens_per_doc: int | None = Field(default=None, ge=1)
    rank_fields: list[StrictStr] | None = None
    max_chunks_per_doc: int | None = Field(default=None, ge=1)  # v1; accepted, documents are scored whole

    _query = field_validator("query")(_non_blank)


class TeiRerankRequest(BaseModel):
    """TEI's /rerank body."""

    query: StrictStr
    texts: list[StrictStr] = Field(min_length=1)
    raw_scores: StrictBool = False
    return_text: StrictBool = False
    truncate: StrictBool = False
    truncation_direction: Literal["Right", "Left", "right", "left"] = "Right"

    _query = field_validator("query")(_non_blank)


class SearchRequest(BaseModel):
    query: StrictStr
    k: int | None = Field(default=None, ge=1, le=1000)
    top_n: int | None = Field(default=None, ge=1, le=1000)

    _query = field_validator("query")(_non_blank)


def create_app(config: ServeConfig, reranker, pipeline=None) -> FastAPI:
    """The app around a loaded reranker (and optionally a `Pipeline` whose reranker is the app's batcher)."""
    from .metrics import ServiceMetrics

    metrics = ServiceMetrics()
    batcher = DynamicBatcher(reranker, config.max_batch_tokens, config.max_batch_requests, config.max_queue_pairs,
                             config.max_wait_ms, on_batch=metrics.observe_batch)
    if pipeline is not None:
        pipeline.reranker = batcher
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(batcher.score, [("warm-up", "warm-up")])  # first forward pass before traffic
        app.state.ready = True
        yield
        batcher.close()

    app = FastAPI(title="rerankforge", version="0.1.0", lifespan=lifespan,
                  description="Domain reranker: Cohere- and TEI-compatible rerank, search and ask.")
    app.state.ready = False
    app.state.batcher = batcher

    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
            response = _error(413, "payload_too_large", f"request body of {length} bytes exceeds max_body_bytes="
                                                        f"{config.max_body_bytes}")
        elif request.method == "POST" and length is None and len(await request.body()) > config.max_body_bytes:
            response = _error(413, "payload_too_large", f"request body exceeds max_body_bytes={config.max_body_bytes}")
        else:
            response = await call_next(request)
        metrics.observe_request(request.url.path, response.status_code, time.perf_counter() - started)
        return response

    def authorized(request: Request) -> None:
        if api_key and request.headers.get("authorization", "") != f"Bearer {api_key}":
            raise ApiError(401, "unauthorized", "missing or wrong API key: send `Authorization: Bearer KEY`",
                           {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError):
        return _error(error.status, error.kind, error.message, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError):
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        summary = "; ".join(f"{'.'.join(map(str, d['loc'][1:])) or 'body'}: {d['msg']}" for d in details[:5])
        return _error(422, "invalid_request", summary, details=details)

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, busy: Overloaded):
        return _error(503, "overloaded", str(busy), headers={"Retry-After": str(math.ceil(busy.retry_after))})

    @app.exception_handler(GeneratorError)
    async def generator_failed(_: Request, error: GeneratorError):
        return _error(502, "generator_failed", str(error))

    score = batcher.score

    def check_count(count: int) -> None:
        if count > config.max_documents:
            raise ApiError(413, "too_many_documents", f"{count} documents exceed max_documents={config.max_documents}")

    def cohere(body: CohereRerankRequest, version: str) -> dict:
        check_count(len(body.documents))
        texts = [_document_text(d, body.rank_fields, i) for i, d in enumerate(body.documents)]
        if body.max_tokens_per_doc:
            texts = [_truncate_tokens(reranker.tokenizer, t, body.max_tokens_per_doc) for t in texts]
        scores = score([(body.query, t) for t in texts])
        order = sorted(range(len(texts)), key=lambda i: -scores[i])[:body.top_n or len(texts)]
        results = []
        for i in order:
            result = {"index": i, "relevance_score": _sigmoid(scores[i])}
            if body.return_documents:
                result["document"] = {"text": texts[i]} if isinstance(body.documents[i], str) else body.documents[i]
            results.append(result)
        return {"id": str(uuid.uuid4()), "results": results,
                "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}}}

    @app.post("/v1/rerank", dependencies=[Depends(authorized)])
    def rerank_v1(body: CohereRerankRequest) -> dict:
        return cohere(body, "1")

    @app.post("/v2/rerank", dependencies=[Depends(authorized)])
    def rerank_v2(body: CohereRerankRequest) -> dict:
        return cohere(body, "2")

    @app.post("/rerank", dependencies=[Depends(authorized)])
    def rerank_tei(body: TeiRerankRequest) -> list[dict]:
        check_count(len(body.texts))
        texts = body.texts
        limit = reranker.max_length
        if not body.truncate:
            too_long = [i for i, t in enumerate(texts) if _pair_tokens(reranker.tokenizer, body.query, t) > limit]
            if too_long:
                raise ApiError(413, "validation", f"texts {too_long[:5]} are longer than the model's {limit} tokens "
                                                  "with the query; send truncate: true")
        elif body.truncation_direction.lower() == "left":
            texts = [_truncate_tokens(reranker.tokenizer, t, limit, left=True) for t in texts]
        scores = score([(body.query, t) for t in texts])
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        return [{"index": i, "score": float(scores[i]) if body.raw_scores else _sigmoid(scores[i]),
                 **({"text": body.texts[i]} if body.return_text else {})} for i in order]

    def needs_index():
        if pipeline is None:
            raise ApiError(404, "no_index", "this server has no index: start it with `index: FOLDER` for /search and /ask")
        return pipeline

    @app.post("/search", dependencies=[Depends(authorized)])
    def search(body: SearchRequest) -> dict:
        passages = needs_index().search(body.query, body.k, body.top_n)
        return {"query": body.query, "k": body.k or pipeline.k, "top_n": body.top_n or pipeline.top_n,
                "results": [p.as_dict() for p in passages]}

    @app.post("/ask", dependencies=[Depends(authorized)])
    def ask(body: SearchRequest) -> dict:
        answer = needs_index().ask(body.query, body.k, body.top_n)
        return {"query": body.query, "answer": answer.answer, "generator": answer.generator,
                "citations": cited(answer.answer or "", len(answer.sources)),
                "sources": [p.as_dict() for p in answer.sources], "messages": answer.messages}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        if not app.state.ready:
            return _error(503, "not_ready", "model still loading")
        return {"status": "ready", "reranker": reranker.name, "index": bool(pipeline)}

    @app.get("/metrics")
    def prometheus() -> Response:
        body, content_type = metrics.render(batcher.queued_pairs)
        return Response(body, media_type=content_type)

    return app


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message, **extra}, status_code=status, headers=headers)


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + math.exp(-float(x)))) if x > -700 else 0.0


def _document_text(document: str | dict[str, Any], rank_fields: list[str] | None, index: int) -> str:
    """A Cohere document: a string, or an object scored by its `text` (or by `rank_fields`, as "key: value"
    lines, like Cohere's semi-structured reranking)."""
    if isinstance(document, str):
        text = document
    elif rank_fields:
        missing = [f for f in rank_fields if f not in document]
        if missing:
            raise ApiError(422, "invalid_request", f"documents.{index}: rank_fields {missing} not in the document")
        text = "\n".join(f"{f}: {document[f]}" for f in rank_fields)
    elif isinstance(document.get("text"), str):
        text = document["text"]
    else:
        raise ApiError(422, "invalid_request", f"documents.{index}: expected a string or an object with a string "
                                               f"'text' (or pass rank_fields), got keys {sorted(document)}")
    if not text.strip():
        raise ApiError(422, "invalid_request", f"documents.{index}: empty document")
    return text


def _pair_tokens(tokenizer, query: str, text: str) -> int:
    return len(tokenizer(query, text, truncation=False, verbose=False)["input_ids"])


def _truncate_tokens(tokenizer, text: str, limit: int, left: bool = False) -> str:
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    if len(offsets) <= limit:
        return text
    return text[offsets[-limit][0]:] if left else text[:offsets[limit - 1][1]]
