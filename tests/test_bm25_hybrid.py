"""BM25 (bm25s) and hybrid fusion: hand-checked scores on toy data, plus one real SciFact check."""

from __future__ import annotations

import csv
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import pytrec_eval

from rerankforge.core.errors import ConfigError, DataError
from rerankforge.data_prep.bm25 import BM25Retriever
from rerankforge.data_prep.collection import Document
from rerankforge.data_prep.hybrid import HybridRetriever, reciprocal_rank_fusion, score_fusion
from rerankforge.core.rankings import Run

# After lowercasing, stopwords and Porter stemming the documents are:
#   d1 [cat, run]   d2 [dog, run, run]   d3 [bird, sing]   d4 [cat, cat, food, cat]  (title "Cats" counts)
TOY = {
    "d1": Document("", "The cat runs"),
    "d2": Document("", "Dogs run and run"),
    "d3": Document("", "A bird sings"),
    "d4": Document("Cats", "cat food for cats"),
}
TOY_LENGTHS = {"d1": 2, "d2": 3, "d3": 2, "d4": 4}


def lucene_bm25(tf: int, df: int, doc_len: int, k1: float = 1.2, b: float = 0.75) -> float:
    """Lucene's BM25 for one term, written out by hand for the toy corpus."""
    n_docs, avg_len = len(TOY), sum(TOY_LENGTHS.values()) / len(TOY)
    idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * doc_len / avg_len))


@pytest.fixture(scope="module")
def toy_bm25() -> BM25Retriever:
    return BM25Retriever(TOY)


# ---------------------------------------------------------------- BM25


def test_bm25_scores_match_hand_computed_lucene_formula(toy_bm25):
    run = toy_bm25.search({"q": "cat"}, k=10)
    expected = {"d4": lucene_bm25(3, 2, 4), "d1": lucene_bm25(1, 2, 2)}
    assert [doc for doc, _ in run["q"]] == ["d4", "d1"]  # docs without "cat" are not listed
    assert dict(run["q"]) == pytest.approx(expected, rel=1e-6)


def test_stemming_lets_running_match_runs(toy_bm25):
    run = toy_bm25.search({"q": "running"}, k=10)
    assert [doc for doc, _ in run["q"]] == ["d2", "d1"]
    assert dict(run["q"])["d2"] == pytest.approx(lucene_bm25(2, 2, 3), rel=1e-6)
    unstemmed = BM25Retriever(TOY, stemmer_language=None)
    assert unstemmed.search({"q": "running"}, k=10) == {"q": []}


def test_corpus_without_an_indexable_word_is_a_clear_error():
    with pytest.raises(DataError, match="none of the 2 documents holds a word it indexes"):
        BM25Retriever({"d1": Document("", "a b"), "d2": Document("", "the of")})


def test_stopword_only_and_unknown_queries_give_empty_lists(toy_bm25):
    queries = {"stop": "the and a", "unknown": "zebra", "empty": "", "ok": "bird"}
    run = toy_bm25.search(queries, k=3)
    assert run["stop"] == run["unknown"] == run["empty"] == []
    assert [doc for doc, _ in run["ok"]] == ["d3"]
    pairs = toy_bm25.score_pairs(queries, {"stop": ["d1"], "unknown": ["d2"], "empty": ["d3"]})
    assert pairs == {"stop": {"d1": 0.0}, "unknown": {"d2": 0.0}, "empty": {"d3": 0.0}}


def test_k_larger_than_corpus_is_capped(toy_bm25):
    run = toy_bm25.search({"q": "cat run bird"}, k=1000)
    assert sorted(doc for doc, _ in run["q"]) == ["d1", "d2", "d3", "d4"]


def test_small_query_batches_give_the_same_run():
    queries = {f"q{i}": text for i, text in enumerate(["cat", "running dogs", "bird", "the", "food cat"])}
    batched = BM25Retriever(TOY, query_batch_size=2).search(queries, k=4)
    assert batched == BM25Retriever(TOY).search(queries, k=4)


def test_score_pairs_equal_search_scores(toy_bm25):
    queries = {"a": "cat food", "b": "run dogs run"}
    run = toy_bm25.search(queries, k=4)
    pairs = toy_bm25.score_pairs(queries, {qid: list(TOY) for qid in queries})
    for qid, hits in run.items():
        for doc_id, score in hits:
            assert pairs[qid][doc_id] == score
        assert all(pairs[qid][d] == 0.0 for d in TOY if d not in dict(hits))


def test_bm25_rejects_bad_options_and_ids(toy_bm25):
    with pytest.raises(ConfigError, match="method must be one of .*got 'okapi'"):
        BM25Retriever(TOY, method="okapi")
    with pytest.raises(ConfigError, match="stemmer_language .*got 'klingon'"):
        BM25Retriever(TOY, stemmer_language="klingon")
    with pytest.raises(ConfigError, match="stopwords .*got 'xx'"):
        BM25Retriever(TOY, stopwords="xx")
    with pytest.raises(DataError, match="empty corpus"):
        BM25Retriever({})
    with pytest.raises(DataError, match="not in the corpus: 'nope'"):
        toy_bm25.score_pairs({"q": "cat"}, {"q": ["nope"]})


# ---------------------------------------------------------------- BM25 multifield (BEIR's best_fields)

# Analyzed fields (m2 has no title, so the title field has 3 documents, average length 5/3;
# the text field has 4, average length 10/4):
#   m1 title [cat, care]    text [feed, cat]
#   m2 title -              text [dog, cat, plai]
#   m3 title [dog, train]   text [train, dog, daili]
#   m4 title [cat]          text [bird, sing]
MF = {
    "m1": Document("Cat care", "Feeding a cat"),
    "m2": Document("", "Dogs and cats play"),
    "m3": Document("Dog training", "Train the dog daily"),
    "m4": Document("Cats", "Birds sing"),
}


def field_bm25(tf: int, df: int, doc_len: int, n_docs: int, avg_len: float) -> float:
    """Lucene BM25 (k1=1.2, b=0.75) of one term in one field, with that field's own statistics."""
    idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * doc_len / avg_len))


def title_bm25(tf, df, doc_len):
    return field_bm25(tf, df, doc_len, n_docs=3, avg_len=5 / 3)


def text_bm25(tf, df, doc_len):
    return field_bm25(tf, df, doc_len, n_docs=4, avg_len=10 / 4)


def best_fields(title: float, text: float, tie_breaker: float = 0.5) -> float:
    return max(title, text) + tie_breaker * min(title, text)


@pytest.fixture(scope="module")
def mf_bm25() -> BM25Retriever:
    return BM25Retriever(MF, fields="multifield")


def test_multifield_scores_are_best_field_plus_tie_breaker_times_the_other(mf_bm25):
    run = mf_bm25.search({"cat": "cat", "dog": "dog training"}, k=10)
    cat = {
        "m1": best_fields(title_bm25(1, 2, 2), text_bm25(1, 2, 2)),
        "m2": text_bm25(1, 2, 3),  # no title: 0 on that field
        "m4": title_bm25(1, 2, 1),
    }
    dog = {
        "m3": best_fields(2 * title_bm25(1, 1, 2), text_bm25(1, 2, 3) + text_bm25(1, 1, 3)),
        "m2": text_bm25(1, 2, 3),
    }
    for qid, expected in (("cat", cat), ("dog", dog)):  # m3 matches no "cat" term: not listed
        assert [doc for doc, _ in run[qid]] == sorted(expected, key=expected.get, reverse=True)
        assert dict(run[qid]) == pytest.approx(expected, rel=1e-6)
    assert mf_bm25.name == "bm25-multifield"
    no_tie = dict(BM25Retriever(MF, fields="multifield", tie_breaker=0.0).search({"q": "cat"}, k=10)["q"])
    assert no_tie["m1"] == pytest.approx(max(title_bm25(1, 2, 2), text_bm25(1, 2, 2)), rel=1e-6)


def test_multifield_score_pairs_equal_search_and_batching_threads_change_nothing(mf_bm25):
    queries = {"a": "cat care", "b": "dogs", "c": "the", "d": "zebra"}
    run = mf_bm25.search(queries, k=2)
    pairs = mf_bm25.score_pairs(queries, {qid: list(MF) for qid in queries})
    for qid, hits in run.items():
        assert {doc: pairs[qid][doc] for doc, _ in hits} == dict(hits)  # exactly, not approximately
    assert run["c"] == run["d"] == [] and set(pairs["c"].values()) == set(pairs["d"].values()) == {0.0}
    threaded = BM25Retriever(MF, fields="multifield", n_threads=2, query_batch_size=1)
    assert threaded.search(queries, k=2) == run


def test_multifield_without_any_titles_equals_flat():
    untitled = {doc_id: Document("", doc.text) for doc_id, doc in TOY.items()}
    queries = {"a": "cat food", "b": "running dogs"}
    multifield = BM25Retriever(untitled, fields="multifield").search(queries, k=4)
    flat = BM25Retriever(untitled).search(queries, k=4)
    for qid in queries:
        assert [doc for doc, _ in multifield[qid]] == [doc for doc, _ in flat[qid]]
        assert dict(multifield[qid]) == pytest.approx(dict(flat[qid]), rel=1e-6)


def test_multifield_rejects_bad_options():
    with pytest.raises(ConfigError, match="fields must be one of flat, multifield; got 'nested'"):
        BM25Retriever(MF, fields="nested")
    with pytest.raises(ConfigError, match=r"tie_breaker must be a number in \[0, 1\]; got 1.5"):
        BM25Retriever(MF, fields="multifield", tie_breaker=1.5)


# ---------------------------------------------------------------- fusion functions

RUN_A: Run = {"q": [("a", 3.0), ("b", 2.0), ("c", 1.0)], "only_a": [("x", 1.0)]}
RUN_B: Run = {"q": [("c", 10.0), ("d", 5.0)]}


def test_rrf_hand_computed_with_missing_doc():
    fused = reciprocal_rank_fusion([RUN_A, RUN_B], k=60)
    # equal scores as trec_eval ranks them (doc id descending): the list's order is the ranking it evaluates to
    assert fused["q"] == [("c", 1 / 63 + 1 / 61), ("a", 1 / 61), ("d", 1 / 62), ("b", 1 / 62)]
    assert fused["only_a"] == [("x", 1 / 61)]


def test_rrf_weights():
    fused = dict(reciprocal_rank_fusion([RUN_A, RUN_B], k=60, weights=[2.0, 1.0])["q"])
    assert fused == pytest.approx({"a": 2 / 61, "b": 2 / 62, "c": 2 / 63 + 1 / 61, "d": 1 / 62})


def test_minmax_score_fusion_missing_doc_counts_zero():
    assert score_fusion([RUN_A, RUN_B], "minmax")["q"] == [("c", 1.0), ("a", 1.0), ("b", 0.5), ("d", 0.0)]
    weighted = score_fusion([RUN_A, RUN_B], "minmax", weights=[1.0, 2.0])["q"]
    assert weighted == [("c", 2.0), ("a", 1.0), ("b", 0.5), ("d", 0.0)]


def test_zscore_fusion_missing_doc_takes_the_lists_minimum():
    sa = math.sqrt(2 / 3)  # population std of A's [3, 2, 1]; B's [10, 5] has mean 7.5, std 2.5
    expected = {
        "a": 1 / sa + (-1.0),  # not in B: B's minimum z-score (-1)
        "b": 0.0 + (-1.0),
        "c": -1 / sa + 1.0,
        "d": -1 / sa + (-1.0),  # not in A: A's minimum z-score
    }
    fused = score_fusion([RUN_A, RUN_B], "zscore")["q"]
    assert [doc for doc, _ in fused] == ["a", "c", "b", "d"]
    assert dict(fused) == pytest.approx(expected)


def test_fusion_rejects_bad_options():
    with pytest.raises(ConfigError, match="normalization must be one of minmax, zscore; got 'l2'"):
        score_fusion([RUN_A], "l2")
    with pytest.raises(ConfigError, match="weights must be 2 non-negative"):
        reciprocal_rank_fusion([RUN_A, RUN_B], weights=[1.0])
    with pytest.raises(ConfigError, match="rrf_k must be an integer >= 0"):
        reciprocal_rank_fusion([RUN_A], k=-1)


# ---------------------------------------------------------------- HybridRetriever


class FakeRetriever:
    """Fixed scores per query; records the depths it was searched to."""

    def __init__(self, name: str, scores: dict[str, dict[str, float]]):
        self.name, self.scores, self.depths = name, scores, []

    def search(self, queries: dict[str, str], k: int) -> Run:
        self.depths.append(k)
        return {
            qid: sorted(self.scores.get(qid, {}).items(), key=lambda item: -item[1])[:k] for qid in queries
        }

    def score_pairs(self, queries, doc_ids):
        scores = self.scores
        return {qid: {d: scores.get(qid, {}).get(d, -5.0) for d in docs} for qid, docs in doc_ids.items()}


def fake_dense() -> FakeRetriever:
    return FakeRetriever("dense", {"q1": {"d3": 0.9, "d1": 0.8, "d4": 0.2}, "q2": {"d2": 0.7, "d3": 0.1}})


QUERIES = {"q1": "cat runs", "q2": "the dogs"}
FUSIONS = [("rrf", "minmax"), ("score", "minmax"), ("score", "zscore")]


@pytest.mark.parametrize("method,normalization", FUSIONS)
def test_hybrid_search_fuses_component_lists(toy_bm25, method, normalization):
    dense = fake_dense()
    hybrid = HybridRetriever([dense, toy_bm25], method=method, normalization=normalization, candidate_depth=3)
    assert hybrid.name == f"hybrid-{method}"
    run = hybrid.search(QUERIES, k=2)
    assert dense.depths == [3]  # searched to max(k, candidate_depth)
    components = [dense.search(QUERIES, 3), toy_bm25.search(QUERIES, 3)]
    if method == "rrf":
        expected = reciprocal_rank_fusion(components, k=60)
    else:
        expected = score_fusion(components, normalization)
    assert run == {qid: hits[:2] for qid, hits in expected.items()}


@pytest.mark.parametrize("method,normalization", FUSIONS)
def test_hybrid_score_pairs_match_search(toy_bm25, method, normalization):
    hybrid = HybridRetriever([fake_dense(), toy_bm25], method=method, normalization=normalization)
    run = hybrid.search(QUERIES, k=4)
    pairs = hybrid.score_pairs(QUERIES, {qid: list(TOY) for qid in QUERIES})
    for qid, hits in run.items():
        listed = dict(hits)
        assert {d: pairs[qid][d] for d in listed} == pytest.approx(listed)
        outside = {pairs[qid][d] for d in TOY if d not in listed}  # q2: d1, d4 are in no component list
        assert len(outside) <= 1 and all(score <= min(listed.values()) for score in outside)
    # without a previous search the lists are searched on demand, giving the same numbers
    fresh = HybridRetriever([fake_dense(), toy_bm25], method=method, normalization=normalization)
    again = fresh.score_pairs(QUERIES, {"q1": ["d1", "d2"], "q2": ["d1"]})
    assert again["q1"] == pytest.approx({d: pairs["q1"][d] for d in ["d1", "d2"]})
    assert again["q2"] == pytest.approx({"d1": pairs["q2"]["d1"]})


class TextRetriever:
    """Scores by query text, as a real retriever (the id is a label: the server calls every query "q").
    A search holding `slow_text` signals `waiting`, then waits for `go`: a slow component."""

    def __init__(self, scores: dict[str, dict[str, float]], slow_text: str | None = None):
        self.name, self.scores, self.slow_text = "text", scores, slow_text
        self.waiting, self.go = threading.Event(), threading.Event()

    def search(self, queries: dict[str, str], k: int) -> Run:
        if self.slow_text in queries.values():
            self.waiting.set()
            assert self.go.wait(timeout=30)
        return {qid: sorted(self.scores[text].items(), key=lambda item: -item[1])[:k] for qid, text in queries.items()}

    def score_pairs(self, queries, doc_ids):
        return {qid: {d: self.scores[queries[qid]].get(d, -5.0) for d in docs} for qid, docs in doc_ids.items()}


DENSE_BY_TEXT = {"cats": {"d1": 0.9, "d2": 0.5, "d3": 0.1}, "dogs": {"d3": 0.9, "d2": 0.6, "d1": 0.2},
                 "birds": {"d2": 0.8, "d3": 0.4, "d1": 0.3}}
BM25_BY_TEXT = {"cats": {"d1": 7.0, "d3": 2.0}, "dogs": {"d3": 5.0, "d1": 4.0, "d2": 1.0}, "birds": {"d3": 3.0}}


@pytest.mark.parametrize("method", ["rrf", "score"])
def test_concurrent_hybrid_calls_each_get_their_own_answer(method):
    """One HybridRetriever serves every request of a server. While one caller waits in a slow component,
    another searches the same query id with another text; each must get the answer it would get alone."""
    slow = TextRetriever(DENSE_BY_TEXT, slow_text="birds")
    shared = HybridRetriever([slow, TextRetriever(BM25_BY_TEXT)], method=method, candidate_depth=3)
    alone = HybridRetriever([TextRetriever(DENSE_BY_TEXT), TextRetriever(BM25_BY_TEXT)], method=method,
                            candidate_depth=3)
    pairs_of = {"q": ["d1", "d2", "d3"], "q2": ["d1", "d2", "d3"]}
    expected = {"cats": alone.search({"q": "cats"}, k=3), "dogs": alone.search({"q": "dogs"}, k=3),
                "pairs": alone.score_pairs({"q": "cats", "q2": "birds"}, pairs_of)}

    def first():  # search, then pair scores whose second query waits in the slow component
        return shared.search({"q": "cats"}, k=3), shared.score_pairs({"q": "cats", "q2": "birds"}, pairs_of)

    def second():  # meanwhile another request: same query id, another text
        assert slow.waiting.wait(timeout=30)
        try:
            return shared.search({"q": "dogs"}, k=3)
        finally:
            slow.go.set()

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.submit(first), pool.submit(second)
        (cats, pairs), dogs = a.result(timeout=60), b.result(timeout=60)
    assert cats == expected["cats"] and dogs == expected["dogs"]
    assert pairs == expected["pairs"]


def test_hybrid_rrf_pair_outside_depth_gets_no_contribution():
    dense = fake_dense()
    hybrid = HybridRetriever([dense], method="rrf", candidate_depth=2)
    hybrid.search({"q1": "x"}, k=1)
    # d4 is dense's 3rd hit, beyond depth 2: no RRF contribution
    assert hybrid.score_pairs({"q1": "x"}, {"q1": ["d3", "d4"]}) == {"q1": {"d3": 1 / 61, "d4": 0.0}}


def test_hybrid_minmax_pair_clipped_to_list_minimum():
    dense = FakeRetriever("dense", {"q": {"a": 1.0, "b": 0.5, "c": 0.0}})
    hybrid = HybridRetriever([dense], method="score", normalization="minmax", candidate_depth=2)
    assert hybrid.search({"q": "x"}, k=2) == {"q": [("a", 1.0), ("b", 0.0)]}
    assert hybrid.score_pairs({"q": "x"}, {"q": ["a", "b", "c"]}) == {"q": {"a": 1.0, "b": 0.0, "c": 0.0}}


def test_hybrid_rejects_bad_options(toy_bm25):
    with pytest.raises(ConfigError, match="method must be one of rrf, score; got 'max'"):
        HybridRetriever([toy_bm25], method="max")
    with pytest.raises(ConfigError, match="retrievers must hold at least one"):
        HybridRetriever([])
    with pytest.raises(ConfigError, match="weights must be 2"):
        HybridRetriever([toy_bm25, fake_dense()], weights=[1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="candidate_depth must be a positive integer; got 0"):
        HybridRetriever([toy_bm25], candidate_depth=0)


# ---------------------------------------------------------------- real data


def _read_scifact(folder):
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            corpus[row["_id"]] = Document(row.get("title", ""), row["text"])
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = {row["_id"]: row["text"] for row in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows)
        for qid, doc_id, rel in rows:
            qrels.setdefault(qid, {})[doc_id] = int(rel)
    return corpus, queries, qrels


def test_bm25_on_scifact_test_reaches_published_quality(scifact_dir):
    """Real-data check: the default BM25 lands near the published BEIR figure (0.665) on SciFact test."""
    corpus, queries, qrels = _read_scifact(scifact_dir)
    run = BM25Retriever(corpus).search({qid: queries[qid] for qid in qrels}, k=100)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(
        {qid: dict(hits) for qid, hits in run.items()}
    )
    ndcg10 = sum(m["ndcg_cut_10"] for m in per_query.values()) / len(qrels)
    assert ndcg10 > 0.6


def test_a_fused_lists_order_is_the_ranking_its_scores_evaluate_to():
    """Reciprocal rank fusion ties often; the served ranking weighs the list's order, the metrics its scores
    (pytrec_eval breaks ties by doc id, descending): both must see one ranking."""
    from rerankforge.eval.metrics import per_query

    fused = reciprocal_rank_fusion([{"q": [("a", 2.0), ("b", 1.0)]}, {"q": [("b", 2.0), ("a", 1.0)]}], k=60)
    assert [d for d, _ in fused["q"]] == ["b", "a"]  # tied
    for relevant in ("a", "b"):
        by_scores = per_query({"q": {relevant: 1}}, fused, ("nDCG@10",))["nDCG@10"]["q"]
        by_order = per_query({"q": {relevant: 1}}, {"q": [(d, -i) for i, (d, _) in enumerate(fused["q"])]},
                             ("nDCG@10",))["nDCG@10"]["q"]
        assert by_scores == by_order
