"""BM25 from a corpus's statistics (core/lexical.py): what a rerank request's documents get their BM25 score from,
the score the first stage's index gives the same documents."""

from __future__ import annotations

import json

import pytest

from rerankforge.core.errors import DataError
from rerankforge.core.lexical import BM25_STATISTICS, BM25Statistics
from rerankforge.data_prep.bm25 import BM25Retriever
from rerankforge.data_prep.collection import Document
from rerankforge.data_prep.sources import load_collection


@pytest.fixture(scope="module")
def scifact(scifact_slice):
    return load_collection(str(scifact_slice), split="train")


def test_statistics_score_a_corpus_document_as_its_index_does(scifact):
    retriever = BM25Retriever(scifact.corpus)
    statistics = retriever.statistics
    assert statistics.documents == len(scifact.corpus)
    queries = dict(list(scifact.split_queries().items())[:30])
    queries["repeat"] = "death death rates of sudden infant death"  # a repeated term counts each time, as bm25s
    run = retriever.search(queries, 20)
    compared = 0
    for qid, hits in run.items():
        mine = statistics.scores(queries[qid], [scifact.doc_text(d) for d, _ in hits])
        assert mine == pytest.approx([s for _, s in hits], rel=1e-5)
        compared += len(hits)
    assert compared > 300
    # a document of none of the query's terms scores 0; a term the corpus never held counts as in one document
    assert statistics.scores("zzzunseen", ["nothing to see", "a zzzunseen word"]) == [0.0, pytest.approx(
        statistics.idf("zzzunseen") * 1 / (1 + statistics.k1 * (1 - statistics.b + statistics.b * 2
                                                                   / statistics.average_length)))]


def test_statistics_round_trip_and_a_bad_file_names_its_key(tmp_path):
    corpus = {f"d{i}": Document(title="", text=t) for i, t in enumerate(
        ["bone fractures in the elderly", "vitamin d and bone density", "cars and roads", "bone bone bone"])}
    statistics = BM25Retriever(corpus).statistics
    assert statistics.document_frequency == {"bone": 3}  # terms of one document are left to the default
    path = statistics.save(tmp_path)
    assert path.name == BM25_STATISTICS and BM25Statistics.load(path) == statistics
    values = json.loads(path.read_text())
    for key, value, message in (("documents", 0, "documents: expected int above 0, got 0"),
                                ("k1", "1.2", "k1: expected int or float, got '1.2'"),
                                ("document_frequency", {"bone": 0}, "document_frequency: expected a term -> a whole "
                                                                    "number >= 1, got 'bone': 0"),
                                ("stemmer_language", "klingon", "stemmer_language: expected one of")):
        path.write_text(json.dumps({**values, key: value}))
        with pytest.raises(DataError, match=f"{BM25_STATISTICS}: {key}") as error:
            BM25Statistics.load(path)
        assert message in str(error.value)
    path.write_text("not json")
    with pytest.raises(DataError, match="expected the BM25 statistics JSON"):
        BM25Statistics.load(path)


def test_only_the_flat_lucene_index_keeps_statistics(scifact):
    corpus = dict(list(scifact.corpus.items())[:50])
    assert BM25Retriever(corpus, fields="multifield").statistics is None
    assert BM25Retriever(corpus, method="atire").statistics is None


def test_what_a_careless_client_sends_scores_without_failing():
    statistics = BM25Statistics(1.2, 0.75, 100, 10.0, "porter", "en", {"vitamin": 5})
    documents = ["", "   \n\t", "😀 \x00 vitamin", "the of and", "VITAMINS", "vitamin " * 200_000]
    scores = statistics.scores("Vitamin D?", documents)
    assert scores[:2] == [0.0, 0.0] and scores[3] == 0.0 and scores[2] > 0 and scores[4] > 0 and scores[5] > 0
    assert statistics.scores("", ["vitamin"]) == [0.0] and statistics.scores("the of", ["the of"]) == [0.0]
    assert statistics.scores("vitamin", []) == []
