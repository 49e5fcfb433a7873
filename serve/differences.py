"""Where the rerank endpoints deliberately differ from the peers' published OpenAPI specs (Cohere's, Hugging Face
TEI's, Infinity's). Everything else follows them: `tests/test_conformance.py` runs schemathesis with each spec,
adjusted by exactly these differences, against the real server, and fails on anything else.

Each difference is shown in the served schema (the route's description) and in the README's API section."""

from __future__ import annotations

from dataclasses import dataclass

COHERE = ("/v1/rerank", "/v2/rerank")
RERANK = "/rerank"  # TEI's body (`texts`) and Infinity's, Jina's and vLLM's (`documents`)
EVERY_RERANK = (*COHERE, RERANK)


@dataclass(frozen=True)
class Difference:
    key: str
    """Short name; the conformance test's adjustment of a peer's spec carries the same one."""
    peers: str
    """Whose published spec says otherwise."""
    routes: tuple[str, ...]
    what: str
    """What this server does, and why."""


DIFFERENCES = (
    Difference("blank-query", "Cohere, TEI, Infinity", EVERY_RERANK,
               "A blank query (empty or whitespace only) is refused with 422: no ranking can answer it. A blank "
               "document is scored, as the model scores an empty passage."),
    Difference("model-optional", "Cohere v2", ("/v2/rerank",),
               "`model` may be left out (Cohere's v2 requires it): one model is served, and the answer names it."),
    Difference("v2-document-objects", "Cohere v2", ("/v2/rerank",),
               "v2 also takes v1's document objects (`{\"text\": ...}` with other fields) and `rank_fields`."),
    Difference("rank-fields-objects", "Cohere", COHERE,
               "With `rank_fields`, a document object needs no `text` (Cohere's server scores such objects by "
               "those fields; its spec asks every object for a `text`), and `return_documents` answers it as sent."),
    Difference("body-required", "Cohere", COHERE,
               "A request without a body is refused with 422 (Cohere's spec leaves its request body optional; its "
               "`query` and `documents` are required, so no body can be answered)."),
    Difference("cohere-null-optional", "Cohere", COHERE,
               "`null` for an optional field (`model`, `top_n`, `max_tokens_per_doc`, `max_chunks_per_doc`, "
               "`rank_fields`, `priority`) is taken as the field not given, as for TEI's `truncate`."),
    Difference("counts-positive", "Cohere", COHERE,
               "`max_tokens_per_doc` (v2) and `max_chunks_per_doc` (v1, accepted; documents are scored whole) are 1 "
               "or more: 0 tokens would score every document as empty."),
    Difference("max-documents", "Cohere, TEI, Infinity", EVERY_RERANK,
               "At most `max_documents` documents (default 1,000, Cohere's advice) in one request, else 413 (Infinity's "
               "spec allows 2,048, Cohere's and TEI's any number); the body at most `max_body_bytes` (default 5 MB)."),
    Difference("tei-empty-texts", "TEI", (RERANK,),
               "`texts: []` is answered 400 with `error_type: Empty`, as TEI's server does (its spec allows the "
               "empty list)."),
    Difference("truncation-direction-case", "TEI", (RERANK,),
               "`truncation_direction` is also taken in lower case (`left`, `right`)."),
    Difference("infinity-documents", "Infinity", (RERANK,),
               "`documents` may be objects scored by their `text` (Jina's form), and neither documents nor the query "
               "have Infinity's 122,880-character cap: documents are truncated to the model, the query is capped "
               "in tokens (`max_query_tokens`, default 2,048)."),
    Difference("model-null", "Infinity", (RERANK,),
               "`model: null` is taken as no model named (vLLM's spec allows it; one model is served)."),
    Difference("top-n-zero", "Infinity", (RERANK,),
               "`top_n: 0` returns every document (vLLM's meaning; Infinity's spec asks for 1 or more)."),
    Difference("document-object-answer", "Infinity", (RERANK,),
               "With `return_documents` (default true), each result's `document` is `{\"text\": ...}` as Jina, vLLM "
               "and Cohere answer (Infinity's spec has the string)."),
    Difference("error-statuses", "Cohere, TEI, Infinity", EVERY_RERANK,
               "Errors the peers' specs do not list for the route: 400 (body not JSON in UTF-8), 401 (API key), "
               "408 (body too slow), 413 (over a limit), 415 (not JSON), 429 (queue full), 500 and 503; every error "
               "body is `{\"error\": KIND, \"message\": TEXT, \"error_type\": TEI's class}`."),
)


def described(route: str, intro: str) -> str:
    """A route's description for the served schema: `intro`, then where it differs from the peers' specs."""
    lines = [f"- {d.what} ({d.peers}: `{d.key}`)" for d in DIFFERENCES if route in d.routes]
    return f"{intro}\n\nWhere this route deliberately differs from the peers' published specs:\n\n" + "\n".join(lines)
