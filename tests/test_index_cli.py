"""`rerankforge index` as a user runs it: what it reads, and where it may write (never over a user's files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rerankforge.core.errors import DataError
from rerankforge.serve.documents import load_documents


def test_undecodable_text_file_names_its_line(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_bytes(b"# Title\nline two\nab\xffc\n")
    with pytest.raises(DataError, match=re.escape(f"{notes / 'a.md'}:3: expected UTF-8 text") + ".*at byte 3 of"):
        load_documents(notes)


def test_lone_surrogate_in_documents_names_its_line(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "bad \\udc00 text"}\n')
    with pytest.raises(DataError, match=re.escape(f"{docs}:2: field 'text' holds a lone surrogate")):
        load_documents(docs)


@pytest.mark.parametrize("doc_id, expected", [
    ('"a b"', "must be one token without whitespace"), ('""', "must be one token"),
    ('"a\\nb"', "must be one token"), ('"a\\u0000b"', "printable characters only"),
    ('"a\\u200bb"', "printable characters only"), ("true", "must be a string or integer"),
    ("[1]", "must be a string or integer")])
def test_document_ids_are_checked_in_a_jsonl_file(tmp_path, doc_id, expected):
    docs = tmp_path / "docs.jsonl"
    docs.write_text(f'{{"_id": "fine", "text": "one"}}\n{{"_id": {doc_id}, "text": "two"}}\n')
    with pytest.raises(DataError, match=re.escape(f"{docs}:2: field '_id' ") + ".*" + re.escape(expected)):
        load_documents(docs)


def test_integer_ids_are_kept_as_their_digits(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": 7, "text": "seven"}\n')
    assert list(load_documents(docs)) == ["7"]


def test_a_folder_gives_one_token_ids_and_refuses_links_out_of_it(tmp_path):
    notes = tmp_path / "notes"
    (notes / "sub dir").mkdir(parents=True)
    (notes / "sub dir" / "annual report 100%.md").write_text("# Report\ntext")
    (notes / "inside.txt").write_text("inside")
    (notes / "alias.txt").symlink_to(notes / "inside.txt")  # a link within the folder is fine
    assert sorted(load_documents(notes)) == ["alias.txt", "inside.txt", "sub%20dir/annual%20report%20100%25.md"]
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the index")
    (notes / "leak.txt").symlink_to(outside)
    with pytest.raises(DataError, match=re.escape(f"leak.txt is a link to {outside.resolve()}, outside the folder")):
        load_documents(notes)


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(f'{{"_id": "d{i}", "text": "document {i} about topic {i % 3}"}}\n' for i in range(6)))
    return docs


def test_index_never_replaces_a_folder_of_other_files(tmp_path, tiny_bi_encoder, capsys):
    from rerankforge.cli.main import main as rerankforge

    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("three years of work\n")
    code = rerankforge(["index", "--docs", str(_docs(tmp_path)), "--out", str(thesis), "--model", tiny_bi_encoder])
    err = capsys.readouterr().err
    assert code == 2 and f"--out {thesis}: holds files that are not a rerankforge index ('thesis.txt')" in err
    assert [p.name for p in thesis.iterdir()] == ["thesis.txt"]
    assert (thesis / "thesis.txt").read_text() == "three years of work\n"


def test_index_goes_into_a_new_or_empty_folder_or_over_an_index(tmp_path, tiny_bi_encoder):
    from rerankforge.cli.main import main as rerankforge
    from rerankforge.serve.index import SearchIndex

    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (empty, empty, tmp_path / "new" / "index"):  # the second build replaces the first
        assert rerankforge(["index", "--docs", str(_docs(tmp_path)), "--out", str(out), "--model", tiny_bi_encoder,
                            "--chunk_tokens", "0"]) == 0
        assert len(SearchIndex.load(out).docs) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl", "empty", "new"]  # no temp folders left


@pytest.mark.parametrize("out,words", [
    (".", "cannot be the current folder or one above it"),
    ("..", "cannot be the current folder or one above it"),
    ("notes.txt", "is a file; expected a folder"),
    ("notes.txt/index", "notes.txt is a file, so it cannot hold index"),
])
def test_bad_index_out_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, out, words):
    from rerankforge.cli.main import main as rerankforge

    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(work)
    # --docs does not exist: --out is checked first, before any document is read
    assert rerankforge(["index", "--docs", "missing.jsonl", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}: ") and words in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"] and (work / "notes.txt").read_text() == "mine\n"
