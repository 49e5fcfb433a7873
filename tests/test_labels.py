"""Human labels ("extra qrels"): the file format, atomic appends, and their use in `mine` and `train`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rerankforge.core.errors import ConfigError, DataError
from rerankforge.data_prep.beir import load_beir
from rerankforge.data_prep.labels import (LABELS_HEADER, Label, append_label, latest_labels, overlay_labels,
                                          read_labels)
from rerankforge.data_prep.training_files import read_training_rows

REPO = Path(__file__).resolve().parents[1]
WHEN = datetime(2026, 12, 7, 15, 4, 5, tzinfo=timezone.utc)
HEADER = "\t".join(LABELS_HEADER) + "\n"


# ---------------------------------------------------------------- the format

def test_appended_labels_read_back_and_the_latest_wins(tmp_path):
    path = tmp_path / "labels.tsv"
    first = append_label(path, "q1", "d1", 1, annotator="ana", now=WHEN)
    append_label(path, "q1", "d2", 2, now=WHEN)
    append_label(path, "q 2", "doc with spaces", 1, now=WHEN)  # spaces in ids are fine
    append_label(path, "q1", "d1", 0, annotator="bo", now=datetime(2026, 12, 7, 16, 0, 0))  # naive: taken as UTC
    assert first == Label("q1", "d1", 1, "2026-12-07T15:04:05Z", "ana") and first.line == 2
    assert path.read_text() == (HEADER + "q1\td1\t1\t2026-12-07T15:04:05Z\tana\n"
                                + "q1\td2\t2\t2026-12-07T15:04:05Z\t\n"
                                + "q 2\tdoc with spaces\t1\t2026-12-07T15:04:05Z\t\n"
                                + "q1\td1\t0\t2026-12-07T16:00:00Z\tbo\n")
    labels = read_labels(path)
    assert [(x.query_id, x.doc_id, x.relevance, x.line) for x in labels] == [
        ("q1", "d1", 1, 2), ("q1", "d2", 2, 3), ("q 2", "doc with spaces", 1, 4), ("q1", "d1", 0, 5)]
    assert latest_labels(labels) == {"q1": {"d1": 0, "d2": 2}, "q 2": {"doc with spaces": 1}}
    assert [p.name for p in tmp_path.iterdir()] == ["labels.tsv"]  # no lock file, no temporary left
    assert read_labels(tmp_path / "none.tsv", missing_ok=True) == []


def test_a_plain_beir_qrels_file_is_a_labels_file(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n")
    assert read_labels(path) == [Label("q1", "d1", 1, ""), Label("q1", "d2", 0, "")]
    append_label(path, "q1", "d2", 1, now=WHEN)
    assert path.read_text().startswith("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq1\td2\t1\t")
    assert latest_labels(read_labels(path)) == {"q1": {"d1": 1, "d2": 1}}


@pytest.mark.parametrize("row, expected", [
    ("q1\td1\tx\t\t", "labels.tsv:3: score must be an integer >= 0 (0: not relevant, 1..N: relevant), got 'x'"),
    ("q1\td1\t1.0\t\t", "labels.tsv:3: score must be an integer >= 0"),
    ("q1\td1\t-1\t\t", "labels.tsv:3: score must be an integer >= 0 (0: not relevant, 1..N: relevant), got -1"),
    ("q1\td1", "labels.tsv:3: expected 5 tab-separated columns query-id<TAB>corpus-id<TAB>score<TAB>time<TAB>"
               "annotator (or the first 3, as in a BEIR qrels file), got 2"),
    ("q1\td1\t1\tt\ta\textra", "labels.tsv:3: expected 5 tab-separated columns"),
    ("\td1\t1\t\t", "labels.tsv:3: expected a query-id in column 1, got a blank one"),
    ("q1\t \t1\t\t", "labels.tsv:3: expected a corpus-id in column 2, got a blank one"),
    ("q1\td1\t1\tyesterday\t", "labels.tsv:3: time must be ISO-8601 in UTC (e.g. 2026-12-07T15:04:05Z) or empty, "
                               "got 'yesterday'"),
])
def test_errors_name_the_line_what_was_expected_and_what_was_got(tmp_path, row, expected):
    path = tmp_path / "labels.tsv"
    path.write_text(HEADER + "q0\td0\t1\t2026-12-07T15:04:05Z\t\n" + row + "\n")
    with pytest.raises(DataError) as error:
        read_labels(path)
    assert expected in str(error.value)
    before = path.read_bytes()
    with pytest.raises(DataError):  # a broken file is not appended to
        append_label(path, "q1", "d1", 1)
    assert path.read_bytes() == before


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_bytes(HEADER.encode() + b"q1\td1\t1\t\t\nq\xff\td2\t1\t\t\n")
    with pytest.raises(DataError, match=r"labels.tsv:3: expected UTF-8 text"):
        read_labels(path)


@pytest.mark.parametrize("query_id, doc_id, relevance, annotator, expected", [
    ("q\t1", "d1", 1, "", "query_id must not contain tabs or line breaks"),
    ("q1", "d\n1", 1, "", "doc_id must not contain tabs or line breaks"),
    ("q1\r", "d1", 1, "", "holds a carriage return"),
    ("  ", "d1", 1, "", "query_id must not be blank"),
    ("q1", " d1", 1, "", "without surrounding whitespace"),
    ("q1", "d1", -1, "", "relevance must be an integer >= 0"),
    ("q1", "d1", 1.0, "", "relevance must be an integer >= 0 (0: not relevant, 1..N: relevant), got float 1.0"),
    ("q1", "d1", True, "", "got bool True"),
    ("q1", "d1", 1, "a\tb", "annotator must be one line of printable text without tabs or surrounding spaces"),
    ("q1", "d1", 1, "a\nb", "annotator must be one line"),
])
def test_append_refuses_what_would_not_read_back(tmp_path, query_id, doc_id, relevance, annotator, expected):
    path = tmp_path / "labels.tsv"
    append_label(path, "q0", "d0", 1, now=WHEN)
    before = path.read_bytes()
    with pytest.raises(DataError) as error:
        append_label(path, query_id, doc_id, relevance, annotator)
    assert expected in str(error.value)
    assert path.read_bytes() == before


def test_append_needs_an_existing_folder(tmp_path):
    with pytest.raises(DataError, match="the folder .*nowhere does not exist; expected the labels file's folder"):
        append_label(tmp_path / "nowhere" / "labels.tsv", "q1", "d1", 1)
    assert not (tmp_path / "nowhere").exists()


def test_append_keeps_the_existing_bytes(tmp_path):
    path = tmp_path / "labels.tsv"
    existing = (HEADER.replace("\n", "\r\n") + "q1\td1\t1\t2026-01-01T00:00:00Z\t  Zoë \r\n").encode()
    path.write_bytes(existing)
    append_label(path, "q1", "d2", 3, now=WHEN)
    assert path.read_bytes() == existing + b"q1\td2\t3\t2026-12-07T15:04:05Z\t\r\n"
    no_end = b"query-id\tcorpus-id\tscore\nq1\td1\t1"  # an editor dropped the last line's end
    path.write_bytes(no_end)
    label = append_label(path, "q1", "d2", 1, now=WHEN)
    assert path.read_bytes() == no_end + b"\nq1\td2\t1\t2026-12-07T15:04:05Z\t\n" and label.line == 3


def test_concurrent_appends_all_land(tmp_path):
    path = tmp_path / "labels.tsv"
    errors = []

    def append(worker: int) -> None:
        try:
            for i in range(15):
                append_label(path, f"q{worker}", f"d{i}", i % 3, annotator=f"w{worker}")
        except Exception as error:  # noqa: BLE001 -- reported below
            errors.append(error)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    script = ("import sys; from rerankforge.data_prep.labels import append_label\n"
              "for i in range(15): append_label(sys.argv[1], 'p' + sys.argv[2], f'd{i}', 1)\n")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(path), str(p)]) for p in range(3)]
    for thread in threads:
        thread.join()
    assert [process.wait(timeout=60) for process in processes] == [0, 0, 0]
    assert not errors
    labels = read_labels(path)
    assert len(labels) == 11 * 15 and path.read_text().count("query-id") == 1
    assert {(x.query_id, x.doc_id) for x in labels} == {(f"{p}{w}", f"d{i}") for p, n in (("q", 8), ("p", 3))
                                                         for w in range(n) for i in range(15)}
    assert [p.name for p in tmp_path.iterdir()] == ["labels.tsv"]


# ---------------------------------------------------------------- labels over a collection

def _qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    rows = [line.split("\t") for line in (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]]
    qrels: dict[str, dict[str, int]] = {}
    for qid, doc, score in rows:
        qrels.setdefault(qid, {})[doc] = int(score)
    return qrels


def test_unknown_ids_in_the_labels_name_the_line(tmp_path, scifact_slice):
    collection = load_beir(scifact_slice, "train")
    qid, docs = next(iter(_qrels(scifact_slice, "train").items()))
    path = tmp_path / "labels.tsv"
    path.write_text(HEADER + f"{qid}\t{next(iter(docs))}\t1\t\t\n{qid}\tno-such-doc\t1\t\t\n")
    with pytest.raises(DataError, match=r"labels.tsv:3: document id 'no-such-doc' is not in the corpus of "
                                        r"scifact-slice\d*; expected labels of the collection being mined"):
        overlay_labels(collection, path)


def test_mining_with_labels(tmp_path, scifact_slice, mined_slice, caplog):
    """One labels file: a mined negative labelled relevant, a positive labelled 0, and a test query labelled."""
    from rerankforge.data_prep.cli import mine_negatives_main

    rows = read_training_rows(mined_slice)
    flipped_row = next(r for r in rows if len(r["negative_ids"]) >= 2)
    query, flipped = flipped_row["query_id"], flipped_row["negative_ids"][0]
    train = _qrels(scifact_slice, "train")
    dropped_query = next(q for q, docs in train.items() if q != query and len(docs) >= 2)
    dropped = next(iter(train[dropped_query]))
    test = _qrels(scifact_slice, "test")
    test_query = next(iter(test))
    test_positives = set(test[test_query])
    extra = next(d for r in rows for d in r["negative_ids"] if d not in test_positives)
    labels = tmp_path / "labels.tsv"
    append_label(labels, query, flipped, 1, annotator="ana")
    append_label(labels, dropped_query, dropped, 0)
    append_label(labels, test_query, extra, 2)

    output = tmp_path / "mined.jsonl"
    assert mine_negatives_main(["--data", str(scifact_slice), "--split", "train", "--retriever", "bm25",
                                "--num-negatives", "4", "--output", str(output), "--no_show_progress",
                                "--extra_qrels", str(labels)]) == 0
    mined = read_training_rows(output)
    ours = [r for r in mined if r["query_id"] == query]
    assert all(flipped not in r["negative_ids"] for r in ours)
    assert flipped in {r["positive_id"] for r in ours}  # it became a positive of its query
    assert {r["positive_id"] for r in ours} == set(train[query]) | {flipped}
    assert dropped not in {r["positive_id"] for r in mined if r["query_id"] == dropped_query}
    joined = [r for r in mined if r["query_id"] == test_query]
    assert {r["positive_id"] for r in joined} == test_positives | {extra}  # its test positives kept as positives
    assert not test_positives & {d for r in joined for d in r["negative_ids"]}
    summary = json.loads((tmp_path / "mined.summary.json").read_text())["extra_qrels"]
    assert summary["path"] == str(labels) and summary["judgments"] == 3 and summary["queries"] == 3
    assert (summary["queries_joined"], summary["positives_added"], summary["positives_removed"]) == (1, 2, 1)
    assert summary["joined_from_splits"] == {"test": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("judged in split 'test'" in w and "no longer held out" in w for w in warnings)


# ---------------------------------------------------------------- labels in training

def _labels_for(tmp_path: Path, rows: list[dict]) -> tuple[Path, dict, dict]:
    """A labels file marking one row's first negative relevant and another row's positive not relevant."""
    negative_row = next(r for r in rows if len(r["negative_ids"]) >= 2)
    positive_row = next(r for r in rows if r["query_id"] != negative_row["query_id"])
    path = tmp_path / "labels.tsv"
    append_label(path, negative_row["query_id"], negative_row["negative_ids"][0], 1)
    append_label(path, positive_row["query_id"], positive_row["positive_id"], 0)
    return path, negative_row, positive_row


def test_training_rows_lose_labelled_negatives_and_positives(tmp_path, mined_slice, scifact_slice):
    from rerankforge.training.config import TrainConfig
    from rerankforge.training.groups import drop_labelled

    rows = read_training_rows(mined_slice)
    labels, negative_row, positive_row = _labels_for(tmp_path, rows)
    config = TrainConfig(train_file=str(mined_slice), data=str(scifact_slice), extra_qrels=str(labels))
    kept, summary = drop_labelled(rows, config)
    flipped = negative_row["negative_ids"][0]
    changed = [r for r in kept if r["query_id"] == negative_row["query_id"]]
    assert changed and all(flipped not in r["negative_ids"] for r in changed)
    one = next(r for r in changed if r["positive_id"] == negative_row["positive_id"])
    assert one["negatives"] == negative_row["negatives"][1:]
    assert one["negative_scores"] == negative_row["negative_scores"][1:]
    assert not any(r["query_id"] == positive_row["query_id"] and r["positive_id"] == positive_row["positive_id"]
                   for r in kept)
    assert len(kept) == len(rows) - 1
    assert summary["rows_dropped"] == 1 and summary["negatives_removed"] == len(changed)
    assert summary["matched_by"] == "ids"

    from rerankforge.training.dev.dev_eval import DevSet  # the dev evaluation's qrels get the labels too

    dev = DevSet.build(TrainConfig(train_file=str(mined_slice), data=str(scifact_slice), extra_qrels=str(labels),
                                   first_stage="bm25", dev_depth=10), [negative_row["query_id"]], show_progress=False)
    assert dev.qrels()[negative_row["query_id"]][flipped] == 1

    # a file without ids (sentence-transformers' n-tuple layout) is matched by text, the texts from `data`
    plain = tmp_path / "st.jsonl"
    plain.write_text("".join(json.dumps({"query": r["query"], "positive": r["positive"],
                                         **{f"negative_{i + 1}": n for i, n in enumerate(r["negatives"][:2])}}) + "\n"
                             for r in rows if len(r["negatives"]) >= 2))
    st_rows = read_training_rows(plain)
    st_kept, st_summary = drop_labelled(st_rows, TrainConfig(train_file=str(plain), data=str(scifact_slice),
                                                             extra_qrels=str(labels)))
    assert st_summary["matched_by"] == "text" and st_summary["negatives_removed"] >= 1
    assert not any(negative_row["negatives"][0] in r["negatives"] for r in st_kept
                   if r["query"] == negative_row["query"])


def test_a_missing_labels_file_is_a_config_error(mined_slice):
    from rerankforge.training.config import load_config

    with pytest.raises(ConfigError, match="extra_qrels: no such file: nowhere.tsv"):
        load_config(["--train_file", str(mined_slice), "--extra_qrels", "nowhere.tsv"])


def test_training_with_labels_records_what_they_changed(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                         tiny_bert, caplog):
    from rerankforge.training.cli import train_main

    rows = read_training_rows(mined_slice)
    labels, negative_row, positive_row = _labels_for(tmp_path, rows)
    dev = [q for q in dict.fromkeys(r["query_id"] for r in rows)
           if q not in (negative_row["query_id"], positive_row["query_id"])][:4]
    dev_row = next(r for r in rows if r["query_id"] == dev[0])
    append_label(labels, dev[0], dev_row["negative_ids"][0], 1)  # the dev evaluation's qrels get it
    out = tmp_path / "out"
    assert train_main(["--train_file", str(mined_slice), "--data", str(scifact_slice), "--extra_qrels", str(labels),
                       "--first_stage", "bm25", "--model", tiny_bert, "--output_dir", str(out), "--dev_queries", "4",
                       "--dev_query_ids", *dev, "--dev_depth", "10",
                       "--num_negatives", "3", "--max_length", "64", "--batch_size", "8", "--max_steps", "2",
                       "--min_train_queries", "0", "--small_data_queries", "0", "--save_steps", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    recorded = metrics["extra_qrels"]
    assert recorded["rows_dropped"] == 1 and recorded["negatives_removed"] >= 1 and recorded["judgments"] == 3
    assert metrics["dev_reranked"]["nDCG@10"] >= 0
    assert json.loads((out / "train_config.json").read_text())["extra_qrels"] == str(labels)
    lines = [r.getMessage() for r in caplog.records if "extra qrels" in r.getMessage()]
    assert len(lines) == 1 and "1 rows whose positive is labelled 0 dropped" in lines[0]
