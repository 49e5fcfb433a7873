"""Human labels ("extra qrels"): a TSV file of relevance judgments that `mine` and `train` take beside a collection.

The layout is BEIR's qrels with two trailing columns, so a BEIR loader reading the first three keeps working:

    query-id<TAB>corpus-id<TAB>score<TAB>time<TAB>annotator
    q12<TAB>d7<TAB>1<TAB>2026-12-07T15:04:05Z<TAB>ana

`score` is an integer >= 0 (0: judged not relevant; graded collections use 1..N), `time` ISO-8601 UTC, `annotator`
may be empty. Rows are only ever appended: the latest row of a (query-id, corpus-id) pair wins, so a corrected
label is one more row. A plain BEIR qrels file (three columns) is a labels file too.

`append_label` writes one row as the labelling page does: the whole file rewritten through a temporary file in
its folder and renamed over it (never half-written), one writer at a time across threads and processes.
`overlay_labels` lays the labels over a collection's split for mining."""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from rerankforge.core.errors import DataError, located, preview
from rerankforge.core.files import atomic_path
from .beir import qrels_rows, qrels_splits, read_qrels
from .collection import Collection, Qrels

LABELS_HEADER = ("query-id", "corpus-id", "score", "time", "annotator")
LABELS_COLUMNS = "<TAB>".join(LABELS_HEADER)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""How `append_label` writes `time` (ISO-8601 in UTC, e.g. 2026-12-07T15:04:05Z); any ISO-8601 time is read."""

_WRITING = threading.Lock()  # one appending thread at a time here; flock on the folder does it across processes
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass
class Label:
    """One row of a labels file."""

    query_id: str
    doc_id: str
    relevance: int
    time: str
    annotator: str = ""
    line: int | None = field(default=None, compare=False, repr=False)
    """Where the row is in its file (None: not read from one), for error messages."""


def read_labels(path: str | os.PathLike, missing_ok: bool = False) -> list[Label]:
    """Every row of a labels file (or of a plain BEIR qrels file), in file order; a missing file is an error
    unless `missing_ok` (then no labels). Errors name the file and line, what was expected and what was got."""
    path = Path(path).expanduser()
    if not path.exists() and missing_ok:
        return []
    if not path.is_file():
        raise DataError(f"{path}: no such labels file; expected a TSV file with columns {LABELS_COLUMNS} "
                        f"(or a BEIR qrels file: query-id<TAB>corpus-id<TAB>score)")
    return [_parse_row(cols, located(path, line_no), line, line_no) for line_no, line, cols in qrels_rows(path)]


def _parse_row(cols: list[str], where: str, line: str, line_no: int) -> Label:
    if not 3 <= len(cols) <= 5:
        raise DataError(f"{where}: expected 5 tab-separated columns {LABELS_COLUMNS} (or the first 3, as in a "
                        f"BEIR qrels file), got {len(cols)}: {line.strip()[:80]!r}")
    query_id, doc_id, score, time, annotator = (*cols, "", "")[:5]
    for name, value in (("query-id", query_id), ("corpus-id", doc_id)):
        if not value:
            raise DataError(f"{where}: expected a {name} in column {1 if name == 'query-id' else 2}, got a blank "
                            f"one: {line.strip()[:80]!r}")
    if not _INTEGER.fullmatch(score):
        raise DataError(f"{where}: score must be an integer >= 0 (0: not relevant, 1..N: relevant), got {score!r}")
    relevance = int(score)
    if relevance < 0:
        raise DataError(f"{where}: score must be an integer >= 0 (0: not relevant, 1..N: relevant), got {relevance} "
                        f"(negative)")
    if time:
        try:
            datetime.fromisoformat(time)
        except ValueError:
            raise DataError(f"{where}: time must be ISO-8601 in UTC (e.g. 2026-12-07T15:04:05Z) or empty, got "
                            f"{time!r}") from None
    return Label(query_id, doc_id, relevance, time, annotator, line=line_no)


def latest_labels(labels: list[Label]) -> Qrels:
    """Qrels of the labels, query id -> {doc id -> relevance}: of a pair labelled more than once, the latest row
    wins."""
    qrels: Qrels = {}
    for label in labels:
        qrels.setdefault(label.query_id, {})[label.doc_id] = label.relevance
    return qrels


def append_label(path: str | os.PathLike, query_id: str, doc_id: str, relevance: int, annotator: str = "",
                 now: datetime | None = None) -> Label:
    """Append one judgment to the labels file `path` (created with its header if absent; its folder must exist) and
    return it. The existing rows are kept byte for byte; the new file is written whole beside the old one, synced and
    renamed over it, so readers see the old file or the new one, never a half-written one. Appends are serialised
    across threads and processes (flock on the folder: no lock file, nothing is written but the labels file and its
    transient temporary). `now` (default: the current time; a naive datetime is taken as UTC) stamps the row."""
    path = Path(path).expanduser()
    _check_field(query_id, "query_id")
    _check_field(doc_id, "doc_id")
    if isinstance(relevance, bool) or not isinstance(relevance, int) or relevance < 0:
        raise DataError(f"relevance must be an integer >= 0 (0: not relevant, 1..N: relevant), got "
                        f"{type(relevance).__name__} {relevance!r}")
    if not isinstance(annotator, str) or any(c in annotator for c in "\t\r\n") or not (
            annotator.isprintable() and annotator == annotator.strip()):
        raise DataError(f"annotator must be one line of printable text without tabs or surrounding spaces (or empty), "
                        f"got {annotator!r}")
    if path.name.endswith(".gz"):
        raise DataError(f"{path}: labels are appended to a plain .tsv file, got a gzipped one; expected e.g. "
                        f"labels.tsv")
    if not path.parent.is_dir():
        raise DataError(f"{path}: the folder {path.parent} does not exist; expected the labels file's folder to "
                        f"exist (it is not created: the page writes nothing but its labels file)")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a labels file (TSV) there, or nothing yet")
    stamp = (now or datetime.now(timezone.utc))
    stamp = stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp.astimezone(timezone.utc)
    label = Label(query_id, doc_id, int(relevance), stamp.strftime(TIME_FORMAT), annotator)
    with _WRITING, _folder_locked(path.parent):
        existing = b""
        if path.exists():
            read_labels(path)  # a file that is not a labels file (or is broken) is not appended to
            existing = path.read_bytes()
        newline = b"\r\n" if existing.endswith(b"\r\n") else b"\n"
        if existing and not existing.endswith(b"\n"):
            existing += newline  # the last row's end of line, lost by an editor: the bytes before it stay
        header = b"" if existing.strip() else "\t".join(LABELS_HEADER).encode("utf-8") + newline
        row = "\t".join([label.query_id, label.doc_id, str(label.relevance), label.time, label.annotator])
        label.line = existing.count(b"\n") + (2 if header else 1)
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            out.write(existing + header + row.encode("utf-8") + newline)
            out.flush()
            os.fsync(out.fileno())
    return label


def _check_field(value, name: str) -> None:
    """An id must read back as written: one line of printable text (spaces are fine), not blank, no surrounding
    whitespace (readers strip the columns)."""
    if not isinstance(value, str):
        raise DataError(f"{name} must be a string, got {type(value).__name__} {value!r:.60}")
    bad = next((c for c in value if c in "\t\r\n"), None)
    if bad is not None:
        what = {"\t": "a tab", "\r": "a carriage return", "\n": "a line feed"}[bad]
        raise DataError(f"{name} must not contain tabs or line breaks (the labels file is tab-separated, one row a "
                        f"line), got {value!r} (holds {what})")
    if not value.strip():
        raise DataError(f"{name} must not be blank, got {value!r}")
    if value != value.strip() or not value.isprintable():
        raise DataError(f"{name} must be printable text without surrounding whitespace (it would not read back the "
                        f"same), got {value!r}")


@contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive flock on a folder, held on a descriptor of the folder itself (no lock file); the rename made in
    it is made durable (fsync of the folder) before the lock is let go."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
        os.fsync(fd)
    finally:
        os.close(fd)  # closing the last descriptor of it releases the lock


# ---------------------------------------------------------------- labels over a collection


@dataclass
class LabelsOverlay:
    """What `overlay_labels` made: the collection with the labels laid over its split, and what changed."""

    collection: Collection
    notes: list[str]
    """What the labels changed, one sentence each (also appended to `collection.notes`)."""
    warnings: list[str]
    """The notes worth a warning (labelled queries judged in another split: that split's figures are no longer
    held out)."""
    counts: dict
    """The same as numbers, for a summary file."""


def overlay_labels(collection: Collection, labels_path: str | os.PathLike) -> LabelsOverlay:
    """`collection` with the labels of `labels_path` laid over its split's qrels: the latest label of a pair wins over
    the qrels (a 0 takes a positive away), and every labelled query with a relevant label that the split lacks joins
    it, with its judgments from the collection's other qrels splits (a BEIR folder's: a test query keeps its test
    positives, never mined as negatives) and the labels over them. Labels naming a query or document the collection
    lacks are a DataError naming file:line."""
    path = Path(labels_path).expanduser()
    labels = read_labels(path)
    check_known_ids(labels, path, collection)
    latest = latest_labels(labels)
    others = _other_splits(collection)
    qrels = {qid: dict(docs) for qid, docs in collection.qrels.items()}
    joined: dict[str, list[str]] = {}  # query id -> the other splits that judge it
    ignored = added = removed = left = 0
    for qid, judged in latest.items():
        if qid in qrels:
            base = qrels[qid]
        elif any(rel > 0 for rel in judged.values()):
            joined[qid] = [split for split, split_qrels in others.items() if qid in split_qrels]
            base = qrels[qid] = {}
            for split in joined[qid]:
                for doc_id, rel in others[split][qid].items():
                    base.setdefault(doc_id, rel)
        else:
            ignored += 1  # only judged not relevant, and not of the split: nothing to mine from it
            continue
        was_judged = any(rel > 0 for rel in base.values())
        for doc_id, rel in judged.items():
            before = base.get(doc_id, 0)
            added += before <= 0 < rel
            removed += rel <= 0 < before
            base[doc_id] = rel
        left += was_judged and not any(rel > 0 for rel in base.values())
    given = {qid: [d for d in docs if latest.get(qid, {}).get(d, 0) <= 0]
             for qid, docs in collection.given_negatives.items()}
    counts = {"rows": len(labels), "judgments": sum(map(len, latest.values())), "queries": len(latest),
              "relevant_judgments": sum(rel > 0 for docs in latest.values() for rel in docs.values()),
              "positives_added": added, "positives_removed": removed, "queries_joined": len(joined),
              "queries_without_positives_left": left, "queries_only_judged_not_relevant_outside_split": ignored,
              "joined_from_splits": {split: sum(split in found for found in joined.values())
                                     for split in others if any(split in found for found in joined.values())}}
    notes, warnings = _notes(path, collection.split, counts, joined)
    overlaid = replace(collection, qrels=qrels, given_negatives={q: d for q, d in given.items() if d},
                       notes=[*collection.notes, *notes])
    return LabelsOverlay(overlaid, notes, warnings, counts)


def check_known_ids(labels: list[Label], path: str | os.PathLike, collection: Collection) -> None:
    """One DataError for every label naming a query or document `collection` lacks, naming the first such row."""
    unknown = [label for label in labels
               if label.query_id not in collection.queries or label.doc_id not in collection.corpus]
    if not unknown:
        return
    first = unknown[0]
    what = (f"query id {first.query_id!r} is not a query of {collection.name}"
            if first.query_id not in collection.queries else
            f"document id {first.doc_id!r} is not in the corpus of {collection.name}")
    queries = sorted({label.query_id for label in unknown if label.query_id not in collection.queries})
    docs = sorted({label.doc_id for label in unknown if label.doc_id not in collection.corpus})
    rest = "; ".join(part for part in (f"unknown query ids: {preview(queries)}" if queries else "",
                                       f"unknown document ids: {preview(docs)}" if docs else "") if part)
    raise DataError(f"{located(path, first.line)}: {what}; expected labels of the collection being mined "
                    f"({len(unknown)} of the {len(labels)} rows name ids it lacks -- {rest})")


def _other_splits(collection: Collection) -> dict[str, Qrels]:
    """The qrels of the collection's other splits (a BEIR folder's), by split name; none for other sources."""
    if collection.folder is None:
        return {}
    return {split: read_qrels(path) for split, path in qrels_splits(collection.folder).items()
            if split != collection.split}


def _notes(path: Path, split: str, counts: dict, joined: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    superseded = counts["rows"] - counts["judgments"]
    notes = [f"extra qrels {path}: {counts['judgments']} judgments on {counts['queries']} queries "
             f"({counts['relevant_judgments']} relevant" + (f"; {superseded} earlier rows superseded by later ones"
                                                            if superseded else "") + ") laid over split "
             f"{split!r}: {counts['positives_added']} positives added, {counts['positives_removed']} taken away"]
    if joined:
        notes.append(f"extra qrels: {len(joined)} labelled queries joined split {split!r} "
                     f"({preview(sorted(joined))})")
    if counts["queries_without_positives_left"]:
        notes.append(f"extra qrels: {counts['queries_without_positives_left']} queries of split {split!r} have no "
                     f"relevant document left and leave it")
    if counts["queries_only_judged_not_relevant_outside_split"]:
        notes.append(f"extra qrels: {counts['queries_only_judged_not_relevant_outside_split']} labelled queries "
                     f"outside split {split!r} have no relevant label and stay out of it")
    warnings = []
    for other, number in counts["joined_from_splits"].items():
        queries = sorted(q for q, found in joined.items() if other in found)
        warnings.append(f"extra qrels: {number} labelled queries that joined split {split!r} are judged in split "
                        f"{other!r} too ({preview(queries)}): their figures on that split are no longer held out")
    return notes + warnings, warnings
