"""What every first-stage retriever offers (dense, BM25, hybrid)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from rerankforge.core.errors import ConfigError
from rerankforge.core.models import DEFAULT_BI_ENCODER
from rerankforge.core.rankings import Retriever
from .collection import Document

logger = logging.getLogger(__name__)


@dataclass
class RetrieverConfig:
    """How to build the first stage (used by `retrieve`, `mine` and later by eval and serve)."""

    retriever: Literal["dense", "bm25", "hybrid"] = field(
        default="dense", metadata={"help": "First stage: dense (bi-encoder + faiss), bm25, or hybrid (both, fused)."})
    model: str = field(
        default=DEFAULT_BI_ENCODER,
        metadata={"help": "Bi-encoder for dense/hybrid: a local folder or a Hugging Face Hub id."})
    max_length: int = field(default=256, metadata={"help": "Bi-encoder max input tokens (longer texts are cut)."})
    batch_size: int = field(default=64, metadata={"help": "Bi-encoder batch size."})
    device: str | None = field(default=None, metadata={"help": "torch device for the bi-encoder (default: auto)."})
    index: Literal["auto", "flat", "hnsw", "ivf", "ivfpq", "qdrant", "lancedb"] = field(
        default="auto", metadata={"help": "Dense index: auto (by corpus size: flat up to 1M documents, ivf up to 4M, "
                                          "ivfpq past that), faiss flat (exact), hnsw or ivf (approximate, large "
                                          "corpora), "
                                          "ivfpq (approximate, 48 bytes a vector: corpora whose vectors outgrow "
                                          "memory); "
                                          "or an engine teams run: qdrant or lancedb, at --engine_location (the "
                                          "corpus vectors are written there once, then searched by the engine)."})
    engine_location: str | None = field(
        default=None, metadata={"help": "Where --index qdrant/lancedb lives: a folder (Qdrant's local mode, a "
                                        "LanceDB database), ':memory:' (Qdrant), or a server: http://HOST:6333 "
                                        "(Qdrant), db:// or s3:// (LanceDB)."})
    fusion: Literal["rrf", "score"] = field(
        default="rrf", metadata={"help": "Hybrid fusion: reciprocal-rank (rrf) or normalized-score (score)."})
    rrf_k: int = field(default=60, metadata={"help": "RRF constant k in 1/(k + rank)."})
    bm25_fields: Literal["flat", "multifield"] = field(
        default="flat", metadata={"help": "BM25 over title+text as one field (flat), or title and text as two "
                                          "fields combined like Elasticsearch best_fields (multifield)."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Embedding cache folder (default: $RERANKFORGE_CACHE or ~/.cache/rerankforge)."})
    show_progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def __post_init__(self) -> None:
        for name in ("max_length", "batch_size", "rrf_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


def build_retriever(corpus: dict[str, Document], config: RetrieverConfig) -> Retriever:
    """The first stage that `config` describes, over `corpus`. Models are resolved (and a missing
    one reported) here, before anything is encoded."""
    from .bm25 import BM25Retriever

    logger.debug(f"first stage over {len(corpus)} documents: {config}")

    def bm25():
        return BM25Retriever(corpus, fields=config.bm25_fields, show_progress=config.show_progress)

    if config.retriever == "bm25":
        return bm25()
    dense = _dense(corpus, config)
    if config.retriever == "dense":
        return dense
    from .hybrid import HybridRetriever

    return HybridRetriever([dense, bm25()],
                           method=config.fusion, rrf_k=config.rrf_k)


def _dense(corpus: dict[str, Document], config: RetrieverConfig):
    from .dense import DenseRetriever
    from .embeddings import Encoder, EncoderSettings

    encoder = Encoder(EncoderSettings(model=config.model, max_length=config.max_length),
                      batch_size=config.batch_size, device=config.device, cache_dir=config.cache_dir,
                      show_progress=config.show_progress)
    return DenseRetriever(corpus, encoder, index_type=config.index, engine_location=config.engine_location)
