"""`rerankforge serve` configuration: one typed dataclass, from configs/serve_*.yaml plus `--key value`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Literal

from rerankforge.core.config_files import load_typed_config
from rerankforge.core.errors import ConfigError
from rerankforge.core.hardware import PRECISION_HELP, ScoringPrecision
from rerankforge.reranker.backends import BACKEND_HELP, ScoringBackend

from .generators import GeneratorConfig

logger = logging.getLogger(__name__)


@dataclass
class ServeConfig(GeneratorConfig):
    """The rerank service and, with an index, the search/ask pipeline."""

    reranker: str = field(default="", metadata={
        "help": "Reranker: a `rerankforge train` folder, a CrossEncoder folder or Hub id, or a LoRA adapter folder."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (0.0.0.0: every interface)."})
    port: int = field(default=8080, metadata={"help": "TCP port."})
    index: str | None = field(default=None, metadata={
        "help": "Index folder from `rerankforge index`; enables /search and /ask."})
    retriever: Literal["auto", "dense", "bm25", "hybrid"] = field(default="auto", metadata={
        "help": "First stage over the index's chunks. auto: the one the reranker's served ranking was fitted with "
                "(hybrid where it combines dense and BM25 scores), dense for a reranker without one."})
    k: int = field(default=50, metadata={"help": "/search and /ask: first-stage documents reranked per query."})
    top_n: int = field(default=5, metadata={"help": "/search and /ask: documents kept after reranking."})
    fusion_weight: float | None = field(default=None, metadata={
        "help": "/search and /ask: rank by this weight x the reranker's score + (1 - weight) x the first stage's "
                "(z-standardised; 1.0: the reranker alone) instead of the served ranking the model carries (its "
                "weights of the reranker, dense and BM25 scores, fitted on its dev split)."})
    documents_ranked: bool = field(default=False, metadata={
        "help": "Rerank endpoints: the documents of a request come in the client's first-stage order, best first, so "
                "rank them by the served ranking the model carries (its reranker score weighed against that order, "
                "fitted and judged out of fold on its dev split) instead of the reranker alone. A request's own "
                "`documents_ranked` overrides it; every answer names the ranking it used (header "
                "X-Rerankforge-Ranking). Scores stay the reranker's."})
    min_relevance: float | None = field(default=None, metadata={
        "help": "/search and /ask: leave out passages whose relevance (the probability of being relevant, from the "
                "model's calibration fitted on its dev split) is below this, so a question nothing answers gets "
                "no passages; a request's own min_relevance overrides it. None: keep the top_n."})
    min_precision: float | None = field(default=None, metadata={
        "help": "/search and /ask, instead of min_relevance: the precision to keep, read as the threshold that reached "
                "it on the model's dev split (recorded with its calibration; a target between the recorded 0.05 steps "
                "takes the next stricter one). A request's own min_precision / min_recall / min_relevance overrides it."})
    min_recall: float | None = field(default=None, metadata={
        "help": "/search and /ask, instead of min_relevance: the share of relevant passages to keep, read as the "
                "threshold that kept it on the model's dev split (as min_precision)."})
    max_length: int | None = field(default=None, metadata={
        "help": "Max tokens of a (query, document) pair; default the model's own."})
    batch_size: int = field(default=32, metadata={"help": "Pairs per forward pass."})
    precision: ScoringPrecision = field(default="auto", metadata={"help": "Scoring precision. " + PRECISION_HELP})
    backend: ScoringBackend = field(default="auto", metadata={"help": "What runs the reranker. " + BACKEND_HELP})
    max_batch_tokens: int = field(default=32768, metadata={
        "help": "Dynamic batching: most (padded) tokens scored together across concurrent requests."})
    max_batch_requests: int = field(default=64, metadata={
        "help": "Dynamic batching: most requests per batch (1: one request at a time)."})
    max_wait_ms: float = field(default=2.0, metadata={
        "help": "Dynamic batching: how long a batch waits for more requests to join."})
    max_queue_pairs: int = field(default=4096, metadata={
        "help": "Pairs waiting at most; beyond it requests get 429 with Retry-After."})
    max_connections: int | None = field(default=None, metadata={
        "help": "Open connections at most; a new one past it closes the connection that has waited longest without "
                "a request in progress (idle, or headers still arriving), or gets 503 when each has one. Checked "
                "against the open-file limit at start (ulimit -n, raised to the hard limit if needed). None: 1000, "
                "or what the limit allows."})
    header_timeout: float = field(default=10.0, metadata={
        "help": "Seconds a connection has to send a request's headers, from connecting or from its previous "
                "response; then 408 and closed (slow clients cannot hold connections)."})
    body_timeout: float = field(default=30.0, metadata={
        "help": "Seconds a request has to send its whole body; then 408 and closed."})
    keep_alive_timeout: float = field(default=5.0, metadata={
        "help": "Seconds an idle keep-alive connection stays open."})
    max_documents: int = field(default=1000, metadata={"help": "Most documents per rerank request (else 413)."})
    max_body_bytes: int = field(default=5_000_000, metadata={"help": "Largest request body (else 413)."})
    max_query_tokens: int = field(default=2048, metadata={
        "help": "Longest query, in reranker tokens (else 422); Cohere's limit."})
    api_key_env: str | None = field(default=None, metadata={
        "help": "Environment variable holding the API key: the server refuses to start while it is unset or "
                "empty. Every request but /health, /ready and /metrics (probes) then needs `Authorization: Bearer "
                "KEY` (401 otherwise), /docs, /redoc and /openapi.json included."})


def load_serve_config(argv: list[str]) -> ServeConfig:
    config = load_typed_config(ServeConfig, argv, prog="rerankforge serve",
                               description="Serve a reranker over HTTP (Cohere- and TEI-compatible rerank endpoints; "
                                           "/search and /ask with an index). Values come from --config FILE.yaml; "
                                           "any key can be overridden: --key value.")
    check_serve_config(config)
    return config


def check_serve_config(config: ServeConfig) -> None:
    if not config.reranker:
        raise ConfigError("reranker is required (a folder or Hub id)")
    if not 0 < config.port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {config.port}")
    for key in ("k", "top_n", "batch_size", "max_batch_tokens", "max_batch_requests", "max_queue_pairs",
                "max_documents", "max_body_bytes", "max_query_tokens", "max_new_tokens"):
        if getattr(config, key) < 1:
            raise ConfigError(f"{key} must be at least 1, got {getattr(config, key)}")
    # a request the queue can never hold would be refused every time: such limits are a mistake
    for key, what in (("max_documents", "a rerank request of max_documents documents"),
                      ("k", "a /search of k documents (at least one pair each)")):
        if key == "k" and not config.index:
            continue  # k serves /search and /ask, which need an index
        if getattr(config, key) > config.max_queue_pairs:
            raise ConfigError(f"{key} must be at most max_queue_pairs={config.max_queue_pairs}, got "
                              f"{getattr(config, key)}: {what} could never be queued")
    if config.max_connections is not None and config.max_connections < 1:
        raise ConfigError(f"max_connections must be at least 1 (or None: what the open-file limit allows), got "
                          f"{config.max_connections}")
    for key in ("header_timeout", "body_timeout", "keep_alive_timeout"):
        if not getattr(config, key) > 0:
            raise ConfigError(f"{key} must be a positive number of seconds, got {getattr(config, key)}")
    if config.fusion_weight is not None and not 0 <= config.fusion_weight <= 1:
        raise ConfigError(f"fusion_weight must be in [0, 1], got {config.fusion_weight}")
    if config.min_relevance is not None and not 0 <= config.min_relevance <= 1:
        raise ConfigError(f"min_relevance must be in [0, 1] (a probability), got {config.min_relevance}")
    given = [key for key in ("min_relevance", "min_precision", "min_recall") if getattr(config, key) is not None]
    if len(given) > 1:
        raise ConfigError(f"expected at most one of min_relevance, min_precision and min_recall, got {' and '.join(given)}")
    for key in ("min_precision", "min_recall"):
        if getattr(config, key) is not None and not 0 < getattr(config, key) < 1:
            raise ConfigError(f"{key} must be in (0, 1) (a share), got {getattr(config, key)}")
    if config.generator != "none" and not config.index:
        raise ConfigError(f"generator: {config.generator} needs an index (it answers from retrieved passages)")
    api_key(config)


def api_key(config: ServeConfig) -> str | None:
    """The key requests must carry, from `api_key_env`; None when no key is configured. A configured
    variable that is unset or empty is an error: serving without auth by accident is worse than not serving."""
    if not config.api_key_env:
        return None
    key = os.environ.get(config.api_key_env, "")
    if not key.strip():
        raise ConfigError(f"api_key_env: expected the environment variable {config.api_key_env} to hold the API "
                          f"key, got it {'empty' if config.api_key_env in os.environ else 'unset'} (set it, or "
                          f"drop api_key_env to serve without a key)")
    if key != key.strip():  # a copy-paste newline or space: clients send the key without it
        logger.warning(f"api_key_env: the key in {config.api_key_env} has surrounding whitespace; it is used "
                       f"without it")
        key = key.strip()
    if any(not 33 <= ord(ch) <= 126 for ch in key):
        raise ConfigError(f"api_key_env: expected the key in {config.api_key_env} to be printable ASCII without "
                          f"spaces (what an Authorization header carries), got one with "
                          f"{next(repr(ch) for ch in key if not 33 <= ord(ch) <= 126)} in it")
    return key
