"""The search index the server loads: documents, their chunks, chunk embeddings and the faiss index.

`rerankforge index --docs PATH --out INDEX` builds it once; `SearchIndex.load(INDEX)` serves it. The
first stage runs over chunks (dense/faiss, BM25 or hybrid, from data_prep) and a document's score is
aggregated from its retrieved chunks (max by default).

    INDEX/manifest.json     model, chunking, counts, format version
    INDEX/documents.jsonl   {"_id", "title", "text"} per document
    INDEX/chunks.jsonl      {"chunk_id", "doc_id", "title", "text"} per chunk
    INDEX/embeddings.npy    chunk embeddings (float32, normalised as the model wants)
    INDEX/faiss.index       faiss index over them (flat, HNSW or IVF)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from rerankforge.core.errors import ConfigError, DataError, preview, writing
from rerankforge.core.files import readable_by_all
from rerankforge.core.models import DEFAULT_BI_ENCODER
from rerankforge.core.outputs import check_output_folder
from rerankforge.data_prep.collection import Document
from rerankforge.data_prep.engines import ENGINES, engine_index

from .documents import Chunk, ChunkingConfig, chunk_documents, load_documents

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class IndexConfig:
    """What `rerankforge index` builds."""

    docs: str = field(metadata={"help": "A BEIR folder (corpus.jsonl), a .jsonl file of {_id, title?, text}, or a "
                                        "folder of .txt/.md files."})
    out: str = field(metadata={"help": "Index folder to write: a new or empty folder, or an index built before "
                                       "(replaced atomically). A folder holding other files is refused."})
    model: str = field(default=DEFAULT_BI_ENCODER, metadata={"help": "Bi-encoder (folder or Hub id)."})
    max_length: int = field(default=256, metadata={"help": "Bi-encoder max input tokens."})
    index: Literal["auto", "flat", "hnsw", "ivf", "ivfpq", "qdrant", "lancedb"] = field(default="auto", metadata={
        "help": "faiss index in the folder: auto (by the chunks' count: flat up to 1M, ivf up to 4M, ivfpq past "
                "that; the manifest names what was built), flat (exact), hnsw or ivf (approximate, large corpora), ivfpq "
                "(approximate, 48 bytes a vector); or the chunks' "
                "vectors written into an engine at --engine_location: qdrant or lancedb (the folder keeps the texts "
                "and vectors, and names the engine's collection)."})
    engine_location: str | None = field(default=None, metadata={
        "help": "Where --index qdrant/lancedb writes: a folder (Qdrant's local mode, a LanceDB database) or a "
                "server URL (Qdrant: http://HOST:6333; LanceDB: db:// or s3://)."})
    batch_size: int = field(default=64, metadata={"help": "Bi-encoder batch size."})


def build_index(config: IndexConfig, chunking: ChunkingConfig, show_progress: bool = True) -> dict:
    """Build the index folder; returns its manifest. Written to a temp folder and renamed into place."""
    import faiss
    from transformers import AutoTokenizer

    from rerankforge.data_prep.dense import auto_index_type, build_index as build_faiss
    from rerankforge.core.processes import processes
    from rerankforge.data_prep.embeddings import Encoder, EncoderSettings

    out = check_index_out(config.out)
    docs = load_documents(config.docs)
    encoder = Encoder(EncoderSettings(model=config.model, max_length=config.max_length),
                      batch_size=config.batch_size, show_progress=show_progress)
    tokenizer = AutoTokenizer.from_pretrained(encoder.model_path)
    chunks = chunk_documents(docs, tokenizer, chunking)
    started = time.perf_counter()
    texts = [c.document.full_text for c in chunks]
    embeddings = encoder.encode_documents(texts)
    manifest = {"format_version": FORMAT_VERSION, "model": config.model, "max_length": config.max_length,
                "index": auto_index_type(len(chunks)) if config.index == "auto" else config.index,
                "chunking": asdict(chunking), "documents": len(docs), "chunks": len(chunks),
                "dimension": int(embeddings.shape[1]), "encode_seconds": round(time.perf_counter() - started, 1)}
    if not processes().is_main:  # under a launcher the processes shared the encoding; the first one writes
        return manifest
    if manifest["index"] in ENGINES:  # the vectors go into the engine; the folder names where
        manifest.update(engine_location=_engine_location(config.engine_location),
                        engine_collection="rerankforge-index-" + encoder.cache_key(texts, "document")[:16])
        engine_index(manifest["index"], manifest["engine_location"], manifest["engine_collection"], len(chunks),
                     lambda: embeddings)
        index = None
    else:
        index = build_faiss(embeddings, manifest["index"])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        _write_jsonl(staging / "documents.jsonl", ({"_id": d, "title": doc.title, "text": doc.text}
                                                   for d, doc in docs.items()))
        _write_jsonl(staging / "chunks.jsonl", (asdict(c) for c in chunks))
        with writing(staging / "embeddings.npy"):
            np.save(staging / "embeddings.npy", embeddings)
        if index is not None:
            with writing(staging / "faiss.index"):
                faiss.write_index(index, str(staging / "faiss.index"))
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for file in staging.iterdir():
            readable_by_all(file)
        os.chmod(staging, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _engine_location(location: str | None) -> str:
    """Where an index's engine lives, as the manifest keeps it: a URL, or a folder made absolute (the index may be
    loaded from anywhere). ':memory:' is refused: the vectors would be gone when `index` exits."""
    if not location or location == ":memory:":
        raise ConfigError(f"--engine_location: expected a folder or a server URL for the index's engine, got "
                          f"{location!r}")
    if "://" in location:
        return location
    return str(Path(location).expanduser().resolve())


def check_index_out(path: str) -> Path:
    """The folder `--out` names, checked before any work: a new folder, an empty one, or an index built
    earlier. Building replaces the folder as a whole, so a folder holding anything else (a user's files)
    is refused rather than deleted, and so is the current folder or one above it."""
    out = check_output_folder(path, "--out").resolve()
    here = Path.cwd().resolve()
    if out == here or out in here.parents:
        raise ConfigError(f"--out {path}: an index folder is replaced as a whole when built, so it cannot be the "
                          f"current folder or one above it; expected a folder of its own, e.g. --out index")
    if out.is_dir() and not _is_index(out):
        found = sorted(p.name for p in out.iterdir())
        if found:
            raise ConfigError(f"--out {path}: holds files that are not a rerankforge index ({preview(found)}); an "
                              "index folder is replaced as a whole, so expected a new or empty folder or an index "
                              "built before")
    return out


def _is_index(folder: Path) -> bool:
    """A folder `build_index` wrote: its manifest names a format version and a model."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and {"format_version", "model"} <= manifest.keys()


@dataclass
class DocHit:
    """A document retrieved by the first stage, with the chunks that brought it in."""

    doc_id: str
    score: float
    chunks: list[tuple[str, float]]
    """(chunk id, first-stage score), best first."""


class SearchIndex:
    """A loaded index: first-stage search over chunks, results aggregated per document."""

    def __init__(self, folder: Path, manifest: dict, docs: dict[str, Document], chunks: dict[str, Chunk],
                 retriever, doc_score: str, parts: dict | None = None):
        self.folder, self.manifest, self.docs, self.chunks = folder, manifest, docs, chunks
        self.retriever = retriever
        self.doc_score = doc_score
        self.parts = parts or {}
        """The retrievers the first stage is made of, by signal name ("dense", "bm25"): `signals` scores with them."""

    @classmethod
    def load(cls, folder: str | Path, retriever: Literal["dense", "bm25", "hybrid"] = "dense",
             doc_score: str | None = None, show_progress: bool = False) -> "SearchIndex":
        import faiss

        from rerankforge.data_prep.bm25 import BM25Retriever
        from rerankforge.data_prep.dense import DenseRetriever
        from rerankforge.data_prep.embeddings import Encoder, EncoderSettings
        from rerankforge.data_prep.hybrid import HybridRetriever

        folder = Path(folder)
        if not (folder / MANIFEST).is_file():
            raise DataError(f"index: {folder} is not an index folder (no {MANIFEST}); build one with "
                            "`rerankforge index --docs PATH --out FOLDER`")
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{folder / MANIFEST}: expected format_version {FORMAT_VERSION}, got "
                            f"{manifest.get('format_version')}; rebuild the index")
        docs = {row["_id"]: Document(row["title"], row["text"]) for row in _read_jsonl(folder / "documents.jsonl")}
        chunks = {row["chunk_id"]: Chunk(**row) for row in _read_jsonl(folder / "chunks.jsonl")}
        corpus = {chunk_id: chunk.document for chunk_id, chunk in chunks.items()}
        parts = {}
        if retriever in ("dense", "hybrid"):
            encoder = Encoder(EncoderSettings(model=manifest["model"], max_length=manifest["max_length"]),
                              show_progress=show_progress)
            embeddings = np.load(folder / "embeddings.npy")
            if manifest["index"] in ENGINES:  # written again from the folder's vectors if the engine lost them
                index = engine_index(manifest["index"], manifest["engine_location"], manifest["engine_collection"],
                                     len(embeddings), lambda: embeddings)
            else:
                index = faiss.read_index(str(folder / "faiss.index"))
            parts["dense"] = DenseRetriever.from_saved(corpus, encoder, embeddings, index)
        if retriever in ("bm25", "hybrid"):
            parts["bm25"] = BM25Retriever(corpus, show_progress=show_progress)
        if not parts:
            raise DataError(f"retriever: expected dense, bm25 or hybrid, got {retriever!r}")
        first_stage = HybridRetriever(list(parts.values())) if len(parts) > 1 else next(iter(parts.values()))
        return cls(folder, manifest, docs, chunks, first_stage,
                   doc_score or manifest["chunking"].get("doc_score", "max"), parts)

    def search(self, queries: dict[str, str], k: int) -> dict[str, list[DocHit]]:
        """Each query's top-k documents. Chunks are retrieved deep enough that k documents come back
        when documents have several chunks."""
        per_doc = max(1, round(len(self.chunks) / max(len(self.docs), 1)))
        depth = min(len(self.chunks), k * per_doc * 2)
        run = self.retriever.search(queries, depth)
        return {qid: self._by_document(hits)[:k] for qid, hits in run.items()}

    def signals(self, query: str, hits: list[DocHit], kinds) -> dict[str, dict[str, float]]:
        """Each first-stage part's score ("dense", "bm25") of each hit document, from its chunks that the first
        stage brought in, aggregated as the document's first-stage score is: kind -> {doc id -> score}."""
        chunk_ids = [chunk_id for hit in hits for chunk_id, _ in hit.chunks]
        out = {}
        for kind in kinds:
            scores = self.parts[kind].score_pairs({"q": query}, {"q": chunk_ids})["q"]
            out[kind] = {hit.doc_id: float(self._aggregate([scores[c] for c, _ in hit.chunks])) for hit in hits}
        return out

    def _by_document(self, hits: list[tuple[str, float]]) -> list[DocHit]:
        grouped: dict[str, list[tuple[str, float]]] = {}
        for chunk_id, score in hits:
            grouped.setdefault(self.chunks[chunk_id].doc_id, []).append((chunk_id, score))
        docs = [DocHit(doc_id, float(self._aggregate([s for _, s in found])), found) for doc_id, found in grouped.items()]
        return sorted(docs, key=lambda hit: -hit.score)

    def _aggregate(self, scores: list[float]) -> float:
        return {"max": max, "sum": sum, "mean": lambda xs: sum(xs) / len(xs)}[self.doc_score](scores)


def _write_jsonl(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
