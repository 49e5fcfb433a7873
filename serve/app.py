"""The HTTP service (FastAPI): rerank endpoints that existing clients already speak, and the RAG pipeline.

    POST /v1/rerank, /v2/rerank   Cohere's rerank API (request and response)
    POST /rerank                  Hugging Face Text Embeddings Inference's rerank API (body with `texts`), and
                                  Infinity's, Jina's and vLLM's (body with `documents`), each answered in its shape
    GET  /v1/models, /models, /info   the served model: OpenAI's (and Infinity's, vLLM's) model list, TEI's info
    POST /search, /ask            the two-stage pipeline over a loaded index
    GET  /health, /ready, /metrics

The routes are in rerank_routes.py (the rerank dialects) and service_routes.py (search, ask, model info, health,
metrics); every error, whatever raised it, is JSON (errors.py; every response carries X-Request-ID).
Every scoring request goes through one `DynamicBatcher`, so concurrent requests share forward passes and
a full queue answers 429 with Retry-After instead of growing without bound."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from .batching import DynamicBatcher
from .config import ServeConfig, api_key
from .errors import add_error_handlers
from .middleware import ApiKeyGuard, BodyLimit, RequestLog
from .rerank_routes import Rerankers, rerank_router
from .schemas import error_responses
from .service_routes import pipeline_router, status_router


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
    add_error_handlers(app)
    guarded = (401,) if key else ()
    scoring = error_responses(400, *guarded, 408, 413, 415, 422, 429, 500, 503)
    rerankers = Rerankers(config, reranker, batcher.score)
    routers = [rerank_router(rerankers, scoring), pipeline_router(pipeline, rerankers.check_query, scoring, reranker.calibration),
               status_router(config, reranker, metrics, batcher, pipeline is not None, guarded)]
    for router in routers:
        app.include_router(router)
    # the templates the metrics label requests with: FastAPI's own (/openapi.json, /docs) and the routers'
    routes = [r for r in app.router.routes if hasattr(r, "path")] + [r for router in routers for r in router.routes]
    app.add_middleware(RequestLog, metrics=metrics, routes=routes)  # outermost: counts every answer
    return app
