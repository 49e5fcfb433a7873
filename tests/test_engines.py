"""The dense first stage in vector engines teams run (data_prep/engines.py): Qdrant in its local mode and LanceDB,
each through its own client library and search code, against the built-in faiss index on a SciFact slice."""

from __future__ import annotations

import pytest

from rerankforge.core.errors import ConfigError
from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
from rerankforge.data_prep.runs import read_trec
from rerankforge.data_prep.sources import load_collection


@pytest.fixture(scope="module")
def collection(scifact_slice):
    return load_collection(str(scifact_slice), split="test")


def _retriever(collection, tiny_bi_encoder, **options):
    return build_retriever(collection.corpus, RetrieverConfig(retriever="dense", model=tiny_bi_encoder,
                                                              show_progress=False, **options))


@pytest.mark.parametrize("engine", ["qdrant", "lancedb"])
def test_an_engine_ranks_as_faiss_does_and_writes_the_corpus_once(engine, collection, tiny_bi_encoder, tmp_path,
                                                                   monkeypatch):
    pytest.importorskip({"qdrant": "qdrant_client", "lancedb": "lancedb"}[engine])
    queries = collection.split_queries()
    faiss_run = _retriever(collection, tiny_bi_encoder).search(queries, 20)
    location = str(tmp_path / engine)
    run = _retriever(collection, tiny_bi_encoder, index=engine, engine_location=location).search(queries, 20)
    assert run.keys() == faiss_run.keys()
    for qid, hits in faiss_run.items():
        assert [d for d, _ in run[qid]] == [d for d, _ in hits], qid
        assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(run[qid], hits))

    from rerankforge.data_prep.dense import DenseRetriever

    monkeypatch.setattr(DenseRetriever, "embeddings", property(
        lambda self: pytest.fail("the engine holds the corpus already: nothing is encoded or written")))
    again = _retriever(collection, tiny_bi_encoder, index=engine, engine_location=location)
    assert again.search(queries, 20) == run


def test_hybrid_and_the_command_line_use_an_engine(scifact_slice, tiny_bi_encoder, tmp_path):
    pytest.importorskip("qdrant_client")
    from rerankforge.cli.main import main as rerankforge

    outputs = {}
    for name, extra in (("faiss", []), ("qdrant", ["--index", "qdrant", "--engine_location", str(tmp_path / "q")])):
        outputs[name] = tmp_path / f"{name}.trec"
        assert rerankforge(["-q", "retrieve", "--data", str(scifact_slice), "--split", "test", "--retriever", "hybrid",
                            "--model", tiny_bi_encoder, "--k", "30", "--output", str(outputs[name]), *extra]) == 0
    faiss_run, qdrant_run = read_trec(outputs["faiss"]), read_trec(outputs["qdrant"])
    assert {q: [d for d, _ in h] for q, h in qdrant_run.items()} == {q: [d for d, _ in h] for q, h in faiss_run.items()}


def test_an_engine_without_a_location_says_which_option(collection, tiny_bi_encoder):
    retriever = _retriever(collection, tiny_bi_encoder, index="qdrant")
    with pytest.raises(ConfigError, match="--engine_location"):
        retriever.search({"q": "stem cells"}, 5)


@pytest.mark.parametrize("engine", ["qdrant", "lancedb"])
def test_an_index_in_an_engine_searches_as_the_faiss_folder_does(engine, scifact_slice, tiny_bi_encoder,
                                                                  tiny_reranker, tmp_path):
    pytest.importorskip({"qdrant": "qdrant_client", "lancedb": "lancedb"}[engine])
    from rerankforge.cli.main import main as rerankforge
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.serve.index import SearchIndex
    from rerankforge.serve.pipeline import Pipeline

    folders = {"faiss": tmp_path / "faiss-index", engine: tmp_path / f"{engine}-index"}
    for name, folder in folders.items():
        extra = ["--index", engine, "--engine_location", str(tmp_path / "engine")] if name == engine else []
        assert rerankforge(["-q", "index", "--docs", str(scifact_slice), "--out", str(folder), "--model",
                            tiny_bi_encoder, "--chunk_tokens", "64", *extra]) == 0
    assert not (folders[engine] / "faiss.index").exists()
    reranker = Reranker.load(tiny_reranker)
    answers = {}
    for name, folder in folders.items():
        pipeline = Pipeline(SearchIndex.load(folder, retriever="hybrid"), reranker, k=20)
        answers[name] = [(p.doc_id, round(p.first_stage_score, 5)) for p in pipeline.search("stem cell biology", top_n=10)]
    assert answers[engine] == answers["faiss"]
