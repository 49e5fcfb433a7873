"""The rerank endpoints, in the dialects clients already speak: Cohere's v1 and v2 (`/v1/rerank`, `/v2/rerank`),
TEI's (`/rerank` with `texts`), and Infinity's, Jina's and vLLM's (`/rerank` with `documents`), each answered in
its own shape. Text is cut before it is tokenised and queries are capped (`max_query_tokens`), so no request costs
more tokenising than the model's own length allows.

The documents are ranked by the reranker alone unless the request (`documents_ranked: true`) or the server
(`documents_ranked` in its config) says they come in the first stage's order: then by the model's served ranking,
its score weighed against that order and, where the model was fitted so, the documents' BM25 (reranker/scoring.py
`Reranker.order`). Every answer names the ranking it used in the X-Rerankforge-Ranking header; a served answer
also in its body's `ranking` (the JSON-object dialects). Scores and relevance_score are the reranker's either way."""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Sequence

from fastapi import APIRouter, Response

from rerankforge.reranker.clipping import Blanks, clip, clip_text

from .config import ServeConfig
from .differences import described
from .errors import ApiError
from .schemas import (CohereRerankRequest, CohereRerankResponse, DocumentsRerankRequest, RerankRequest,
                      RerankResponse, TeiRerankRequest)


RANKING_HEADER = "X-Rerankforge-Ranking"


class Rerankers:
    """The checks and answers of every rerank dialect, over one scorer (the service's batcher)."""

    def __init__(self, config: ServeConfig, reranker, score: Callable[[list[tuple[str, str]]], Sequence[float]]):
        self.config, self.reranker, self.score = config, reranker, score
        self.tokenizer = reranker.tokenizer
        self.blanks = Blanks.of(self.tokenizer)

    def check_count(self, count: int) -> None:
        if count > self.config.max_documents:
            raise ApiError(413, "too_many_documents",
                           f"{count} documents exceed max_documents={self.config.max_documents}")

    def check_query(self, query: str) -> None:
        """At most `max_query_tokens` tokens, counted on a cut copy: a long query costs no more to refuse."""
        limit = self.config.max_query_tokens
        cut = clip(query, limit + 1, self.blanks)
        count = len(self.tokenizer(cut.text, add_special_tokens=False, verbose=False)["input_ids"])
        if count > limit or not cut.whole:
            got = f"{count} tokens" if cut.whole else f"over {len(cut.text)} characters of text"
            raise ApiError(422, "invalid_request", f"query: expected at most max_query_tokens={limit} tokens, "
                                                   f"got {got}")

    def order(self, scores: Sequence[float], documents_ranked: bool | None, response: Response, query: str,
              texts: Sequence[str]) -> tuple[list[int], str | None]:
        """The documents best first, by the ranking the request (or else the server) asks for, named in the
        response's header; the name comes back for the body only when the served ranking was asked for. `query`
        and `texts` (as sent) are what a request ranking that weighs BM25 scores."""
        served = self.config.documents_ranked if documents_ranked is None else documents_ranked
        order, ranking = self.reranker.order(scores, served, query, texts)
        response.headers[RANKING_HEADER] = ranking
        return order, ranking if served else None

    def cohere(self, body: CohereRerankRequest, version: str, response: Response) -> dict:
        self.check_count(len(body.documents))
        self.check_query(body.query)
        sent = [_document_text(d, body.rank_fields, i) for i, d in enumerate(body.documents)]
        texts = sent
        if body.max_tokens_per_doc:  # beyond the model's length the scorer truncates anyway
            limit = min(body.max_tokens_per_doc, self.reranker.max_length)
            texts = [_truncate_tokens(self.tokenizer, self.blanks, t, limit) for t in texts]
        scores = self.score([(body.query, t) for t in texts]) if texts else []
        relevance = [float(p) for p in self.reranker.probability(scores)] if texts else []  # calibrated on dev
        order, ranking = self.order(scores, body.documents_ranked, response, body.query, sent)
        return {"id": str(uuid.uuid4()), "results": _results(order, relevance, body.documents, body.top_n,
                                                             body.return_documents),
                "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}},
                **({"ranking": ranking} if ranking else {})}

    def documents(self, body: DocumentsRerankRequest, response: Response) -> dict:
        """Infinity's, Jina's and vLLM's answer."""
        self.check_count(len(body.documents))
        self.check_query(body.query)
        pairs = [(body.query, _document_text(d, None, i, hint="")) for i, d in enumerate(body.documents)]
        scores = self.score(pairs)
        tokens = sum(len(pair.input_ids) for pair in self.reranker.encoder.encode(pairs))
        relevance = scores if body.raw_scores else self.reranker.probability(scores)
        order, ranking = self.order(scores, body.documents_ranked, response, body.query, [t for _, t in pairs])
        return {"object": "rerank", "id": f"rerank-{uuid.uuid4()}", "created": int(time.time()),
                "model": self.reranker.name,
                "results": _results(order, relevance, body.documents, body.top_n, body.return_documents),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}, **({"ranking": ranking} if ranking else {})}

    def tei(self, body: TeiRerankRequest, response: Response) -> list[dict]:
        if not body.texts:
            raise ApiError(400, "empty", "texts: expected at least one text, got none")  # TEI's "Batch is empty"
        self.check_count(len(body.texts))
        self.check_query(body.query)
        texts, limit = body.texts, self.reranker.max_length
        if not body.truncate:
            too_long = [i for i, t in enumerate(texts)
                        if _pair_tokens(self.tokenizer, self.blanks, body.query, t, limit) > limit]
            if too_long:
                raise ApiError(413, "validation", f"texts {too_long[:5]} are longer than the model's {limit} tokens "
                                                  "with the query; send truncate: true")
        elif body.truncation_direction.lower() == "left":
            texts = [_truncate_tokens(self.tokenizer, self.blanks, t, limit, left=True) for t in texts]
        scores = self.score([(body.query, t) for t in texts])
        # TEI's answer is a list: the header says which ranking
        order, _ = self.order(scores, body.documents_ranked, response, body.query, body.texts)
        relevance = self.reranker.probability(scores)
        return [{"index": i, "score": float(scores[i]) if body.raw_scores else float(relevance[i]),
                 **({"text": body.texts[i]} if body.return_text else {})} for i in order]


def rerank_router(rerankers: Rerankers, responses: dict) -> APIRouter:
    """The three rerank routes; `responses` are the error answers their OpenAPI description lists."""
    router = APIRouter()
    cohere_route = {"response_model": CohereRerankResponse, "response_model_exclude_unset": True,
                    "responses": responses}

    @router.post("/v1/rerank", **cohere_route, description=described("/v1/rerank", "Cohere's v1 rerank."))
    def rerank_v1(body: CohereRerankRequest, response: Response) -> dict:
        return rerankers.cohere(body, "1", response)

    @router.post("/v2/rerank", **cohere_route, description=described("/v2/rerank", "Cohere's v2 rerank."))
    def rerank_v2(body: CohereRerankRequest, response: Response) -> dict:
        return rerankers.cohere(body, "2", response)

    @router.post("/rerank", response_model=RerankResponse, response_model_exclude_unset=True, responses=responses,
                 description=described("/rerank", "TEI's body (`texts`) gets TEI's answer, a list; Infinity's, "
                                                  "Jina's and vLLM's (`documents`) theirs."))
    def rerank(body: RerankRequest, response: Response) -> list[dict] | dict:
        """TEI's body (`texts`) gets TEI's answer, a list; Infinity's, Jina's or vLLM's (`documents`) theirs."""
        if isinstance(body, TeiRerankRequest):
            return rerankers.tei(body, response)
        return rerankers.documents(body, response)

    return router


def _results(order: list[int], relevance: Sequence[float], documents: list, top_n: int | None,
             return_documents: bool) -> list[dict]:
    """Cohere's and the `documents` dialects' result list: in `order` (best first), the first `top_n` (all when
    unset), each with its index, relevance and, if asked, its document as sent (a string becomes {"text": ...})."""
    results = []
    for i in order[:top_n or len(order)]:
        result: dict[str, Any] = {"index": i, "relevance_score": float(relevance[i])}
        if return_documents:
            document = documents[i]
            result["document"] = {"text": document} if isinstance(document, str) else document
        results.append(result)
    return results


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
