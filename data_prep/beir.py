"""Load a collection in the BEIR folder layout, validating it as it streams.

A BEIR folder holds `corpus.jsonl` ({"_id", "title", "text"} per line), `queries.jsonl`
({"_id", "text"} per line) and `qrels/<split>.tsv` (`query-id<TAB>corpus-id<TAB>score`); each may
also be gzipped (`corpus.jsonl.gz`, ...). Corpora can hold millions of documents, so files are read
line by line, and every problem is reported as a `DataError` naming the file and line, what was
expected and what was found -- a bad line deep in a big file should cost one clear message, not a
stack trace from deep inside training.
"""

from __future__ import annotations

import gzip
import json
import re
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rerankforge.core.errors import DataError, located, preview
from rerankforge.core.text import is_blank
from .blank_text import blank_notes, drop_judgments, usable_document
from .collection import Collection, Document, Qrels
from .runs import is_token

logger = logging.getLogger(__name__)

QRELS_COLUMNS = "query-id<TAB>corpus-id<TAB>score"


def open_text(path: Path, newline: str | None = None) -> TextIO:
    """Open a UTF-8 text file for reading, transparently un-gzipping `*.gz`.

    `utf-8-sig` drops a leading byte-order mark (spreadsheet exports often write one), which would
    otherwise end up glued to the first id or column name."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return path.open(encoding="utf-8-sig", newline=newline)


def iter_lines(path: Path, newline: str | None = None) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line) of a text file (gzipped or not).

    Undecodable bytes and broken gzip streams become `DataError`s naming the line."""
    line_no = 0
    with open_text(path, newline=newline) as f:
        try:
            for line_no, line in enumerate(f, start=1):
                yield line_no, line
        except UnicodeDecodeError as e:
            bad_line, column = _first_undecodable_line(path)
            raise DataError(
                f"{located(path, bad_line or line_no + 1)}: expected UTF-8 text, got undecodable bytes "
                f"({e.reason}{f' at byte {column} of the line' if column else ''})"
            ) from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise DataError(
                f"{located(path, line_no + 1)}: expected a complete gzip file, got a broken or "
                f"truncated one ({e or type(e).__name__})"
            ) from None


def _first_undecodable_line(path: Path) -> tuple[int | None, int | None]:
    """(line number, 1-based byte in that line) of the first line that is not UTF-8.

    Text files decode in blocks of several KB, so the error surfaces lines before the bad byte's own
    line; the bytes are read again, line by line, to name the exact one (only when decoding failed)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    return line_no, e.start + 1
    except (gzip.BadGzipFile, EOFError, zlib.error):  # a stream broken after the bad byte: keep the first error
        pass
    return None, None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line of a JSON Lines file."""
    for line_no, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{located(path, line_no)}: expected one JSON object per line, got invalid JSON "
                f"({e.msg.removesuffix(' at')} at column {e.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{located(path, line_no)}: expected a JSON object {{...}}, got {type(obj).__name__} "
                f"{line.strip()[:60]!r}"
            )
        if _SURROGATE_ESCAPE.search(line):
            check_unicode(obj, located(path, line_no))
        yield line_no, obj


# A JSON escape in \ud800-\udfff: half of a surrogate pair (fine) or a lone surrogate, which is valid JSON
# but not text -- no tokenizer, UTF-8 encoder or file writer takes it. Only lines holding one are walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def check_unicode(value: Any, where: str, field: str = "") -> None:
    """Every string in `value` (keys and nested values too) must be encodable as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            name = f"field {field!r}" if field else "a field name"
            raise DataError(
                f"{where}: {name} holds a lone surrogate {value[e.start]!r} at character {e.start + 1}; expected "
                "text UTF-8 can encode (a JSON \\ud800-\\udfff escape must be one half of a pair)"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_unicode(key, where, field)
            check_unicode(item, where, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_unicode(item, where, f"{field}[{i}]")


def load_beir(folder: str | Path, split: str) -> Collection:
    """Load a BEIR-layout folder: the whole corpus, all queries, and `split`'s qrels.

    Every file is located before any is read, so a missing qrels split fails at once rather than
    after parsing a large corpus. `Collection.name` is the folder's name."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: expected a folder in BEIR layout (corpus.jsonl, queries.jsonl, qrels/)")
    corpus_path = _find_file(folder, "corpus.jsonl")
    queries_path = _find_file(folder, "queries.jsonl")
    qrels_path = _find_qrels(folder, split)

    corpus, blank = _read_corpus(corpus_path)
    queries, blank_queries = _read_queries(queries_path)
    qrels = read_qrels(qrels_path)
    _check_qrels_ids(qrels, qrels_path, queries, queries_path, corpus, corpus_path, blank, blank_queries)
    qrels, lost = drop_judgments(qrels, blank, blank_queries)
    notes = blank_notes(corpus_path, corpus, blank, queries_path, blank_queries, lost)
    if not any(rel > 0 for docs in qrels.values() for rel in docs.values()):
        raise DataError(
            f"{qrels_path}: split {split!r} has no judged queries; expected at least one row with "
            + (f"score > 0, got none left after blank texts were left out ({'; '.join(notes)})" if notes
               else "score > 0, got only scores <= 0")
        )
    for note in notes:
        logger.warning("%s", note)
    return Collection(name=folder.name, corpus=corpus, queries=queries, qrels=qrels, split=split, notes=notes,
                      folder=folder)


def load_corpus(folder: str | Path) -> dict[str, Document]:
    """Just the corpus of a BEIR folder (corpus.jsonl or .gz), checked as `load_beir` checks it."""
    path = _find_file(Path(folder), "corpus.jsonl")
    corpus, blank = _read_corpus(path)
    for note in blank_notes(path, corpus, blank):
        logger.warning("%s", note)
    return corpus


def _find_file(folder: Path, name: str) -> Path:
    """`folder/name`, else `folder/name.gz`."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}: expected {name} or {name}.gz in this folder (BEIR layout), found neither")


def _find_qrels(folder: Path, split: str) -> Path:
    """`qrels/<split>.tsv(.gz)`; when absent, the error lists the splits that do exist."""
    qrels_dir = folder / "qrels"
    for candidate in (qrels_dir / f"{split}.tsv", qrels_dir / f"{split}.tsv.gz"):
        if candidate.is_file():
            return candidate
    found = sorted(qrels_splits(folder))
    raise DataError(
        f"{folder}: no qrels for split {split!r}; expected qrels/{split}.tsv or qrels/{split}.tsv.gz, "
        f"splits found: {', '.join(found) if found else 'none (no qrels/*.tsv files)'}"
    )


def qrels_splits(folder: Path) -> dict[str, Path]:
    """Every qrels split of a BEIR folder: split name -> its `qrels/<split>.tsv` (or `.tsv.gz`), by name."""
    qrels_dir = Path(folder) / "qrels"
    if not qrels_dir.is_dir():
        return {}
    splits: dict[str, Path] = {}
    for path in sorted(qrels_dir.glob("*.tsv*")):
        if path.is_file() and path.name.endswith((".tsv", ".tsv.gz")):
            splits.setdefault(path.name.split(".")[0], path)  # x.tsv sorts before x.tsv.gz: the plain file wins
    return splits


def _read_corpus(path: Path) -> tuple[dict[str, Document], set[str]]:
    """The corpus under the blank-text policy (`data_prep.blank_text`), plus the ids it left out."""
    corpus: dict[str, Document] = {}
    blank: set[str] = set()
    for line_no, obj in read_jsonl(path):
        where = located(path, line_no)
        doc_id = _id_field(obj, where)
        title = obj.get("title")
        title = "" if title is None else _str_field(title, "title", where)
        text = _str_field(_required(obj, "text", where), "text", where)
        if doc_id in corpus or doc_id in blank:
            raise DataError(f"{where}: duplicate document _id {doc_id!r}; expected each _id once in the file")
        document = usable_document(title, text)
        if document is None:
            blank.add(doc_id)
        else:
            corpus[doc_id] = document
    if not corpus:
        got = f"{len(blank)} documents, every one without title and text" if blank else "no line"
        raise DataError(f"{path}: corpus is empty; expected one JSON object per line with '_id' and 'text', got {got}")
    return corpus, blank


def _read_queries(path: Path) -> tuple[dict[str, str], set[str]]:
    """The queries, less those whose text is blank (their ids come back apart: their judgments are dropped)."""
    queries: dict[str, str] = {}
    blank: set[str] = set()
    for line_no, obj in read_jsonl(path):
        where = located(path, line_no)
        query_id = _id_field(obj, where)
        if query_id in queries or query_id in blank:
            raise DataError(f"{where}: duplicate query _id {query_id!r}; expected each _id once in the file")
        text = _str_field(_required(obj, "text", where), "text", where)
        if is_blank(text):
            blank.add(query_id)
        else:
            queries[query_id] = text
    return queries, blank


def _required(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise DataError(
            f"{where}: missing field {key!r}; expected '_id' and 'text', got fields {sorted(obj)}"
        )
    return obj[key]


def _id_field(obj: dict[str, Any], where: str) -> str:
    """An `_id`; integer ids are accepted and converted, since many corpora write them unquoted."""
    value = _required(obj, "_id", where)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return check_id(_str_field(value, "_id", where, expected="a string or integer"), "_id", where)


def check_id(value: str, key: str, where: str) -> str:
    """An id must be one token: TREC run and qrels files, which `retrieve` writes and `eval` and trec_eval
    read, separate their fields by whitespace, so an id holding a space would shift every field after it.
    Rejected here, where the file and line are known, rather than encoded: an encoded id would no longer
    match the user's own qrels or runs."""
    if not is_token(value):
        raise DataError(
            f"{where}: field {key!r} must be one token without whitespace (TREC run files separate fields "
            f"by whitespace), got {value!r}"
        )
    if not value.isprintable():  # NUL, other controls, zero-width characters: invisible where the id is shown
        raise DataError(f"{where}: field {key!r} must hold printable characters only, got {value!r}")
    return value


def _str_field(value: Any, key: str, where: str, expected: str = "a string") -> str:
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {key!r} must be {expected}, got {type(value).__name__} {value!r:.60}"
        )
    return value


def qrels_rows(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, line, its tab-separated columns stripped) of each non-blank row of a qrels-layout file, the
    header (a first row starting `query-id`) skipped."""
    first = True
    for line_no, line in iter_lines(path):
        if not line.strip():
            continue
        cols = [c.strip() for c in line.rstrip("\r\n").split("\t")]
        if first:
            first = False
            if cols[0].lower() == "query-id":
                continue
        yield line_no, line, cols


def read_qrels(path: Path) -> Qrels:
    """Rows `query-id<TAB>corpus-id<TAB>score`, header optional; a pair may appear only once."""
    qrels: Qrels = {}
    for line_no, line, cols in qrels_rows(path):
        where = located(path, line_no)
        if len(cols) != 3:
            raise DataError(
                f"{where}: expected 3 tab-separated columns {QRELS_COLUMNS}, got {len(cols)}: "
                f"{line.strip()[:80]!r}"
            )
        query_id, doc_id, score = cols
        try:
            rel = int(score)
        except ValueError:
            raise DataError(f"{where}: score must be an integer, got {score!r}") from None
        docs = qrels.setdefault(query_id, {})
        if doc_id in docs:
            raise DataError(
                f"{where}: duplicate pair (query {query_id!r}, document {doc_id!r}); expected each pair once"
            )
        docs[doc_id] = rel
    return qrels


def _check_qrels_ids(
    qrels: Qrels,
    qrels_path: Path,
    queries: dict[str, str],
    queries_path: Path,
    corpus: dict[str, Document],
    corpus_path: Path,
    blank_docs: set[str] = frozenset(),
    blank_queries: set[str] = frozenset(),
) -> None:
    """One error for all dangling ids: a wrong file pairing shows up as hundreds of them at once. Ids the
    blank-text policy left out exist; their judgments are dropped, not errors."""
    unknown_queries = [qid for qid in qrels if qid not in queries and qid not in blank_queries]
    unknown_docs = list(dict.fromkeys(d for docs in qrels.values() for d in docs
                                      if d not in corpus and d not in blank_docs))
    problems = []
    if unknown_queries:
        problems.append(
            f"{len(unknown_queries)} query ids not in {queries_path.name}: {preview(unknown_queries)}"
        )
    if unknown_docs:
        problems.append(f"{len(unknown_docs)} doc ids not in {corpus_path.name}: {preview(unknown_docs)}")
    if problems:
        raise DataError(
            f"{qrels_path}: expected every qrels id to exist in the collection, got " + "; ".join(problems)
        )
