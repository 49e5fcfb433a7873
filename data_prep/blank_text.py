"""One policy for blank documents and queries, applied where a collection is loaded so every stage agrees.

Text extracted from PDF or HTML leaves documents with no text, or with nothing but whitespace, zero-width
characters and control codes. Such a document is no candidate a reranker could learn from or a user would want
back, and a later stage that refuses it (training refuses an empty positive) would fail after minutes of work.
So, at load time:

- a document whose text is blank but whose title is not is kept, with its title as its whole text;
- a document whose title and text are both blank is left out, and so are its judgments (a query whose only
  relevant documents were blank is no longer judged);
- a query whose text is blank is left out with its judgments.

Each of these is counted in one logged warning per file and kept in `Collection.notes` (the demo's report repeats
them), so a user sees what the data lost rather than finding out from a metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rerankforge.core.errors import preview
from rerankforge.core.text import is_blank
from .collection import Document, Qrels

def usable_document(title: str, text: str) -> Document | None:
    """The document as the collection keeps it: blank parts emptied, None when nothing is left."""
    title = "" if is_blank(title) else title
    text = "" if is_blank(text) else text
    if not title and not text:
        return None
    return Document(title=title, text=text)


@dataclass(frozen=True)
class Lost:
    """What dropping the judgments of left-out documents cost."""

    judgments: int = 0
    """Judgments of left-out documents."""
    query_judgments: int = 0
    """Judgments of left-out queries."""
    queries: tuple[str, ...] = ()
    """Queries that had a relevant document before and have none now."""


def drop_judgments(qrels: Qrels, docs: set[str], queries: set[str] = frozenset()) -> tuple[Qrels, Lost]:
    """`qrels` without the judgments of `docs` and of `queries`."""
    if not docs and not queries:
        return qrels, Lost()
    kept: Qrels = {}
    judgments, query_judgments, lost_queries = 0, 0, []
    for query_id, judged in qrels.items():
        if query_id in queries:
            query_judgments += len(judged)
            continue
        rest = {d: rel for d, rel in judged.items() if d not in docs}
        judgments += len(judged) - len(rest)
        if any(rel > 0 for rel in judged.values()) and not any(rel > 0 for rel in rest.values()):
            lost_queries.append(query_id)
        if rest:
            kept[query_id] = rest
    return kept, Lost(judgments=judgments, query_judgments=query_judgments, queries=tuple(lost_queries))


def blank_notes(corpus_path: Path, corpus: dict[str, Document], blank_docs: set[str],
                queries_path: Path | None = None, blank_queries: set[str] = frozenset(),
                lost: Lost = Lost()) -> list[str]:
    """One sentence per file for what the policy did; empty when it did nothing."""
    notes = []
    if blank_docs:
        note = (f"{corpus_path}: {len(blank_docs)} documents have neither title nor text and are left out: "
                f"{preview(sorted(blank_docs))}")
        if lost.judgments:
            note += f"; {lost.judgments} judgments of them dropped"
        if lost.queries:
            note += f", and {len(lost.queries)} queries lost every relevant document: {preview(list(lost.queries))}"
        notes.append(note)
    titled = [doc_id for doc_id, d in corpus.items() if not d.text]
    if titled:
        notes.append(f"{corpus_path}: {len(titled)} documents have no text and use their title: {preview(titled)}")
    if blank_queries:
        notes.append(f"{queries_path}: {len(blank_queries)} queries have a blank text and are left out: "
                     f"{preview(sorted(blank_queries))}" + (f"; {lost.query_judgments} judgments of them dropped"
                                                            if lost.query_judgments else ""))
    return notes
