"""The service's other routes: the two-stage pipeline (`/search`, `/ask`) over a loaded index, and what the
service is and how it is doing (`/v1/models`, `/models`, `/info`, `/health`, `/ready`, `/metrics`)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from rerankforge.core.errors import RerankforgeError

from .config import ServeConfig
from .errors import ApiError
from .middleware import error_response
from .prompt import cited
from .schemas import (AskResponse, HealthResponse, ModelList, ReadyResponse, SearchRequest, SearchResponse, TeiInfo,
                      error_responses)


def pipeline_router(pipeline, check_query, responses: dict, calibration=None) -> APIRouter:
    """/search and /ask over `pipeline` (None: both answer 404 no_index); `check_query` refuses a query too long;
    `calibration` (the reranker's) reads a request's min_precision / min_recall as a threshold."""
    router = APIRouter()

    def threshold(body: SearchRequest) -> float | None:
        if body.min_precision is None and body.min_recall is None:
            return body.min_relevance
        try:
            return calibration.min_relevance_for(body.min_precision, body.min_recall)
        except RerankforgeError as error:
            raise ApiError(422, "invalid_request", str(error)) from None

    def needs_index():
        if pipeline is None:
            raise ApiError(404, "no_index", "this server has no index: start it with `index: FOLDER` for /search and /ask")
        return pipeline

    @router.post("/search", response_model=SearchResponse, responses={**responses, **error_responses(404)})
    def search(body: SearchRequest) -> dict:
        found = needs_index()
        check_query(body.query)
        passages = found.search(body.query, body.k, body.top_n, threshold(body))
        return {"query": body.query, "k": body.k or pipeline.k, "top_n": body.top_n or pipeline.top_n,
                "results": [p.as_dict() for p in passages]}

    @router.post("/ask", response_model=AskResponse, responses={**responses, **error_responses(404, 502)})
    def ask(body: SearchRequest) -> dict:
        found = needs_index()
        check_query(body.query)
        answer = found.ask(body.query, body.k, body.top_n, threshold(body))
        return {"query": body.query, "answer": answer.answer, "generator": answer.generator,
                "citations": cited(answer.answer or "", len(answer.sources)),
                "sources": [p.as_dict() for p in answer.sources], "messages": answer.messages}

    return router


def status_router(config: ServeConfig, reranker, metrics, batcher, has_index: bool, guarded: tuple) -> APIRouter:
    """The served model (OpenAI's, Infinity's and vLLM's model list; TEI's info), liveness, readiness (after the
    warm-up forward pass) and Prometheus metrics; `guarded` is (401,) where an API key is required."""
    router = APIRouter()
    loaded = int(time.time())

    @router.get("/v1/models", response_model=ModelList, responses=error_responses(*guarded))
    @router.get("/models", response_model=ModelList, responses=error_responses(*guarded),
                summary="The served model (Infinity's path for OpenAI's model list)")
    def models() -> dict:
        return {"object": "list", "data": [{"id": reranker.name, "object": "model", "created": loaded,
                                            "owned_by": "rerankforge"}]}

    @router.get("/info", response_model=TeiInfo, responses=error_responses(*guarded))
    def info() -> dict:
        return _tei_info(config, reranker)

    @router.get("/health", response_model=HealthResponse)
    def health() -> dict:
        return {"status": "ok"}

    @router.get("/ready", response_model=ReadyResponse, responses=error_responses(503))
    def ready(request: Request):
        if not request.app.state.ready:
            return error_response(503, "not_ready", "model still loading")
        return {"status": "ready", "reranker": reranker.name, "index": has_index}

    @router.get("/metrics", response_class=PlainTextResponse,
                responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                 "description": "Prometheus text format."}})
    def prometheus() -> Response:
        body, content_type = metrics.render(batcher.queued_pairs)
        return Response(body, media_type=content_type)

    return router


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
