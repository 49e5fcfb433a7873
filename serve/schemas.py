"""The bodies of the HTTP API (pydantic): requests are validated here, at the edge, before any text reaches a
tokenizer; responses and errors are declared so the OpenAPI schema documents every answer a client can get.

Text fields take only strings that encode as UTF-8 (a lone surrogate such as "\\ud800" is valid JSON but
breaks the tokenizer and the response writer); counts are whole JSON numbers (`2` or `2.0`, never `"2"`
or `true`); Cohere's document objects are bounded in nesting depth. `/rerank` takes two bodies, told apart by
their fields: TEI's (`texts`) and the one Infinity, Jina and vLLM share (`documents`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, StrictBool,
                      StrictStr, Tag, model_validator)

from .pipeline import Passage

MAX_NESTING = 32
"""Deepest a document object may nest (objects and lists); deeper ones are answered 422."""


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"expected text that encodes as UTF-8, got a lone surrogate at character {error.start}") \
            from None
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _whole_number(value: Any) -> int:
    """JSON's integers: 2 and 2.0 (JSON Schema counts both), not "2" or true (pydantic's lax mode would)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a whole number, got {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected a whole number, got {value}")
    return int(value)


def _bounded_json(document: dict[str, Any]) -> dict[str, Any]:
    """Every key and string UTF-8, objects and lists nested at most `MAX_NESTING` deep (walked without
    recursion: the point is to refuse what would overflow the stack later)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)) and depth > MAX_NESTING:
            raise ValueError(f"expected objects and lists nested at most {MAX_NESTING} deep, got deeper")
        if isinstance(value, dict):
            for key, item in value.items():
                _utf8(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _utf8(value)
    return document


Text = Annotated[StrictStr, AfterValidator(_utf8)]
# the pattern tells schema readers (and fuzzers) what the validator enforces: some non-space character
NonBlankText = Annotated[Text, AfterValidator(_non_blank), Field(json_schema_extra={"pattern": r"\S"})]
# bounds before the validator: pydantic then shows them in the JSON schema as minimum/maximum
Count = Annotated[int, Field(ge=1), BeforeValidator(_whole_number)]
# vLLM's top_n: 0 means every document; any whole number above the count sent means them all (Infinity's spec
# sets no upper bound)
TopN = Annotated[int, Field(ge=0), BeforeValidator(_whole_number)]
SearchDepth = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_whole_number)]
DocumentObject = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
# a string or an object, told apart up front so an error names one of them ("documents.3.object: ..."); a blank
# document is scored as the model scores an empty passage (as TEI and Infinity do): one empty chunk among a
# retriever's fifty must not fail the request
CohereDocument = Annotated[Annotated[Text, Tag("text")] | Annotated[DocumentObject, Tag("object")],
                           Discriminator(lambda value: "text" if isinstance(value, str) else "object")]
# Cohere's v2 `priority`: accepted in its range; requests are served in arrival order
Priority = Annotated[int, Field(ge=0, le=999), BeforeValidator(_whole_number)]
DOCUMENTS_RANKED = ("rerankforge's own: the documents come in the first stage's order, best first; rank them by the "
                    "model's served ranking (its score weighed against that order, fitted on dev) instead of the "
                    "reranker alone. null: the server's documents_ranked. The ranking used is named in the "
                    "X-Rerankforge-Ranking header (and, when served, in `ranking`).")
DocumentsRanked = Annotated[StrictBool | None, Field(default=None, description=DOCUMENTS_RANKED)]


class CohereRerankRequest(BaseModel):
    """Cohere's /v1/rerank and /v2/rerank body. `model` is accepted and echoed (one model is served)."""

    query: NonBlankText
    documents: list[CohereDocument] = Field(description="Strings, or objects with a string `text` (v1's; v2 takes "
                                                        "them too). None at all: no results.")
    model: Text | None = None
    top_n: Count | None = None
    return_documents: StrictBool = False
    max_tokens_per_doc: Count | None = None
    rank_fields: list[Text] | None = Field(default=None, description=(
        "Score an object document by these fields, as \"key: value\" lines in this order; a field a document "
        "lacks is left out of its text."))
    max_chunks_per_doc: Count | None = None  # v1; accepted, documents are scored whole
    priority: Priority | None = None  # v2
    documents_ranked: DocumentsRanked = None


RERANK_SHAPES = "'texts' for TEI's, 'documents' for Infinity's, Jina's and vLLM's"


def _one_list(data: Any, keep: str, other: str) -> Any:
    """A /rerank body carries `texts` or `documents`, not both: the body that has one refuses the other."""
    if isinstance(data, dict) and other in data:
        raise ValueError(f"expected '{keep}' or '{other}' (one body shape: {RERANK_SHAPES}), got both")
    return data


class TeiRerankRequest(BaseModel):
    """TEI's /rerank body (`texts`)."""

    model_config = ConfigDict(json_schema_extra={"not": {"required": ["documents"]}})

    query: NonBlankText
    texts: list[Text] = Field(description="None at all is TEI's 400 `Empty`; a blank text is scored.")
    raw_scores: StrictBool = False
    return_text: StrictBool = False
    truncate: StrictBool | None = False  # null: the default (TEI's spec allows it)
    truncation_direction: Literal["Right", "Left", "right", "left"] = "Right"
    documents_ranked: DocumentsRanked = None

    @model_validator(mode="before")
    @classmethod
    def one_list(cls, data: Any) -> Any:
        return _one_list(data, "texts", "documents")


class DocumentsRerankRequest(BaseModel):
    """The /rerank body of Infinity, Jina and vLLM (`documents`; all three follow Cohere's): documents are
    strings or, as Jina allows, objects scored by their `text`. Documents longer than the model are truncated
    (as all three do); `model` is accepted (one model is served, and named in the answer). Errors name this shape
    `jina`: Jina's body is the fullest of the three (Infinity adds raw_scores, vLLM top_n 0 for all)."""

    model_config = ConfigDict(json_schema_extra={"not": {"required": ["texts"]}})

    query: NonBlankText
    documents: list[CohereDocument] = Field(min_length=1)
    model: Text | None = None
    top_n: TopN | None = Field(default=None, description="The best this many (more than sent: all; 0: all, as vLLM).")
    return_documents: StrictBool = Field(default=True, description=(
        "Each result carries its document as {\"text\": ...} (an object comes back as sent). Default true, as Jina "
        "and vLLM always return it; Infinity's clients send false."))
    raw_scores: StrictBool = Field(default=False, description="Infinity's: relevance_score is the raw logit.")
    documents_ranked: DocumentsRanked = None

    @model_validator(mode="before")
    @classmethod
    def one_list(cls, data: Any) -> Any:
        return _one_list(data, "documents", "texts")


def _rerank_shape(body: Any) -> str | None:
    if isinstance(body, TeiRerankRequest) or isinstance(body, dict) and "texts" in body:
        return "tei"
    if isinstance(body, DocumentsRerankRequest) or isinstance(body, dict) and "documents" in body:
        return "jina"
    return None


RerankRequest = Annotated[Annotated[TeiRerankRequest, Tag("tei")] | Annotated[DocumentsRerankRequest, Tag("jina")],
                          Discriminator(_rerank_shape, custom_error_type="rerank_body",
                                        custom_error_message=f"expected an object with 'texts' or 'documents' "
                                                             f"({RERANK_SHAPES}), got neither")]
"""`/rerank`'s body: the list it carries tells the shapes apart (a 422 names both when neither is there)."""


class SearchRequest(BaseModel):
    query: NonBlankText
    k: SearchDepth | None = None
    top_n: SearchDepth | None = None
    min_relevance: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False, strict=True)
    """Leave out passages less likely than this to be relevant (default: the server's min_relevance)."""
    min_precision: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False, strict=True, description=(
        "Instead of min_relevance: the threshold that reached this precision on the model's dev split."))
    min_recall: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False, strict=True, description=(
        "Instead of min_relevance: the threshold that kept this share of the relevant passages on the model's dev "
        "split."))

    @model_validator(mode="after")
    def one_threshold(self):
        given = [k for k in ("min_relevance", "min_precision", "min_recall") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"expected at most one of min_relevance, min_precision and min_recall, got "
                             f"{' and '.join(given)}")
        return self


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None
    """With return_documents: the document as sent (a string comes back as {"text": ...})."""


class CohereApiVersion(BaseModel):
    version: str


class CohereBilledUnits(BaseModel):
    search_units: int


class CohereMeta(BaseModel):
    api_version: CohereApiVersion
    billed_units: CohereBilledUnits


RANKING = "rerankforge's own, when the request was ranked by the served ranking: which one (e.g. 'served (0.70 " \
          "reranker + 0.30 position)')."


class CohereRerankResponse(BaseModel):
    id: str
    results: list[CohereResult]
    meta: CohereMeta
    ranking: str | None = Field(default=None, description=RANKING)


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None
    """With return_text."""


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int = Field(description="Tokens the model read: each pair as scored, truncation included.")


class DocumentsRerankResponse(BaseModel):
    """Infinity's answer (`object`, `created`, usage.prompt_tokens), which holds Jina's and vLLM's (`id`,
    `model`, `results`, usage.total_tokens); `document` is {"text": ...} as Jina, vLLM and Cohere send it."""

    object: Literal["rerank"] = "rerank"
    id: str
    created: int = Field(description="Unix time of the answer.")
    model: str
    results: list[CohereResult]
    usage: RerankUsage
    ranking: str | None = Field(default=None, description=RANKING)


RerankResponse = list[TeiRank] | DocumentsRerankResponse


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time the server loaded the model.")
    owned_by: str


class ModelList(BaseModel):
    """OpenAI's model list (also Infinity's and vLLM's GET /v1/models): the one model this server serves."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class TeiClassifier(BaseModel):
    id2label: dict[str, str]
    label2id: dict[str, int]


class TeiModelType(BaseModel):
    reranker: TeiClassifier


class TeiInfo(BaseModel):
    """TEI's GET /info (router/src/lib.rs `Info`), filled from the reranker and the serve config."""

    model_id: str = Field(description="The reranker as configured (folder or Hub id).")
    model_sha: str | None = Field(description="Hub revision: none here (models load from folders).")
    model_dtype: str = Field(description="What scoring runs in: float32, bfloat16 or float16 (autocast), int8 (ONNX).")
    served_model_name: str = Field(description="The name /v1/models and the rerank answers give.")
    model_type: TeiModelType
    max_concurrent_requests: int = Field(description="max_queue_pairs: each waiting request holds at least one "
                                                     "pair, so no more requests than this can wait.")
    max_input_length: int = Field(description="Tokens of a (query, document) pair the model reads.")
    max_batch_tokens: int
    max_batch_requests: int | None
    max_client_batch_size: int = Field(description="max_documents: most documents in one request.")
    auto_truncate: bool = Field(description="Whether TEI's body truncates without `truncate: true` (no: it answers "
                                            "413); the documents bodies always truncate.")
    tokenization_workers: int = Field(description="Pairs are tokenised on the one batching thread.")
    version: str = Field(description="rerankforge's version.")
    sha: str | None = None
    docker_label: str | None = None


class SearchResponse(BaseModel):
    query: str
    k: int
    top_n: int
    results: list[Passage]


class AskResponse(BaseModel):
    query: str
    answer: str | None
    generator: str
    citations: list[int]
    sources: list[Passage]
    messages: list[dict[str, str]]


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    reranker: str
    index: bool


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error the service answers, whatever raised it."""

    error: str = Field(description="What kind of error: invalid_request, invalid_json, unauthorized, ...")
    message: str = Field(description="What was expected and what was got, in one line.")
    error_type: Literal["Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty"] = Field(
        description="TEI's class of the error (its `ErrorResponse.error_type`), so TEI's clients read it too.")
    details: list[ErrorDetail] | None = Field(default=None, description="422: one entry per invalid field.")
    request_id: str | None = Field(default=None, description="500 and 502: the id the server log files it under.")


ERROR_DESCRIPTIONS = {
    400: "The body is not JSON (or not UTF-8, or nested beyond what the parser takes).",
    401: "Missing or wrong API key (`Authorization: Bearer KEY`).",
    404: "This server has no index (start it with `index: FOLDER`).",
    408: "The body did not arrive within body_timeout (or the headers within header_timeout); the connection is "
         "closed.",
    415: "The Content-Type is not application/json (UTF-8).",
    413: "Over a limit: max_body_bytes, max_documents, max_queue_pairs, or the model's length without truncate.",
    422: "A field is missing, mistyped, empty, not UTF-8 encodable, too deeply nested, or over max_query_tokens.",
    500: "Unexpected failure; the body carries the request id the server log files it under.",
    502: "The answer generator (LLM) failed; the server log has the details under the request id.",
    429: "The queue is full: retry after Retry-After seconds (as TEI and Cohere answer an overloaded server).",
    503: "The model is still loading, or max_connections are open with a request in progress on each.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its error statuses, each with the `ErrorBody` schema."""
    return {status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}
