"""`rerankforge index` as a user runs it: what it reads, and where it may write (never over a user's files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rerankforge.data_prep.errors import DataError
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
