"""Bi-encoder embeddings, with an on-disk cache of corpus embeddings that survives restarts.

Encoding a corpus is the slow part of dense retrieval on a CPU (all-MiniLM-L6-v2: ~18 SciFact
abstracts/s on 2 cores), so corpus embeddings are cached under a key made of the model's files, the
texts and every setting that changes the vectors. Queries are not cached. Encoding proceeds in shards that are each
written atomically: a killed run, started again with the same arguments, continues from the finished shards
instead of starting over. Under a launcher (core/processes.py) the processes share the shards, each writing its own
into the one cache folder, and the first assembles them."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rerankforge.core.cache import cache_root
from rerankforge.core.errors import OperationError
from rerankforge.core.files import atomic_path
from rerankforge.core.models import resolve_model
from rerankforge.core.processes import processes
from .fingerprints import folder_fingerprint

SHARD_SIZE = 2048
SHARD_STEP = 8
"""The number of shards is a multiple of this (or the text count), so 1, 2, 4 or 8 processes share them evenly."""


@dataclass(frozen=True)
class EncoderSettings:
    """Everything besides the texts that changes the embeddings (so it is part of the cache key)."""

    model: str
    """Local folder or Hub id of a sentence-transformers bi-encoder."""
    max_length: int | None = 256
    """Truncate inputs to this many tokens (None: the model's own max_seq_length)."""
    query_prompt: str | None = None
    """Text put before every query (e.g. 'query: ' for E5); None uses the model's 'query' prompt if any."""
    document_prompt: str | None = None
    """Text put before every document; None uses the model's 'document' prompt if any."""


class Encoder:
    """A sentence-transformers bi-encoder whose embeddings are cached on disk.

    The model is loaded only when something has to be encoded, so a fully cached run never pays for
    loading it."""

    def __init__(
        self,
        settings: EncoderSettings,
        *,
        batch_size: int = 64,
        device: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        show_progress: bool = True,
    ) -> None:
        self.settings = settings
        self.model_path = resolve_model(settings.model)
        self.batch_size = batch_size
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_root() / "embeddings"
        self.show_progress = show_progress
        self._model = None
        self._fingerprint = folder_fingerprint(self.model_path)

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_path, device=self.device)
            if self.settings.max_length is not None:
                self._model.max_seq_length = self.settings.max_length
        return self._model

    @property
    def normalize(self) -> bool:
        """Cosine models get unit vectors, so inner product == cosine (faiss IndexFlatIP)."""
        config = Path(self.model_path) / "config_sentence_transformers.json"
        similarity = "cosine"
        if config.is_file():
            similarity = json.loads(config.read_text()).get("similarity_fn_name") or "cosine"
        return similarity == "cosine"

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Queries are encoded in memory, never cached: they are short and cheap next to a corpus, and a
        server sees new ones in every request -- caching them grew the disk by a folder per request."""
        if not texts:
            raise ValueError("nothing to encode: the list of texts is empty")
        progress = _progress(len(texts), "encoding queries", self.show_progress)
        vectors = self._encode(texts, "query", progress)
        progress.close()
        return vectors

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode_cached(texts, kind="document")

    def cache_key(self, texts: list[str], kind: str) -> str:
        digest = hashlib.sha256()
        header = {
            "model": self._fingerprint,
            "kind": kind,
            "max_length": self.settings.max_length,
            "prompt": self.settings.query_prompt if kind == "query" else self.settings.document_prompt,
            "normalize": self.normalize,
            "count": len(texts),
        }
        digest.update(json.dumps(header, sort_keys=True).encode())
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
        return digest.hexdigest()[:32]

    def _encode_cached(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            raise ValueError("nothing to encode: the list of texts is empty")
        folder = self.cache_dir / self.cache_key(texts, kind)
        final = folder / "embeddings.npy"
        if final.is_file():  # memory-mapped: pages are read as searched or indexed, and the OS may drop them again
            return np.load(final, mmap_mode="r")
        folder.mkdir(parents=True, exist_ok=True)
        shards = shard_layout(texts)
        names = [folder / f"shard-{number:05d}-of-{len(shards):05d}.npy" for number in range(len(shards))]
        team = processes()  # under a launcher, each process encodes its share of the shards
        mine = team.share(range(len(shards)))
        progress = _progress(sum(len(shards[n]) for n in mine), "encoding documents", self.show_progress)
        for number in mine:
            if names[number].is_file():
                progress.update(len(shards[number]))
            else:
                _atomic_save(names[number], self._encode([texts[i] for i in shards[number]], kind, progress))
        progress.close()
        team.barrier()
        if team.is_main:
            missing = [name.name for name in names if not name.is_file()]
            if missing:
                raise OperationError(f"{folder}: shard {missing[0]} is missing after every process encoded its "
                                     f"share; expected a cache folder that every process sees (one machine, or "
                                     f"RERANKFORGE_CACHE on a filesystem all machines share)")
            dimension = np.load(names[0], mmap_mode="r").shape[1]
            with atomic_path(final) as tmp:  # filled shard by shard on disk: memory holds one shard, not the corpus
                embeddings = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                                       shape=(len(texts), dimension))
                for rows, name in zip(shards, names):
                    embeddings[rows] = np.load(name)
                embeddings.flush()
                del embeddings
            for name in names:
                name.unlink(missing_ok=True)
        team.barrier()
        return np.load(final, mmap_mode="r")

    def _encode(self, texts: list[str], kind: str, progress) -> np.ndarray:
        encode = self.model.encode_query if kind == "query" else self.model.encode_document
        prompt = self.settings.query_prompt if kind == "query" else self.settings.document_prompt
        vectors = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            vectors.append(encode(batch, prompt=prompt, batch_size=self.batch_size,
                                  normalize_embeddings=self.normalize, convert_to_numpy=True,
                                  show_progress_bar=False))
            progress.update(len(batch))
        return np.concatenate(vectors).astype(np.float32, copy=False)


def shard_layout(texts: list[str]) -> list[np.ndarray]:
    """The texts' rows in encoding shards, the same on every run and for any number of processes (so a killed run
    resumes, and 1 or N processes write the same vectors): the texts sorted longest first, dealt round-robin into
    about SHARD_SIZE-text shards. Each shard then holds texts of every length, so the shards cost the same, and
    its own texts stay longest first, so each batch holds texts of similar length (little padding)."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    count = min(len(texts), SHARD_STEP * math.ceil(len(texts) / (SHARD_STEP * SHARD_SIZE)))
    return [order[number::count] for number in range(count)]


def _atomic_save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.save(f, array)


def _progress(total: int, description: str, enabled: bool):
    from rerankforge.core.progress import progress_bar

    return progress_bar(total=total, desc=description, unit="text", disable=not enabled, dynamic_ncols=True)
