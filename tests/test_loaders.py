"""Data loaders: BEIR folders, pairs files and Hugging Face datasets, the source dispatcher and the
dataset download. Fast: tiny hand-written files plus the real SciFact files (read, never copied)."""

from __future__ import annotations

import gzip
import io
import json
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from rerankforge.core.errors import DataError
from rerankforge.core.offline import OFFLINE_VARIABLES
from rerankforge.data_prep import sources
from rerankforge.data_prep.beir import load_beir
from rerankforge.data_prep.collection import Document
from rerankforge.data_prep.pairs import load_pairs_csv, load_pairs_hf, load_pairs_jsonl
from rerankforge.data_prep.sources import load_collection, resolve_dataset_dir

# --- helpers -------------------------------------------------------------------------------------

CORPUS = [
    {"_id": "d1", "title": "Title one", "text": "first doc"},
    {"_id": "d2", "text": "second doc"},
    {"_id": 3, "title": "", "text": "third doc"},
]
QUERIES = [{"_id": "q1", "text": "first query"}, {"_id": 2, "text": "second query"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n2\t3\t2\n"


def jsonl(rows: list) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def beir_folder(
    folder: Path, corpus: str | None = None, queries: str | None = None, qrels: str | None = None
) -> Path:
    """A small valid BEIR folder (splits test and train); any file's text can be replaced."""
    write(folder / "corpus.jsonl", jsonl(CORPUS) if corpus is None else corpus)
    write(folder / "queries.jsonl", jsonl(QUERIES) if queries is None else queries)
    write(folder / "qrels" / "test.tsv", QRELS if qrels is None else qrels)
    write(folder / "qrels" / "train.tsv", QRELS)
    return folder


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# --- BEIR: real SciFact --------------------------------------------------------------------------


@pytest.mark.parametrize(("split", "n_queries", "n_pairs"), [("train", 809, 919), ("test", 300, 339)])
def test_scifact_counts(scifact_dir: Path, split: str, n_queries: int, n_pairs: int) -> None:
    c = load_beir(scifact_dir, split)
    assert (c.name, c.split) == ("scifact", split)
    assert len(c.corpus) == 5183
    assert len(c.queries) == 1109  # every split's queries are kept
    assert len(c.judged_query_ids()) == n_queries
    assert sum(len(docs) for docs in c.qrels.values()) == n_pairs


def test_scifact_by_name_and_by_folder(monkeypatch, datasets_root: Path, scifact_dir: Path) -> None:
    monkeypatch.setenv("RERANKFORGE_DATA", str(datasets_root))
    assert resolve_dataset_dir("scifact") == datasets_root / "scifact"
    by_name = load_collection("scifact", split="test")
    by_folder = load_collection(str(scifact_dir), split="test")
    assert by_name.qrels == by_folder.qrels
    assert len(by_name.judged_query_ids()) == 300


def test_gzipped_slice_matches_plain(tmp_path: Path, scifact_dir: Path) -> None:
    """A slice of SciFact written plain and gzipped loads identically."""
    qrels_lines = (scifact_dir / "qrels" / "test.tsv").read_text().splitlines()[:21]  # header + 20
    doc_ids = {line.split("\t")[1] for line in qrels_lines[1:]}
    query_ids = {line.split("\t")[0] for line in qrels_lines[1:]}
    corpus = [row for row in (scifact_dir / "corpus.jsonl").open() if json.loads(row)["_id"] in doc_ids]
    queries = [row for row in (scifact_dir / "queries.jsonl").open() if json.loads(row)["_id"] in query_ids]
    for folder, ext in ((tmp_path / "plain", ""), (tmp_path / "gz", ".gz")):
        write(folder / f"corpus.jsonl{ext}", "".join(corpus))
        write(folder / f"queries.jsonl{ext}", "".join(queries))
        write(folder / "qrels" / f"test.tsv{ext}", "\n".join(qrels_lines) + "\n")
    plain, gz = load_beir(tmp_path / "plain", "test"), load_beir(tmp_path / "gz", "test")
    assert gz.corpus == plain.corpus and gz.queries == plain.queries and gz.qrels == plain.qrels
    assert len(gz.corpus) == len(doc_ids) and len(gz.qrels) == len(query_ids)


# --- BEIR: small files and validation ------------------------------------------------------------


def test_small_folder_fields(tmp_path: Path) -> None:
    c = load_beir(beir_folder(tmp_path / "mini"), "test")
    assert c.name == "mini"
    assert list(c.corpus) == ["d1", "d2", "3"]  # integer ids become strings
    assert c.corpus["d2"].title == "" and c.corpus["d1"].full_text == "Title one first doc"
    assert c.queries == {"q1": "first query", "2": "second query"}
    assert c.qrels == {"q1": {"d1": 1, "d2": 0}, "2": {"3": 2}}  # zero scores are kept (judged)
    assert c.judged_query_ids() == ["q1", "2"]


def test_qrels_header_is_optional(tmp_path: Path) -> None:
    headerless = QRELS.split("\n", 1)[1]
    assert (
        load_beir(beir_folder(tmp_path, qrels=headerless), "test").qrels
        == load_beir(beir_folder(tmp_path / "h"), "test").qrels
    )


@pytest.mark.parametrize(
    ("corpus_text", "expected"),
    [
        (jsonl(CORPUS[:1]) + "{not json\n", ["corpus.jsonl:2", "invalid JSON", "one JSON object per line"]),
        (jsonl(CORPUS[:1]) + "[1, 2]\n", ["corpus.jsonl:2", "expected a JSON object", "got list"]),
        (jsonl(CORPUS[:1]) + '{"text": "x"}\n', ["corpus.jsonl:2", "missing field '_id'", "['text']"]),
        (jsonl(CORPUS[:1]) + '{"_id": "x"}\n', ["corpus.jsonl:2", "missing field 'text'"]),
        (
            jsonl(CORPUS[:1]) + '{"_id": "x", "text": 5}\n',
            ["corpus.jsonl:2", "'text' must be a string", "got int 5"],
        ),
        ('{"_id": 1.5, "text": "x"}\n', ["corpus.jsonl:1", "'_id' must be a string or integer", "got float"]),
        (
            '{"_id": "x", "title": ["a"], "text": "x"}\n',
            ["corpus.jsonl:1", "'title' must be a string", "got list"],
        ),
        (
            jsonl(CORPUS) + '\n{"_id": "d2", "text": "again"}\n',
            ["corpus.jsonl:5", "duplicate document _id 'd2'"],
        ),
        ("", ["corpus.jsonl", "corpus is empty"]),
    ],
)
def test_corpus_errors(tmp_path: Path, corpus_text: str, expected: list[str]) -> None:
    message = error_of(load_beir, beir_folder(tmp_path, corpus=corpus_text), "test")
    for part in expected:
        assert part in message


def test_query_errors(tmp_path: Path) -> None:
    duplicated = jsonl(QUERIES + [{"_id": "q1", "text": "again"}])
    message = error_of(load_beir, beir_folder(tmp_path, queries=duplicated), "test")
    assert "queries.jsonl:3" in message and "duplicate query _id 'q1'" in message
    message = error_of(load_beir, beir_folder(tmp_path, queries='{"_id": "q1"}\n'), "test")
    assert "queries.jsonl:1" in message and "missing field 'text'" in message


def test_undecodable_and_broken_gzip(tmp_path: Path) -> None:
    folder = beir_folder(tmp_path)
    (folder / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "\xff\xfe"}\n')
    message = error_of(load_beir, folder, "test")
    assert "queries.jsonl" in message and "expected UTF-8" in message
    (folder / "queries.jsonl").unlink()
    (folder / "queries.jsonl.gz").write_bytes(gzip.compress(jsonl(QUERIES).encode())[:-12])
    assert "expected a complete gzip file" in error_of(load_beir, folder, "test")


@pytest.mark.parametrize("name", ["corpus.jsonl", "corpus.jsonl.gz"])
def test_undecodable_byte_names_its_own_line(tmp_path: Path, name: str) -> None:
    """Deep in a file, past the first decoded block: the line of the bad byte, not one a block earlier."""
    rows = [json.dumps({"_id": f"d{i}", "text": f"document number {i} " * 5}).encode() for i in range(600)]
    rows[500] = rows[500].replace(b"number", b"n\xffmber")
    folder = beir_folder(tmp_path, corpus="")
    (folder / "corpus.jsonl").unlink()
    payload = b"\n".join(rows) + b"\n"
    (folder / name).write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
    message = error_of(load_beir, folder, "test")
    column = rows[500].index(b"\xff") + 1
    assert f"{name}:501: expected UTF-8 text" in message and f"at byte {column} of the line" in message


@pytest.mark.parametrize("bad_id", ["doc 1", "doc\t1", " d1", "d1\u00a0", ""])
@pytest.mark.parametrize("file", ["corpus", "queries"])
def test_ids_must_be_one_token(tmp_path: Path, file: str, bad_id: str) -> None:
    """TREC runs separate fields by whitespace: an id with a space would make `retrieve` write a run
    that `eval` (and trec_eval) cannot read, so it is stopped at load, with its line."""
    rows = [dict(row) for row in (CORPUS if file == "corpus" else QUERIES)]
    rows[1]["_id"] = bad_id
    message = error_of(load_beir, beir_folder(tmp_path, **{file: jsonl(rows)}), "test")
    assert f"{file}.jsonl:2: field '_id' must be one token without whitespace" in message and repr(bad_id) in message


def test_pairs_given_ids_must_be_one_token(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.jsonl", '{"query": "q", "positive": "p", "query_id": "query one"}\n')
    assert "pairs.jsonl:1: field 'query_id' must be one token" in error_of(load_pairs_jsonl, path)
    path = write(tmp_path / "pairs.jsonl", '{"query": "q", "positives": ["p", "r"], "positive_ids": ["a", "b c"]}\n')
    assert "pairs.jsonl:1: field 'positive_id' must be one token" in error_of(load_pairs_jsonl, path)


LONE_SURROGATE = "\\ud800"  # as JSON writes it: valid JSON, but not text any encoder or tokenizer takes


@pytest.mark.parametrize("file", ["corpus", "queries"])
def test_lone_surrogate_is_a_clear_error(tmp_path: Path, file: str) -> None:
    rows = [dict(row) for row in (CORPUS if file == "corpus" else QUERIES)]
    lines = jsonl(rows).splitlines()
    lines[1] = lines[1].replace('"text": "', f'"text": "ok {LONE_SURROGATE}', 1)
    message = error_of(load_beir, beir_folder(tmp_path, **{file: "\n".join(lines) + "\n"}), "test")
    assert f"{file}.jsonl:2: field 'text' holds a lone surrogate '\\ud800' at character 4" in message


def test_surrogate_pairs_are_text(tmp_path: Path) -> None:
    emoji = jsonl([{"_id": "d1", "text": "\U0001F600 smile"}, *CORPUS[1:]])  # json.dumps writes \ud83d\ude00
    assert "\\ud83d\\ude00" in emoji
    assert load_beir(beir_folder(tmp_path, corpus=emoji), "test").corpus["d1"].text == "\U0001F600 smile"


def test_lone_surrogate_in_pairs_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.jsonl", '{"query": "q", "positive": "p"}\n'
                 f'{{"query": "q2", "positive": "p2", "negatives": ["n1", "{LONE_SURROGATE}"]}}\n')
    assert "pairs.jsonl:2: field 'negatives[1]' holds a lone surrogate" in error_of(load_pairs_jsonl, path)


@pytest.mark.parametrize(
    ("qrels_text", "expected"),
    [
        (
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1 d2 1\n",
            ["test.tsv:3", "expected 3 tab-separated", "got 1"],
        ),
        ("q1\td1\t1\tx\n", ["test.tsv:1", "expected 3 tab-separated columns", "got 4"]),
        (
            "query-id\tcorpus-id\tscore\nq1\td1\tyes\n",
            ["test.tsv:2", "score must be an integer", "got 'yes'"],
        ),
        ("q1\td1\t1\n2\t3\t1\nq1\td1\t0\n", ["test.tsv:3", "duplicate pair", "'q1'", "'d1'"]),
        ("q1\td1\t0\n2\t3\t0\n", ["test.tsv", "split 'test' has no judged queries", "score > 0"]),
    ],
)
def test_qrels_errors(tmp_path: Path, qrels_text: str, expected: list[str]) -> None:
    message = error_of(load_beir, beir_folder(tmp_path, qrels=qrels_text), "test")
    for part in expected:
        assert part in message


def test_unknown_qrels_ids_are_one_error(tmp_path: Path) -> None:
    rows = ["qx\td1\t1", "qy\td1\t1"] + [f"q1\tmissing{i}\t1" for i in range(7)] + ["q1\td1\t1"]
    message = error_of(load_beir, beir_folder(tmp_path, qrels="\n".join(rows) + "\n"), "test")
    assert "test.tsv" in message
    assert "2 query ids not in queries.jsonl: 'qx', 'qy'" in message
    assert "7 doc ids not in corpus.jsonl: 'missing0'" in message and "(2 more)" in message


def test_missing_files(tmp_path: Path) -> None:
    folder = beir_folder(tmp_path / "mini")
    message = error_of(load_beir, folder, "dev")
    assert "no qrels for split 'dev'" in message and "qrels/dev.tsv" in message
    assert "splits found: test, train" in message
    (folder / "queries.jsonl").unlink()
    message = error_of(load_beir, folder, "test")
    assert str(folder) in message and "queries.jsonl or queries.jsonl.gz" in message
    (folder / "corpus.jsonl").unlink()
    assert "corpus.jsonl or corpus.jsonl.gz" in error_of(load_beir, folder, "test")
    assert "expected a folder in BEIR layout" in error_of(load_beir, tmp_path / "nowhere", "test")


def test_blank_documents_are_left_out_with_one_warning(tmp_path: Path, caplog) -> None:
    blank = [{"_id": "b1", "title": "", "text": " "}, {"_id": "b2", "title": None, "text": ""}]
    folder = beir_folder(tmp_path, corpus=jsonl(CORPUS + blank))
    with caplog.at_level("WARNING"):
        c = load_beir(folder, "test")
    assert [r.getMessage() for r in caplog.records] == c.notes and len(c.notes) == 1
    assert "2 documents have neither title nor text and are left out: 'b1', 'b2'" in c.notes[0]
    assert "b1" not in c.corpus and "b2" not in c.corpus and c.corpus["d2"] == Document(title="", text="second doc")


# --- pairs: JSONL ----------------------------------------------------------------------------------

PAIRS = [
    {"query": "what is a cat", "positive": "cats are felines"},
    {
        "query": "what is a dog",
        "positives": ["dogs are canines", "cats are felines"],
        "negatives": ["fish swim"],
    },
    {"query": "what is a cat", "positive": "a cat meows", "negatives": ["fish swim", "cats are felines"]},
]


def check_pairs_collection(c) -> None:
    """The collection PAIRS describes: grouped queries, shared ids for identical texts."""
    assert c.queries == {"q0": "what is a cat", "q1": "what is a dog"}
    texts = {doc_id: doc.text for doc_id, doc in c.corpus.items()}
    assert texts == {
        "d0": "cats are felines",
        "d1": "dogs are canines",
        "d2": "fish swim",
        "d3": "a cat meows",
    }
    assert c.qrels == {"q0": {"d0": 1, "d3": 1}, "q1": {"d1": 1, "d0": 1}}
    # "cats are felines" is a positive of q0, so it is dropped from q0's negatives.
    assert c.given_negatives == {"q1": ["d2"], "q0": ["d2"]}


@pytest.mark.parametrize("file_name", ["pairs.jsonl", "pairs.jsonl.gz", "pairs.json"])
def test_pairs_jsonl(tmp_path: Path, file_name: str) -> None:
    path = write(tmp_path / file_name, jsonl(PAIRS))
    c = load_pairs_jsonl(path)
    assert (c.name, c.split) == ("pairs", "train")
    check_pairs_collection(c)
    check_pairs_collection(load_collection(path, split="train"))


def test_pairs_jsonl_given_ids(tmp_path: Path) -> None:
    rows = [
        {"query": "a", "query_id": 7, "positive": "p", "positive_id": "d1", "negative": "n"},
        {"query": "b", "positives": ["p2", "n"], "positive_ids": ["x", "y"]},
    ]
    c = load_pairs_jsonl(write(tmp_path / "p.jsonl", jsonl(rows)))
    assert c.queries == {"7": "a", "q0": "b"}
    # "n" was first seen without an id, later given "y"; generated ids skip the given "d1".
    assert {doc_id: doc.text for doc_id, doc in c.corpus.items()} == {"d1": "p", "y": "n", "x": "p2"}
    assert c.qrels == {"7": {"d1": 1}, "q0": {"x": 1, "y": 1}}
    assert c.given_negatives == {"7": ["y"]}
    rows = [
        {"query": "a", "positive": "p", "positive_id": "d1"},
        {"query": "b", "positive": "other", "positive_id": "d1"},
    ]
    message = error_of(load_pairs_jsonl, write(tmp_path / "clash.jsonl", jsonl(rows)))
    assert "clash.jsonl:2" in message and "positive_id 'd1' names two different texts" in message


def test_pairs_generated_ids_skip_given_ones(tmp_path: Path) -> None:
    rows = [{"query": "a", "positive": "first"}, {"query": "b", "positive": "second", "positive_id": "d0"}]
    c = load_pairs_jsonl(write(tmp_path / "p.jsonl", jsonl(rows)))
    assert {doc_id: d.text for doc_id, d in c.corpus.items()} == {"d1": "first", "d0": "second"}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ('{"query": "a", "positive": "p"}\n{"query": \n', ["p.jsonl:2", "invalid JSON"]),
        ('{"positive": "p"}\n', ["p.jsonl:1", "missing field 'query'", "['positive']"]),
        ('{"query": "a"}\n', ["p.jsonl:1", "missing positive passage", "'positive' (string) or 'positives'"]),
        (
            '{"query": "a", "positives": "p"}\n',
            ["p.jsonl:1", "'positives' must be a list of strings", "got str"],
        ),
        (
            '{"query": "a", "positives": ["p", 3]}\n',
            ["p.jsonl:1", "'positives[1]' must be a string", "got int"],
        ),
        ('{"query": "a", "positives": []}\n', ["p.jsonl:1", "at least one passage"]),
        ('{"query": "a", "positive": "p", "positives": ["q"]}\n', ["p.jsonl:1", "got both"]),
        ('{"query": 5, "positive": "p"}\n', ["p.jsonl:1", "'query' must be a string", "got int"]),
        ('{"query": " ", "positive": "p"}\n', ["p.jsonl:1", "'query' must be a non-empty text"]),
        ('{"query": "a", "positive": "p", "negatives": "n"}\n', ["p.jsonl:1", "'negatives' must be a list"]),
        (
            '{"query": "a", "positives": ["p", "q"], "positive_ids": ["x"]}\n',
            ["expected 2 positive id(s)", "got 1"],
        ),
        ("\n\n", ["p.jsonl", "no pairs found"]),
    ],
)
def test_pairs_jsonl_errors(tmp_path: Path, lines: str, expected: list[str]) -> None:
    message = error_of(load_pairs_jsonl, write(tmp_path / "p.jsonl", lines))
    for part in expected:
        assert part in message


# --- pairs: CSV ----------------------------------------------------------------------------------


def test_pairs_csv(tmp_path: Path) -> None:
    text = (
        "query,positive,negatives,notes\n"
        "what is a cat,cats are felines,,x\n"
        'what is a dog,dogs are canines,"fish swim || cats are felines",\n'
        "what is a dog,cats are felines,,\n"
        '"what is a cat","a cat meows","fish swim || cats are felines",\n'
    )
    c = load_pairs_csv(write(tmp_path / "pairs.csv", text))
    check_pairs_collection(c)
    assert load_collection(tmp_path / "pairs.csv", split="train").qrels == c.qrels


def test_pairs_csv_single_negative_column(tmp_path: Path) -> None:
    c = load_pairs_csv(write(tmp_path / "p.csv", "query,positive,negative\na,p,one || two\n"))
    assert c.given_negatives == {"q0": ["d1"]} and c.corpus["d1"].text == "one || two"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "question,answer\na,b\n",
            ["p.csv:1", "lacks column(s) query, positive", "found header ['question', 'answer']"],
        ),
        ("query,negative\na,b\n", ["lacks column(s) positive"]),
        ("query,positive\na,b\nc\n", ["p.csv:3 (row 2)", "expected 2 cells", "got 1"]),
        ("query,positive\na,b\n,c\n", ["p.csv:3 (row 2)", "'query' must be a non-empty text"]),
        ("query,positive\n", ["p.csv", "no pairs found"]),
        ("", ["p.csv:1", "found header []"]),
    ],
)
def test_pairs_csv_errors(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = error_of(load_pairs_csv, write(tmp_path / "p.csv", text))
    for part in expected:
        assert part in message


# --- pairs: Hugging Face -------------------------------------------------------------------------


def test_pairs_hf_dataset() -> None:
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_dict(
        {
            "anchor": ["what is a cat", "what is a dog", "what is a cat"],
            "pos": [["cats are felines"], ["dogs are canines", "cats are felines"], ["a cat meows"]],
            "neg": [None, ["fish swim"], ["fish swim", "cats are felines"]],
            "other": [1, 2, 3],
        }
    )
    check_pairs_collection(load_pairs_hf(ds))
    check_pairs_collection(load_collection(ds, split="train"))
    check_pairs_collection(load_collection(DatasetDict({"train": ds}), split="train"))
    assert "no split 'test'; splits found: train" in error_of(
        load_pairs_hf, DatasetDict({"train": ds}), "test"
    )

    qa = Dataset.from_dict({"question": ["q a", "q a"], "answer": ["x", "x"]})
    c = load_pairs_hf(qa, split="dev")
    assert c.split == "dev" and c.qrels == {"q0": {"d0": 1}} and c.given_negatives == {}


def test_pairs_hf_errors() -> None:
    from datasets import Dataset

    message = error_of(load_pairs_hf, Dataset.from_dict({"text": ["a"], "label": [1]}))
    assert (
        "no query column; expected one of query, anchor, question, found columns ['text', 'label']" in message
    )
    message = error_of(load_pairs_hf, Dataset.from_dict({"query": ["a"], "neg": ["b"]}))
    assert "no positive column; expected one of positive, positives, answer, document, pos" in message
    message = error_of(load_pairs_hf, Dataset.from_dict({"query": ["a", "b"], "positive": ["p", ""]}))
    assert "row 1" in message and "'positive' must be a non-empty text" in message
    assert "expected a datasets.Dataset" in error_of(load_pairs_hf, [1, 2])


def test_hf_name_goes_to_load_dataset(monkeypatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return datasets.Dataset.from_dict({"query": ["a"], "positive": ["p"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    c = load_collection("hf:org/pairs:cfg", split="train")
    assert calls == [("org/pairs", "cfg", "train")] and c.name == "pairs"
    load_collection("hf:org/pairs")
    assert calls[-1] == ("org/pairs", None, "test")

    def failing(name, config=None, split=None):
        raise datasets.exceptions.DatasetNotFoundError(f"Dataset '{name}' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", failing)
    message = error_of(load_collection, "hf:org/missing", split="train")
    assert "could not load Hugging Face dataset org/missing, split 'train'" in message
    assert "doesn't exist" in message


# --- sources: dispatch and download ----------------------------------------------------------------


def test_dispatch_errors(tmp_path: Path) -> None:
    other = write(tmp_path / "notes.txt", "hello")
    message = error_of(load_collection, str(other))
    assert (
        "unsupported file type" in message
        and ".jsonl" in message
        and ".csv" in message
        and "hf:NAME" in message
    )
    assert "no such file or folder: ./nope" in error_of(load_collection, "./nope")
    assert f"no such file or folder: {tmp_path / 'x'}" in error_of(load_collection, str(tmp_path / "x"))
    assert "no such file or folder: missing.jsonl" in error_of(load_collection, "missing.jsonl")
    assert "invalid dataset name 'bad name!'" in error_of(load_collection, "bad name!")
    assert "expected hf:NAME" in error_of(load_collection, "hf:")


def beir_zip(name: str, top: str | None = None) -> bytes:
    """A BEIR-style zip: a top folder holding the small test collection."""
    top = name if top is None else top
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"{top}/corpus.jsonl", jsonl(CORPUS))
        zf.writestr(f"{top}/queries.jsonl", jsonl(QUERIES))
        zf.writestr(f"{top}/qrels/test.tsv", QRELS)
    return buffer.getvalue()


class FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    """A private cache and no $RERANKFORGE_DATA, so names must come from the (fake) download; online."""
    monkeypatch.setenv("RERANKFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RERANKFORGE_DATA", raising=False)
    for variable in OFFLINE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "cache"


def test_download_lands_in_cache_once(cache: Path, monkeypatch) -> None:
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return FakeResponse(beir_zip("tinyset"))

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    c = load_collection("tinyset")
    assert urls == [sources.BEIR_URL.format(name="tinyset")]
    assert (c.name, len(c.corpus), c.judged_query_ids()) == ("tinyset", 3, ["q1", "2"])
    assert sorted(p.name for p in (cache / "datasets").iterdir()) == ["tinyset"]  # no temp leftovers
    assert load_collection("tinyset").qrels == c.qrels
    assert len(urls) == 1  # the second load used the cache


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (urllib.error.URLError("Name or service not known"), "failed: Name or service not known"),
        (urllib.error.HTTPError("u", 404, "Not Found", {}, None), "failed: HTTP 404 Not Found"),
    ],
)
def test_download_failure_explains_and_leaves_nothing(cache: Path, monkeypatch, error, reason) -> None:
    def failing_urlopen(url, timeout=None):
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", failing_urlopen)
    message = error_of(load_collection, "nosuchset")
    assert "dataset 'nosuchset' not found" in message
    assert "$RERANKFORGE_DATA (unset)" in message
    assert str(cache / "datasets") in message
    assert sources.BEIR_URL.format(name="nosuchset") in message and reason in message
    assert "--data PATH" in message and "set RERANKFORGE_DATA" in message
    assert list((cache / "datasets").iterdir()) == []


def test_download_failure_names_data_root(cache: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RERANKFORGE_DATA", str(tmp_path / "data"))

    def failing_urlopen(url, timeout=None):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", failing_urlopen)
    assert f"$RERANKFORGE_DATA ({tmp_path / 'data'})" in error_of(resolve_dataset_dir, "nosuchset")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"<html>not a zip</html>", "not a valid zip archive"),
        (beir_zip("x", top="other"), "lacks x/corpus.jsonl"),
    ],
)
def test_bad_archive_leaves_nothing(cache: Path, monkeypatch, payload: bytes, expected: str) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: FakeResponse(payload))
    assert expected in error_of(resolve_dataset_dir, "x")
    assert list((cache / "datasets").iterdir()) == []


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_mode_never_downloads(cache: Path, monkeypatch, variable: str) -> None:
    def no_network(url, timeout=None):
        raise AssertionError(f"offline mode, yet {url} was fetched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv(variable, "1")
    message = error_of(load_collection, "nosuchset")
    assert f"offline mode is on ({variable}=1)" in message
    assert "$RERANKFORGE_DATA (unset)" in message and str(cache / "datasets") in message
    assert not (cache / "datasets").exists()
