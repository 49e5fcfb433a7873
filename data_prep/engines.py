"""Vector engines teams already run, as the dense first stage's index: Qdrant and LanceDB.

Each is an index with faiss' search shape -- `search(vectors, k) -> (scores, rows)` -- so `DenseRetriever` (and
through it `retrieve`, `mine`, `eval`, hybrid fusion and the served ranking's signals) uses it exactly as it uses
faiss. The corpus vectors are the embedding cache's; they are written into the engine once, under a collection
(table) named after the embeddings' cache key, so a second run over the same corpus and bi-encoder finds them
there and writes nothing. Candidates and their scores come back from the engine's own search code: Qdrant's
(`qdrant-client`, in local mode -- a folder, or ":memory:" -- or a server URL) and LanceDB's (a folder, or a
`db://` / `s3://` URI), both by inner product, the bi-encoder's similarity."""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from rerankforge.core.errors import ConfigError

logger = logging.getLogger(__name__)

ENGINES = ("qdrant", "lancedb")
BATCH = 1024
"""Points written, and queries searched, per call."""


def engine_index(engine: str, location: str | None, name: str, count: int, vectors: Callable[[], np.ndarray]):
    """The engine's index over the corpus's `count` vectors at `location`: written there under `name` from
    `vectors()` (one row per document, in corpus order; called only when the engine does not hold them yet)."""
    if not location:
        raise ConfigError(f"index {engine}: expected --engine_location (a folder, ':memory:' or a URL), got none")
    if engine == "qdrant":
        return QdrantIndex(location, name, count, vectors)
    if engine == "lancedb":
        return LanceDBIndex(location, name, count, vectors)
    raise ConfigError(f"index: expected one of {', '.join(ENGINES)}, got {engine!r}")


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"index: the {package} engine needs `pip install {package}`") from None


class QdrantIndex:
    """A Qdrant collection of the corpus vectors (point id = corpus row), searched by dot product."""

    def __init__(self, location: str, name: str, count: int, vectors: Callable[[], np.ndarray]):
        _require("qdrant_client", "qdrant-client")
        from qdrant_client import QdrantClient, models

        self.models, self.name = models, name
        self.client = _qdrant_client(QdrantClient, location)
        if self.client.collection_exists(name) and self.client.count(name, exact=True).count == count:
            logger.info(f"qdrant {location}: collection {name} holds the corpus already")
            return
        if self.client.collection_exists(name):  # a run stopped while writing: written again, whole
            self.client.delete_collection(name)
        embeddings = vectors()
        self.client.create_collection(name, vectors_config=models.VectorParams(
            size=embeddings.shape[1], distance=models.Distance.DOT))
        for start in range(0, len(embeddings), BATCH):
            chunk = embeddings[start:start + BATCH]
            self.client.upsert(name, points=models.Batch(ids=list(range(start, start + len(chunk))),
                                                         vectors=chunk.tolist()), wait=True)
        logger.info(f"qdrant {location}: wrote {len(embeddings)} vectors into collection {name}")

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = np.full((len(vectors), k), -np.inf, np.float32), np.full((len(vectors), k), -1, np.int64)
        for start in range(0, len(vectors), BATCH):
            requests = [self.models.QueryRequest(query=v.tolist(), limit=k) for v in vectors[start:start + BATCH]]
            for offset, answer in enumerate(self.client.query_batch_points(self.name, requests)):
                for j, point in enumerate(answer.points):
                    scores[start + offset, j], rows[start + offset, j] = point.score, int(point.id)
        return scores, rows


class LanceDBIndex:
    """A LanceDB table of the corpus vectors (column `row` = corpus row), searched by dot product (exhaustively
    until the table has a vector index: LanceDB's own default for tables it has not indexed)."""

    def __init__(self, location: str, name: str, count: int, vectors: Callable[[], np.ndarray]):
        lancedb = _require("lancedb", "lancedb")
        import pyarrow as pa

        self.db = lancedb.connect(location)
        existing = set(_table_names(self.db))
        if name in existing and self.db.open_table(name).count_rows() == count:
            logger.info(f"lancedb {location}: table {name} holds the corpus already")
        else:
            embeddings = vectors().astype(np.float32)
            column = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.ravel()), embeddings.shape[1])
            table = pa.table({"row": pa.array(np.arange(len(embeddings), dtype=np.int64)), "vector": column})
            self.db.create_table(name, data=table, mode="overwrite" if name in existing else "create")
            logger.info(f"lancedb {location}: wrote {len(embeddings)} vectors into table {name}")
        self.table = self.db.open_table(name)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = np.full((len(vectors), k), -np.inf, np.float32), np.full((len(vectors), k), -1, np.int64)
        for i, vector in enumerate(vectors):
            hits = (self.table.search(vector.astype(np.float32), vector_column_name="vector").distance_type("dot")
                    .limit(k).select(["row", "_distance"]).to_arrow())
            found = hits.num_rows
            rows[i, :found] = hits.column("row").to_numpy()
            scores[i, :found] = 1.0 - hits.column("_distance").to_numpy()  # LanceDB's dot distance is 1 - q.d
        return scores, rows


_QDRANT_CLIENTS: dict[str, object] = {}
"""One client per location in a process: Qdrant's local mode locks its folder to the first client that opens it."""


def _qdrant_client(QdrantClient, location: str):
    if not _QDRANT_CLIENTS:  # closed before the interpreter tears modules down (else its __del__ fails noisily)
        atexit.register(_close_qdrant_clients)
    if location not in _QDRANT_CLIENTS:
        if location.startswith(("http://", "https://")):
            _QDRANT_CLIENTS[location] = QdrantClient(url=location)
        elif location == ":memory:":
            _QDRANT_CLIENTS[location] = QdrantClient(location=":memory:")
        else:
            Path(location).mkdir(parents=True, exist_ok=True)
            _QDRANT_CLIENTS[location] = QdrantClient(path=location)
    return _QDRANT_CLIENTS[location]


def _close_qdrant_clients() -> None:
    while _QDRANT_CLIENTS:
        _QDRANT_CLIENTS.popitem()[1].close()


def _table_names(db) -> list[str]:
    listed = db.list_tables() if hasattr(db, "list_tables") else db.table_names()
    return list(getattr(listed, "tables", listed))
