"""Model resolution, the embedding cache (hits, keys, resume after a kill) and faiss dense search."""

from __future__ import annotations

import numpy as np
import pytest

from rerankforge.core.errors import ConfigError, ModelNotFoundError
from rerankforge.core.models import resolve_model
from rerankforge.data_prep import embeddings as embeddings_module
from rerankforge.data_prep.collection import Document
from rerankforge.data_prep.dense import DenseRetriever, build_index
from rerankforge.data_prep.embeddings import Encoder, EncoderSettings

CORPUS = {
    "d1": Document("Aspirin", "Aspirin reduces the risk of heart attack."),
    "d2": Document("", "Vitamin D deficiency is common in winter."),
    "d3": Document("Statins", "Statins lower cholesterol and cardiovascular events."),
    "d4": Document("", "The mitochondria is the powerhouse of the cell."),
}


def test_default_model_resolves_to_packaged_copy_offline(minilm_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == minilm_path
    assert resolve_model("all-MiniLM-L6-v2") == minilm_path


def test_unknown_hub_id_offline_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="cannot be downloaded.*local model folder"):
        resolve_model("acme/no-such-model")


def test_missing_or_wrong_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model folder not found"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        resolve_model(str(tmp_path / "empty"))


def _encoder(model: str, cache, **settings) -> Encoder:
    return Encoder(EncoderSettings(model=model, **settings), batch_size=2, cache_dir=cache, show_progress=False)


def test_cache_hit_skips_the_model(tiny_bi_encoder, tmp_path):
    texts = [d.full_text for d in CORPUS.values()]
    first = _encoder(tiny_bi_encoder, tmp_path).encode_documents(texts)
    again = _encoder(tiny_bi_encoder, tmp_path)
    assert np.array_equal(again.encode_documents(texts), first)
    assert again._model is None  # served from disk: the model was never loaded
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)


def test_weights_replaced_with_same_size_ones_and_the_time_kept_are_not_served_from_the_cache(tiny_bi_encoder,
                                                                                                 tmp_path):
    """`cp -p` / `rsync -a` of other weights keep the size and the modification time: the cache keys on bytes."""
    import os
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    model = tmp_path / "model"
    shutil.copytree(tiny_bi_encoder, model)
    texts = [d.full_text for d in CORPUS.values()]
    before = _encoder(str(model), tmp_path / "cache").encode_documents(texts)
    weights = next(model.rglob("model.safetensors"))
    stat = weights.stat()
    tensors = load_file(weights)
    torch.manual_seed(5)
    other = tmp_path / "other.safetensors"
    save_file({name: torch.randn_like(t) if t.is_floating_point() else t for name, t in tensors.items()}, other,
              metadata={"format": "pt"})
    shutil.copy2(other, weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    after = _encoder(str(model), tmp_path / "cache").encode_documents(texts)
    fresh = _encoder(str(model), tmp_path / "fresh-cache").encode_documents(texts)
    assert not np.allclose(after, before) and np.allclose(after, fresh, atol=1e-6)


def test_cache_key_changes_with_texts_length_and_kind(tiny_bi_encoder, tmp_path):
    encoder = _encoder(tiny_bi_encoder, tmp_path)
    texts = ["a b c", "d e f"]
    key = encoder.cache_key(texts, "document")
    assert key != encoder.cache_key(["a b c", "d e g"], "document")
    assert key != encoder.cache_key(texts, "query")
    assert key != _encoder(tiny_bi_encoder, tmp_path, max_length=64).cache_key(texts, "document")


def test_queries_are_encoded_but_never_cached(tiny_bi_encoder, tmp_path):
    """A server encodes a new query per request: a cache entry each would grow the disk without bound."""
    encoder = _encoder(tiny_bi_encoder, tmp_path / "cache")
    retriever = DenseRetriever(CORPUS, encoder)
    retriever.search({"q": "warm up: the corpus is encoded and cached"}, k=2)
    cached = sorted((tmp_path / "cache").iterdir())
    assert len(cached) == 1  # the corpus
    queries = ["aspirin heart attack", "cell biology", "vitamin d in winter"]
    vectors = [encoder.encode_queries([query]) for query in queries]
    retriever.search({f"q{i}": query for i, query in enumerate(queries)}, k=2)
    assert sorted((tmp_path / "cache").iterdir()) == cached
    model = encoder.model
    for query, vector in zip(queries, vectors):
        expected = model.encode_query([query], normalize_embeddings=True, convert_to_numpy=True)
        np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_killed_encoding_resumes_from_finished_shards(tiny_bi_encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings_module, "SHARD_SIZE", 2)
    monkeypatch.setattr(embeddings_module, "SHARD_STEP", 1)  # 4 shards of 2, 2, 2 and 1 texts
    texts = [f"document number {i} about topic {i % 3}" for i in range(7)]
    expected = _encoder(tiny_bi_encoder, tmp_path / "reference").encode_documents(texts)

    encoder = _encoder(tiny_bi_encoder, tmp_path / "cache")
    calls = []
    real_encode = Encoder._encode

    def dies_on_third_shard(self, batch, kind, progress):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_encode(self, batch, kind, progress)

    monkeypatch.setattr(Encoder, "_encode", dies_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        encoder.encode_documents(texts)
    monkeypatch.setattr(Encoder, "_encode", lambda self, batch, kind, progress: calls.append(len(batch))
                        or real_encode(self, batch, kind, progress))
    resumed = _encoder(tiny_bi_encoder, tmp_path / "cache").encode_documents(texts)
    assert calls == [2, 2, 2, 2, 1]  # 2 shards before the kill, then only the 2 that were missing
    np.testing.assert_allclose(resumed, expected, atol=1e-6)


def test_dense_search_and_pair_scores_agree(tiny_bi_encoder, tmp_path):
    retriever = DenseRetriever(CORPUS, _encoder(tiny_bi_encoder, tmp_path))
    queries = {"q1": "aspirin heart attack", "q2": "cell biology"}
    run = retriever.search(queries, k=10)
    assert all(len(hits) == len(CORPUS) for hits in run.values())  # k capped at the corpus size
    assert [s for _, s in run["q1"]] == sorted((s for _, s in run["q1"]), reverse=True)
    pairs = retriever.score_pairs(queries, {qid: [d for d, _ in hits] for qid, hits in run.items()})
    for qid, hits in run.items():
        for doc_id, score in hits:
            assert pairs[qid][doc_id] == pytest.approx(score, abs=1e-5)


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_find_the_exact_neighbours_on_small_data(index_type):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:50] + 0.01 * rng.normal(size=(50, 16)).astype(np.float32)
    _, exact = build_index(vectors, "flat").search(queries, 10)
    _, approximate = build_index(vectors, index_type, nprobe=64).search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    assert recall > 0.9


def test_ivfpq_keeps_48_bytes_a_vector_and_finds_the_near_neighbours():
    """IVF-PQ trains on a sample, adds in chunks (a memory-mapped array works) and stores codes, not floats; on
    clustered vectors with queries near them its top-10 holds most of the exact one."""
    import faiss

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(200, 96)).astype(np.float32)
    vectors = centres[rng.integers(0, 200, 20_000)] + 0.3 * rng.normal(size=(20_000, 96)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:100] + 0.01 * rng.normal(size=(100, 96)).astype(np.float32)
    _, exact = build_index(vectors, "flat").search(queries, 10)
    index = build_index(vectors, "ivfpq", nprobe=64)
    assert faiss.downcast_index(index).code_size == 48 and index.ntotal == 20_000
    _, approximate = index.search(queries, 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)]) > 0.5
    assert approximate[np.arange(100), 0].tolist() == list(range(100))  # each query's own vector first
    from rerankforge.data_prep.dense import refine  # what DenseRetriever does with ivfpq: codes' top 40, exact top 10

    scores, refined = refine(vectors, queries, index.search(queries, 40)[1], 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(refined, exact)]) > 0.9
    np.testing.assert_allclose(scores[:, 0], np.sum(vectors[:100] * queries, axis=1), rtol=1e-5)
    with pytest.raises(ConfigError, match="ivfpq: needs at least 10000 vectors .* got 2000; use flat"):
        build_index(vectors[:2000], "ivfpq")


def test_auto_chooses_the_index_by_corpus_size(tiny_bi_encoder, tmp_path, monkeypatch, caplog):
    """flat (exact) for small corpora, IVF past AUTO_FLAT_UP_TO, IVF-PQ past AUTO_IVF_UP_TO; the default is auto."""
    from rerankforge.data_prep import dense

    assert [dense.auto_index_type(n) for n in (5_183, 1_000_000, 1_000_001, 4_000_000, 4_000_001)] == \
        ["flat", "flat", "ivf", "ivf", "ivfpq"]
    encoder = _encoder(tiny_bi_encoder, tmp_path)
    assert DenseRetriever(CORPUS, encoder).index_type == "flat"
    monkeypatch.setattr(dense, "AUTO_FLAT_UP_TO", 2)
    with caplog.at_level("INFO", logger="rerankforge"):
        retriever = DenseRetriever(CORPUS, encoder)
    assert retriever.index_type == "ivf" and f"auto -> ivf for {len(CORPUS)} documents" in caplog.text
    import faiss

    retriever.search({"q": "solar panels"}, 2)
    assert isinstance(faiss.downcast_index(retriever._index), faiss.IndexIVFFlat)
    assert DenseRetriever(CORPUS, encoder, index_type="flat").index_type == "flat"  # asked for by name: kept


def test_unknown_index_type(tiny_bi_encoder, tmp_path):
    with pytest.raises(ConfigError, match="index type must be one of auto, flat, hnsw, ivf, ivfpq, qdrant, lancedb; "
                                          "got 'annoy'"):
        DenseRetriever(CORPUS, _encoder(tiny_bi_encoder, tmp_path), index_type="annoy")
