"""The blank-text policy: documents without text use their title, documents and queries with nothing in them are
left out with their judgments, counted once; and what `mine` writes from such a collection, `train` reads."""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import pytest

from rerankforge.core.errors import DataError
from rerankforge.data_prep.beir import load_beir
from rerankforge.core.text import is_blank
from rerankforge.data_prep.blank_text import drop_judgments, usable_document
from rerankforge.data_prep.collection import Document
from rerankforge.data_prep.training_files import read_training_rows

BLANKS = ["", " ", "\n\t ", "\u200b\u200b", "\ufeff", " \u00a0\u2003", "\x00\x01"]


def jsonl(rows: list) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def beir(folder: Path, corpus: list, queries: list, qrels: dict[str, str]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(jsonl(corpus))
    (folder / "queries.jsonl").write_text(jsonl(queries))
    for split, rows in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.mark.parametrize("text", BLANKS)
def test_invisible_text_is_blank(text):
    assert is_blank(text)
    assert not is_blank(text + "a") and not is_blank("\u200bé")


def test_a_document_keeps_what_it_has():
    assert usable_document("Title", " \u200b") == Document(title="Title", text="")
    assert usable_document("Title", "").full_text == "Title"
    assert usable_document("\u200b", "text").full_text == "text"
    assert usable_document("  ", "\n") is None
    assert usable_document("T", "x").full_text == "T x"


def test_judgments_of_left_out_documents_are_dropped_and_counted():
    qrels = {"q1": {"a": 1, "b": 0}, "q2": {"a": 1, "c": 1}, "q3": {"b": 0}, "q4": {"c": 2}}
    kept, lost = drop_judgments(qrels, {"a", "b"}, {"q4"})
    assert kept == {"q2": {"c": 1}}
    assert lost.judgments == 4 and lost.query_judgments == 1 and lost.queries == ("q1",)  # q3 had no relevant document to lose


def test_blank_documents_and_queries_are_left_out_once_with_counts(tmp_path, caplog):
    corpus = [{"_id": "d1", "title": "One", "text": "first doc"}, {"_id": "d2", "title": "Two", "text": " \u200b"},
              {"_id": "e1", "title": "", "text": "\n"}, {"_id": "e2", "title": None, "text": ""},
              {"_id": "d3", "text": "third doc"}]
    queries = [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}, {"_id": "q3", "text": " \ufeff"}]
    folder = beir(tmp_path / "c", corpus, queries,
                  {"test": "q1\td1\t1\nq1\te1\t0\nq2\te2\t1\nq3\td3\t1\n"})
    with caplog.at_level(logging.WARNING):
        c = load_beir(folder, "test")
    assert sorted(c.corpus) == ["d1", "d2", "d3"] and c.corpus["d2"].full_text == "Two"
    assert sorted(c.queries) == ["q1", "q2"]
    assert c.qrels == {"q1": {"d1": 1}} and c.judged_query_ids() == ["q1"]
    assert len(c.notes) == 3 and [r.getMessage() for r in caplog.records] == c.notes
    documents, titled, blank_queries = c.notes
    assert "2 documents have neither title nor text and are left out: 'e1', 'e2'" in documents
    assert "2 judgments of them dropped, and 1 queries lost every relevant document: 'q2'" in documents
    assert str(folder / "corpus.jsonl") in documents
    assert "1 documents have no text and use their title: 'd2'" in titled
    assert "1 queries have a blank text and are left out: 'q3'; 1 judgments of them dropped" in blank_queries


def test_nothing_judged_left_says_why(tmp_path):
    folder = beir(tmp_path / "c", [{"_id": "d1", "text": "x"}, {"_id": "e1", "text": " "}],
                  [{"_id": "q1", "text": "query"}], {"test": "q1\te1\t1\n"})
    with pytest.raises(DataError) as error:
        load_beir(folder, "test")
    assert "no judged queries" in str(error.value) and "left out: 'e1'" in str(error.value)
    folder = beir(tmp_path / "d", [{"_id": "e1", "text": "\u200b"}], [{"_id": "q1", "text": "query"}],
                  {"test": "q1\te1\t1\n"})
    with pytest.raises(DataError, match="corpus is empty.*got 1 documents, every one without title and text"):
        load_beir(folder, "test")


def test_an_id_left_out_is_still_an_id(tmp_path):
    """A duplicate of a left-out id is still a duplicate, and an unknown id is still unknown."""
    folder = beir(tmp_path / "c", [{"_id": "e1", "text": ""}, {"_id": "e1", "text": "again"}, {"_id": "d", "text": "x"}],
                  [{"_id": "q1", "text": "query"}], {"test": "q1\td\t1\n"})
    with pytest.raises(DataError, match=r"corpus.jsonl:2: duplicate document _id 'e1'"):
        load_beir(folder, "test")
    folder = beir(tmp_path / "d", [{"_id": "d", "text": "x"}], [{"_id": "q1", "text": "query"}],
                  {"test": "q1\td\t1\nq1\tnope\t1\n"})
    with pytest.raises(DataError, match="1 doc ids not in corpus.jsonl: 'nope'"):
        load_beir(folder, "test")


def degenerate_collection(source: Path, folder: Path, seed: int) -> Path:
    """`source` (a BEIR folder) with a share of its documents made empty, whitespace-only, invisible, title-only,
    huge or duplicated, judged positives among them, and some judged queries blanked."""
    rng = random.Random(seed)
    shutil.copytree(source, folder)
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    judged = [line.split("\t")[1] for line in (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    targets = set(rng.sample(judged, 6)) | {d["_id"] for d in rng.sample(corpus, 30)}
    extra = []
    for doc in corpus:
        if doc["_id"] not in targets:
            continue
        kind = rng.choice(["empty", "blank", "title-only", "huge", "duplicate"])
        if kind == "empty":
            doc.update(title="", text="")
        elif kind == "blank":
            doc.update(title=rng.choice(BLANKS), text=rng.choice(BLANKS))
        elif kind == "title-only":
            doc.update(title=doc.get("title") or "A title", text=rng.choice(BLANKS))
        elif kind == "huge":
            doc["text"] = (doc["text"] + " ") * 200
        else:
            extra.append({"_id": f"{doc['_id']}-copy", "title": doc.get("title", ""), "text": doc["text"]})
    (folder / "corpus.jsonl").write_text(jsonl(corpus + extra))
    queries = [json.loads(line) for line in (folder / "queries.jsonl").open()]
    train_queries = {line.split("\t")[0] for line in (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]}
    for query in queries:
        if query["_id"] in train_queries and rng.random() < 0.1:
            query["text"] = rng.choice(BLANKS)
    (folder / "queries.jsonl").write_text(jsonl(queries))
    return folder


@pytest.mark.parametrize("seed", range(4))
def test_what_mine_writes_train_reads(tmp_path, scifact_slice, seed):
    """Property: whatever degenerate documents and queries a collection holds, `mine` succeeds and `train`'s
    reader accepts every row it wrote (the main job once stopped here: an empty positive mined, then refused)."""
    from rerankforge.data_prep.cli import mine_negatives_main

    folder = degenerate_collection(scifact_slice, tmp_path / "c", seed)
    output = tmp_path / "mined.jsonl"
    assert mine_negatives_main(["--data", str(folder), "--split", "train", "--retriever", "bm25", "--num-negatives",
                                "4", "--output", str(output), "--no_show_progress"]) == 0
    written = [json.loads(line) for line in output.open()]
    rows = read_training_rows(output)
    assert len(rows) == len(written) > 0
    texts = [t for r in written for t in [r["query"], r["positive"], *r["negatives"]]]
    assert not any(is_blank(t) for t in texts)
