"""Hard-negative mining: positives never become negatives, false-negative filters, sampling, outputs."""

from __future__ import annotations

import json

import datasets
import pytest

from rerankforge.core.errors import ConfigError
from rerankforge.data_prep.collection import Collection, Document
from rerankforge.data_prep.training_files.writing import rows, summary_path, write_rows
from rerankforge.data_prep.mining import MiningConfig, mine_negatives


class FixedRetriever:
    """A first stage with a fixed ranking: doc i scores 1 - i/100 for every query."""

    name = "fixed"

    def __init__(self, doc_ids):
        self.doc_ids = doc_ids

    def search(self, queries, k):
        return {q: [(d, 1 - i / 100) for i, d in enumerate(self.doc_ids[:k])] for q in queries}

    def score_pairs(self, queries, doc_ids):
        rank = {d: i for i, d in enumerate(self.doc_ids)}
        return {q: {d: 1 - rank[d] / 100 for d in docs} for q, docs in doc_ids.items()}


def _collection(n_docs=30):
    corpus = {f"d{i}": Document("", f"document {i}") for i in range(n_docs)}
    corpus["dup"] = Document("", "Document  5")  # same text as positive d5 up to case/space
    qrels = {"q1": {"d2": 1, "d5": 1, "d9": 0}, "q2": {"d0": 2}}
    return Collection("toy", corpus, {"q1": "first", "q2": "second", "q3": "unjudged"}, qrels, "train")


def _mine(collection=None, order=None, **config):
    collection = collection or _collection()
    order = order or ["d2", "dup", "d1", "d5", "d3", "d9", *[f"d{i}" for i in range(10, 30)], "d0", "d4"]
    return mine_negatives(collection, FixedRetriever(order), MiningConfig(**config))


def test_one_example_per_judged_pair_and_no_positive_is_a_negative():
    result = _mine(num_negatives=4, relative_margin=None)
    assert [(e.query_id, e.positive_id) for e in result.examples] == [("q1", "d2"), ("q1", "d5"), ("q2", "d0")]
    for example in result.examples:
        positives = {"q1": {"d2", "d5"}, "q2": {"d0"}}[example.query_id]
        assert not positives & set(example.negative_ids)
        if example.query_id == "q1":
            assert "dup" not in example.negative_ids  # same text as q1's positive d5
        assert len(example.negative_ids) == 4
    q1 = result.examples[0]
    assert q1.negative_ids == ["d1", "d3", "d9", "d10"]  # judged non-relevant (0) stays a valid negative
    assert q1.negatives == ["document 1", "document 3", "document 9", "document 10"]
    assert q1.positive_rank == 1 and result.examples[1].positive_rank == 4


def test_scores_are_first_stage_scores():
    example = _mine(num_negatives=2, relative_margin=None).examples[1]
    assert example.positive_score == pytest.approx(0.97)
    assert example.negative_scores == pytest.approx([0.98, 0.96])


def test_relative_margin_drops_candidates_too_close_to_the_positive():
    # positive d5 scores 0.97; with margin 0.02 anything above 0.97 - 0.0194 = 0.9506 is dropped.
    example = _mine(num_negatives=2, relative_margin=0.02).examples[1]
    assert example.negative_ids == ["d9", "d10"]  # d1 (0.98) and d3 (0.96) dropped
    assert all(s <= 0.9506 for s in example.negative_scores)


def test_absolute_margin_and_max_score():
    example = _mine(num_negatives=2, relative_margin=None, absolute_margin=0.0).examples[1]
    assert example.negative_ids == ["d3", "d9"]  # only candidates scoring at most the positive
    example = _mine(num_negatives=2, relative_margin=None, max_score=0.9).examples[0]
    assert all(s <= 0.9 for s in example.negative_scores)


def test_rank_range_and_random_sampling_is_seeded():
    top = _mine(num_negatives=3, min_rank=10, max_rank=20, relative_margin=None).examples[0]
    assert top.negative_ids == ["d13", "d14", "d15"]  # ranks 10-12
    a = _mine(num_negatives=3, min_rank=5, max_rank=25, sampling="random", seed=1).examples[0]
    b = _mine(num_negatives=3, min_rank=5, max_rank=25, sampling="random", seed=1).examples[0]
    c = _mine(num_negatives=3, min_rank=5, max_rank=25, sampling="random", seed=2).examples[0]
    assert a.negative_ids == b.negative_ids != c.negative_ids


def test_summary_counts_drops_and_recall():
    summary = _mine(num_negatives=4, relative_margin=0.02).summary
    assert summary["queries"] == 2 and summary["examples"] == 3
    assert summary["candidates_dropped"]["positive"] > 0
    assert summary["candidates_dropped"]["same_text_as_positive"] == 2  # 'dup' for both q1 examples
    assert summary["likely_false_negatives_dropped"] == summary["candidates_dropped"]["relative_margin"] > 0
    # positives at ranks 1 (d2), 4 (d5) and 28 (d0)
    assert summary["positive_recall"] == {"@10": pytest.approx(2 / 3, abs=1e-4), "@50": 1.0, "@100": 1.0}


@pytest.mark.parametrize("bad, message", [
    ({"num_negatives": 0}, "num_negatives must be >= 1"),
    ({"min_rank": 5, "max_rank": 3}, "need 1 <= min_rank <= max_rank"),
    ({"num_negatives": 10, "min_rank": 1, "max_rank": 5}, "cannot fit in ranks 1..5"),
    ({"relative_margin": -0.1}, "relative_margin must be >= 0"),
])
def test_bad_mining_settings(bad, message):
    with pytest.raises(ConfigError, match=message):
        MiningConfig(**bad)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("output_format, count", [("n-tuple", 3), ("triplet", 12), ("labeled-pair", 11)])
def test_output_formats_load_with_datasets(tmp_path, suffix, output_format, count):
    examples = _mine(num_negatives=4, relative_margin=None).examples
    path = tmp_path / f"mined{suffix}"
    assert write_rows(path, rows(examples, output_format)) == count
    loaded = datasets.load_dataset("parquet" if suffix == ".parquet" else "json", data_files=str(path),
                                   split="train")
    assert len(loaded) == count
    assert "query_id" in loaded.column_names and "query" in loaded.column_names
    if output_format == "labeled-pair":
        assert sorted(set(loaded["label"])) == [0, 1]
    assert not list(tmp_path.glob(".*.tmp"))


def test_summary_path():
    assert summary_path("out/mined.jsonl").name == "mined.summary.json"
    assert json.dumps({}) == "{}"
