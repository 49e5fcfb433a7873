"""Dense first stage: bi-encoder embeddings searched with faiss, or with a vector engine (engines.py).

`auto` (the default) chooses by size: exact inner-product search (IndexFlatIP) up to 1M vectors, IVF up to 4M,
IVF-PQ past that (benchmarks/scale.py measured why); flat, hnsw, ivf and ivfpq can be asked for by name; Qdrant or
LanceDB where the vectors live in an engine a team already runs. Queries are searched in chunks, so memory stays
bounded by chunk x k, never by queries x corpus."""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

from rerankforge.core.errors import ConfigError
from rerankforge.core.rankings import Run
from .collection import Document
from .embeddings import Encoder
from .engines import ENGINES, engine_index

logger = logging.getLogger(__name__)

IndexType = Literal["auto", "flat", "hnsw", "ivf", "ivfpq", "qdrant", "lancedb"]
INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "ivfpq", *ENGINES)

AUTO_FLAT_UP_TO = 1_000_000
"""`auto` searches exactly up to this many vectors: one query costs flat 92 ms at 1M on 2 cores (9 ms at 100k; 30 ms
a query in batches), the price of exact results (benchmarks/scale.py, docs/RESULTS.md)."""
AUTO_IVF_UP_TO = 4_000_000
"""...then IVF up to this many (0.9 ms a query, recall@100 0.977 at 1M; HNSW's was 0.86 there, so `auto` never picks
it): its float vectors take ~3.4 KB a passage with flat's, ~13.6 GB at 4M. Past that IVF-PQ, whose 48-byte codes,
re-scored with the float vectors memory-mapped from the cache (REFINE), keep larger corpora within 24 GB."""


def auto_index_type(count: int) -> str:
    """The faiss index `auto` builds over `count` vectors."""
    return "flat" if count <= AUTO_FLAT_UP_TO else "ivf" if count <= AUTO_IVF_UP_TO else "ivfpq"


class DenseRetriever:
    """Bi-encoder + faiss over one corpus. The corpus is encoded (or read from the cache) on first use."""

    name = "dense"

    def __init__(
        self,
        corpus: dict[str, Document],
        encoder: Encoder,
        *,
        index_type: IndexType = "auto",
        hnsw_m: int = 32,
        ef_search: int = 256,
        nlist: int | None = None,
        nprobe: int = 32,
        query_chunk: int = 1024,
        engine_location: str | None = None,
    ) -> None:
        if index_type not in INDEX_TYPES:
            raise ConfigError(f"index type must be one of {', '.join(INDEX_TYPES)}; got {index_type!r}")
        self.doc_ids = list(corpus)
        self._texts = [doc.full_text for doc in corpus.values()]
        self._row = {doc_id: row for row, doc_id in enumerate(self.doc_ids)}
        self.encoder = encoder
        self.index_type = auto_index_type(len(corpus)) if index_type == "auto" else index_type
        if index_type == "auto" and self.index_type != "flat":
            logger.info(f"dense index: auto -> {self.index_type} for {len(corpus):,} documents (flat up to "
                        f"{AUTO_FLAT_UP_TO:,}, ivf up to {AUTO_IVF_UP_TO:,})")
        self.hnsw_m, self.ef_search, self.nlist, self.nprobe = hnsw_m, ef_search, nlist, nprobe
        self.query_chunk = query_chunk
        self.engine_location = engine_location
        self._embeddings: np.ndarray | None = None
        self._index = None

    @classmethod
    def from_saved(cls, corpus: dict[str, Document], encoder: Encoder, embeddings: np.ndarray, index=None,
                   **options) -> "DenseRetriever":
        """A retriever over embeddings computed earlier (a saved index): nothing is encoded but the queries."""
        if len(embeddings) != len(corpus):
            raise ConfigError(f"saved embeddings hold {len(embeddings)} rows for {len(corpus)} documents")
        retriever = cls(corpus, encoder, **options)
        retriever._embeddings, retriever._index = embeddings, index
        return retriever

    @property
    def embeddings(self) -> np.ndarray:
        if self._embeddings is None:
            self._embeddings = self.encoder.encode_documents(self._texts)
        return self._embeddings

    def search(self, queries: dict[str, str], k: int) -> Run:
        query_ids = list(queries)
        vectors = self.encoder.encode_queries([queries[q] for q in query_ids])
        index = self._get_index()
        k = min(k, len(self.doc_ids))
        run: Run = {}
        for start in range(0, len(query_ids), self.query_chunk):
            chunk = vectors[start : start + self.query_chunk]
            if self.index_type == "ivfpq":  # the codes find candidates, the float vectors rank them exactly
                scores, rows = refine(self.embeddings, chunk, index.search(chunk, k * REFINE)[1], k)
            else:
                scores, rows = index.search(chunk, k)
            for offset, qid in enumerate(query_ids[start : start + self.query_chunk]):
                run[qid] = [(self.doc_ids[r], float(s)) for r, s in zip(rows[offset], scores[offset]) if r >= 0]
        return run

    def score_pairs(self, queries: dict[str, str], doc_ids: dict[str, list[str]]) -> dict[str, dict[str, float]]:
        query_ids = list(doc_ids)
        vectors = self.encoder.encode_queries([queries[q] for q in query_ids])
        embeddings = self.embeddings
        scores: dict[str, dict[str, float]] = {}
        for vector, qid in zip(vectors, query_ids):
            rows = [self._row[d] for d in doc_ids[qid]]
            scores[qid] = dict(zip(doc_ids[qid], (embeddings[rows] @ vector).tolist()))
        return scores

    def _get_index(self):
        if self._index is None and self.index_type in ENGINES:  # named by the vectors: reused while they last
            name = "rerankforge-" + self.encoder.cache_key(self._texts, "document")[:16]
            self._index = engine_index(self.index_type, self.engine_location, name, len(self.doc_ids),
                                       lambda: self.embeddings)
        if self._index is None:
            self._index = build_index(self.embeddings, self.index_type, hnsw_m=self.hnsw_m,
                                      ef_search=self.ef_search, nlist=self.nlist, nprobe=self.nprobe)
        return self._index


def build_index(embeddings: np.ndarray, index_type: IndexType = "flat", *, hnsw_m: int = 32,
                ef_search: int = 256, nlist: int | None = None, nprobe: int = 32):
    """A faiss inner-product index over `embeddings` (float32, one row per document; a memory-mapped array works:
    the index copies it in chunks)."""
    import faiss

    dim = embeddings.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
    else:
        # ~4 sqrt(N) lists is faiss' rule of thumb; IVF needs >= 39 training points per list.
        lists = nlist or max(1, min(int(4 * math.sqrt(len(embeddings))), len(embeddings) // 39))
        quantizer = faiss.IndexFlatIP(dim)
        if index_type == "ivfpq":  # PQ_BYTES bytes a vector instead of 4 x dim: corpora past memory's reach
            if len(embeddings) < PQ_MIN_VECTORS:
                raise ConfigError(f"index ivfpq: needs at least {PQ_MIN_VECTORS} vectors to train its codebooks, got "
                                  f"{len(embeddings)}; use flat (exact, and fast at this size)")
            parts = next(m for m in (PQ_BYTES, 32, 24, 16, 8, 4, 2, 1) if dim % m == 0)
            index = faiss.IndexIVFPQ(quantizer, dim, lists, parts, 8, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(_training_sample(embeddings, lists))
        index.nprobe = min(nprobe, lists)
    for start in range(0, len(embeddings), ADD_CHUNK):
        index.add(np.ascontiguousarray(embeddings[start:start + ADD_CHUNK], dtype=np.float32))
    return index


REFINE = 4
"""IVF-PQ's top k x REFINE per query are scored again with the float vectors (memory-mapped from the cache), and the
best k kept: the 48-byte codes alone found 0.73 of the exact top-100 at 1M passages, re-scored 0.96 (benchmarks/scale.py)."""


def refine(embeddings: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's `candidates` (rows, -1 for none) scored exactly against `embeddings`, best `k` first: faiss'
    (scores, rows) shape, padded with -1."""
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    for i, (query, found) in enumerate(zip(queries, candidates)):
        found = np.unique(found[found >= 0])  # sorted: a memory map reads its pages in order
        exact = np.asarray(embeddings[found], dtype=np.float32) @ query
        best = np.argsort(-exact, kind="stable")[:k]
        scores[i, :len(best)], rows[i, :len(best)] = exact[best], found[best]
    return scores, rows


PQ_BYTES = 48
"""IVF-PQ code size: 48 one-byte parts (384 dimensions: 8 each), 32x smaller than the float vector."""
PQ_MIN_VECTORS = 10_000
ADD_CHUNK = 262_144
TRAIN_POINTS_PER_LIST = 64


def _training_sample(embeddings: np.ndarray, lists: int) -> np.ndarray:
    """What IVF's k-means trains on: every vector, or an even sample of TRAIN_POINTS_PER_LIST per list (faiss
    itself samples 256 per list; training on all of 1M vectors costs minutes and buys nothing)."""
    wanted = max(lists * TRAIN_POINTS_PER_LIST, 256 * 4)
    if len(embeddings) <= wanted:
        return np.ascontiguousarray(embeddings, dtype=np.float32)
    rows = np.sort(np.random.default_rng(0).choice(len(embeddings), wanted, replace=False))
    return np.ascontiguousarray(embeddings[rows], dtype=np.float32)
