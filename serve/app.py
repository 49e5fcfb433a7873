"""The HTTP service (FastAPI): rerank endpoints that existing clients already speak, and the RAG pipeline.

    POST /v1/rerank, /v2/rerank   Cohere's rerank API (request and response)
    POST /rerank                  Hugging Face Text Embeddings Inference's rerank API (body with `texts`), and
                                  Infinity's, Jina's and vLLM's (body with `documents`), each answered in its shape
    GET  /v1/models, /models, /info   the served model: OpenAI's (and Infinity's, vLLM's) model list, TEI's info
    POST /search, /ask            the two-stage pipeline over a loaded index
    GET  /health, /ready, /metrics

Every error, whatever raised it, is JSON: {"error": TYPE, "message": TEXT} (422 adds "details", 500 and
502 a "request_id" that the server log files the cause under; every response carries X-Request-ID).
Every scoring request goes through one `DynamicBatcher`, so concurrent requests share forward passes and
a full queue answers 429 with Retry-After instead of growing without bound. Text is cut before it is
tokenised and queries are capped (`max_query_tokens`), so no request costs more tokenising than the
model's own length allows."""

from __future__ import annotations

import math
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from rerankforge.reranker.clipping import Blanks, clip, clip_text

from .batching import DynamicBatcher, Overloaded, TooLarge
from .config import ServeConfig, api_key
from .differences import described
from .generators import GeneratorError
from .middleware import ApiKeyGuard, BodyLimit, RequestLog, error_response, logger
from .prompt import cited
from .schemas import (AskResponse, CohereRerankRequest, CohereRerankResponse, DocumentsRerankRequest, HealthResponse,
                      ModelList, ReadyResponse, RerankRequest, RerankResponse, SearchRequest, SearchResponse, TeiInfo,
                      TeiRerankRequest, error_responses)


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers


def create_app(config: ServeConfig, reranker, pipeline=None) -> FastAPI:
    """The app around a loaded reranker (and optionally a `Pipeline` whose reranker is the app's batcher)."""
    from .metrics import ServiceMetrics

    key = api_key(config)  # before anything starts: a configured but missing key is an error
    metrics = ServiceMetrics()
    batcher = DynamicBatcher(reranker, config.max_batch_tokens, config.max_batch_requests, config.max_queue_pairs,
                             config.max_wait_ms, on_batch=metrics.observe_batch)
    if pipeline is not None:
        pipeline.reranker = batcher

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(batcher.score, [("warm-up", "warm-up")])  # first forward pass before traffic
        app.state.ready = True
        yield
        batcher.close()

    app = FastAPI(title="rerankforge", version="0.1.0", lifespan=lifespan,
                  description="Domain reranker: rerank as Cohere, TEI, Infinity, Jina and vLLM speak it; search "
                              "and ask.")
    app.state.ready = False
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, timeout=config.body_timeout)
    if key:
        app.add_middleware(ApiKeyGuard, key=key)
    app.add_middleware(RequestLog, metrics=metrics, router=app.router)  # outermost: counts every answer
    guarded = (401,) if key else ()
    scoring = error_responses(400, *guarded, 408, 413, 415, 422, 429, 500, 503)

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

    score = batcher.score
    tokenizer = reranker.tokenizer
    blanks = Blanks.of(tokenizer)

    def check_count(count: int) -> None:
        if count > config.max_documents:
            raise ApiError(413, "too_many_documents", f"{count} documents exceed max_documents={config.max_documents}")

    def check_query(query: str) -> None:
        """At most `max_query_tokens` tokens, counted on a cut copy: a long query costs no more to refuse."""
        limit = config.max_query_tokens
        cut = clip(query, limit + 1, blanks)
        count = len(tokenizer(cut.text, add_special_tokens=False, verbose=False)["input_ids"])
        if count > limit or not cut.whole:
            got = f"{count} tokens" if cut.whole else f"over {len(cut.text)} characters of text"
            raise ApiError(422, "invalid_request", f"query: expected at most max_query_tokens={limit} tokens, "
                                                   f"got {got}")

    def cohere(body: CohereRerankRequest, version: str) -> dict:
        check_count(len(body.documents))
        check_query(body.query)
        texts = [_document_text(d, body.rank_fields, i) for i, d in enumerate(body.documents)]
        if body.max_tokens_per_doc:  # beyond the model's length the scorer truncates anyway
            limit = min(body.max_tokens_per_doc, reranker.max_length)
            texts = [_truncate_tokens(tokenizer, blanks, t, limit) for t in texts]
        scores = score([(body.query, t) for t in texts]) if texts else []
        order = sorted(range(len(texts)), key=lambda i: -scores[i])[:body.top_n or len(texts)]
        relevance = [float(p) for p in reranker.probability(scores)] if texts else []  # calibrated on dev
        results = []
        for i in order:
            result = {"index": i, "relevance_score": relevance[i]}
            if body.return_documents:
                document = body.documents[i]
                result["document"] = {"text": document} if isinstance(document, str) else document
            results.append(result)
        return {"id": str(uuid.uuid4()), "results": results,
                "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}}}

    cohere_route = {"response_model": CohereRerankResponse, "response_model_exclude_unset": True,
                    "responses": scoring}

    @app.post("/v1/rerank", **cohere_route, description=described("/v1/rerank", "Cohere's v1 rerank."))
    def rerank_v1(body: CohereRerankRequest) -> dict:
        return cohere(body, "1")

    @app.post("/v2/rerank", **cohere_route, description=described("/v2/rerank", "Cohere's v2 rerank."))
    def rerank_v2(body: CohereRerankRequest) -> dict:
        return cohere(body, "2")

    @app.post("/rerank", response_model=RerankResponse, response_model_exclude_unset=True, responses=scoring,
              description=described("/rerank", "TEI's body (`texts`) gets TEI's answer, a list; Infinity's, Jina's "
                                               "and vLLM's (`documents`) theirs."))
    def rerank(body: RerankRequest) -> list[dict] | dict:
        """TEI's body (`texts`) gets TEI's answer, a list; Infinity's, Jina's or vLLM's (`documents`) theirs."""
        return rerank_tei(body) if isinstance(body, TeiRerankRequest) else rerank_documents(body)

    def rerank_documents(body: DocumentsRerankRequest) -> dict:
        check_count(len(body.documents))
        check_query(body.query)
        pairs = [(body.query, _document_text(d, None, i, hint="")) for i, d in enumerate(body.documents)]
        scores = score(pairs)
        tokens = sum(len(pair.input_ids) for pair in reranker.encoder.encode(pairs))
        order = sorted(range(len(pairs)), key=lambda i: -scores[i])[:body.top_n or len(pairs)]
        relevance = scores if body.raw_scores else reranker.probability(scores)
        results = []
        for i in order:
            result = {"index": i, "relevance_score": float(relevance[i])}
            if body.return_documents:
                document = body.documents[i]
                result["document"] = {"text": document} if isinstance(document, str) else document
            results.append(result)
        return {"object": "rerank", "id": f"rerank-{uuid.uuid4()}", "created": int(time.time()),
                "model": reranker.name, "results": results,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def rerank_tei(body: TeiRerankRequest) -> list[dict]:
        if not body.texts:
            raise ApiError(400, "empty", "texts: expected at least one text, got none")  # TEI's "Batch is empty"
        check_count(len(body.texts))
        check_query(body.query)
        texts = body.texts
        limit = reranker.max_length
        if not body.truncate:
            too_long = [i for i, t in enumerate(texts) if _pair_tokens(tokenizer, blanks, body.query, t, limit) > limit]
            if too_long:
                raise ApiError(413, "validation", f"texts {too_long[:5]} are longer than the model's {limit} tokens "
                                                  "with the query; send truncate: true")
        elif body.truncation_direction.lower() == "left":
            texts = [_truncate_tokens(tokenizer, blanks, t, limit, left=True) for t in texts]
        scores = score([(body.query, t) for t in texts])
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        relevance = reranker.probability(scores)
        return [{"index": i, "score": float(scores[i]) if body.raw_scores else float(relevance[i]),
                 **({"text": body.texts[i]} if body.return_text else {})} for i in order]

    def needs_index():
        if pipeline is None:
            raise ApiError(404, "no_index", "this server has no index: start it with `index: FOLDER` for /search and /ask")
        return pipeline

    @app.post("/search", response_model=SearchResponse, responses={**scoring, **error_responses(404)})
    def search(body: SearchRequest) -> dict:
        found = needs_index()
        check_query(body.query)
        passages = found.search(body.query, body.k, body.top_n, body.min_relevance)
        return {"query": body.query, "k": body.k or pipeline.k, "top_n": body.top_n or pipeline.top_n,
                "results": [p.as_dict() for p in passages]}

    @app.post("/ask", response_model=AskResponse, responses={**scoring, **error_responses(404, 502)})
    def ask(body: SearchRequest) -> dict:
        found = needs_index()
        check_query(body.query)
        answer = found.ask(body.query, body.k, body.top_n, body.min_relevance)
        return {"query": body.query, "answer": answer.answer, "generator": answer.generator,
                "citations": cited(answer.answer or "", len(answer.sources)),
                "sources": [p.as_dict() for p in answer.sources], "messages": answer.messages}

    loaded = int(time.time())

    @app.get("/v1/models", response_model=ModelList, responses=error_responses(*guarded))
    @app.get("/models", response_model=ModelList, responses=error_responses(*guarded),
             summary="The served model (Infinity's path for OpenAI's model list)")
    def models() -> dict:
        return {"object": "list", "data": [{"id": reranker.name, "object": "model", "created": loaded,
                                            "owned_by": "rerankforge"}]}

    @app.get("/info", response_model=TeiInfo, responses=error_responses(*guarded))
    def info() -> dict:
        return _tei_info(config, reranker)

    @app.get("/health", response_model=HealthResponse)
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", response_model=ReadyResponse, responses=error_responses(503))
    def ready():
        if not app.state.ready:
            return error_response(503, "not_ready", "model still loading")
        return {"status": "ready", "reranker": reranker.name, "index": bool(pipeline)}

    @app.get("/metrics", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format."}})
    def prometheus() -> Response:
        body, content_type = metrics.render(batcher.queued_pairs)
        return Response(body, media_type=content_type)

    return app



def _tei_info(config: ServeConfig, reranker) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("rerankforge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "unknown"
    labels = getattr(getattr(reranker.model, "config", None), "id2label", None) or {0: "LABEL_0"}
    dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(reranker.precision.name,
                                                                           reranker.precision.name)
    return {"model_id": config.reranker, "model_sha": None, "model_dtype": dtype, "served_model_name": reranker.name,
            "model_type": {"reranker": {"id2label": {str(i): label for i, label in labels.items()},
                                        "label2id": {label: int(i) for i, label in labels.items()}}},
            "max_concurrent_requests": config.max_queue_pairs, "max_input_length": reranker.max_length,
            "max_batch_tokens": config.max_batch_tokens, "max_batch_requests": config.max_batch_requests,
            "max_client_batch_size": config.max_documents, "auto_truncate": False, "tokenization_workers": 1,
            "version": ours, "sha": None, "docker_label": None}


def _document_text(document: str | dict[str, Any], rank_fields: list[str] | None, index: int,
                   hint: str = " (or pass rank_fields)") -> str:
    """A Cohere document: a string, or an object scored by its `text` (or by `rank_fields`, as "key: value"
    lines, like Cohere's semi-structured reranking)."""
    if isinstance(document, str):
        return document
    if rank_fields:  # Cohere's semi-structured documents: a field one of them lacks is left out of its text
        return "\n".join(f"{f}: {document[f]}" for f in rank_fields if f in document)
    if isinstance(document.get("text"), str):
        return document["text"]
    raise ApiError(422, "invalid_request", f"documents.{index}: expected a string or an object with a string "
                                           f"'text'{hint}, got keys {sorted(document)}")


def _pair_tokens(tokenizer, blanks: Blanks, query: str, text: str, limit: int) -> int:
    """Tokens of the pair, or more than `limit` when it is longer: only what `limit` tokens can span is read."""
    return len(tokenizer(clip_text(query, limit, blanks), clip_text(text, limit, blanks), truncation=False,
                         verbose=False)["input_ids"])


def _truncate_tokens(tokenizer, blanks: Blanks, text: str, limit: int, left: bool = False) -> str:
    """`text` as the first (or last) `limit` tokens of it, runs of characters that make no token collapsed."""
    text = clip_text(text, limit, blanks, left=left)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    if len(offsets) <= limit:
        return text
    return text[offsets[-limit][0]:] if left else text[:offsets[limit - 1][1]]
