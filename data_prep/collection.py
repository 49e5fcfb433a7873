"""The in-memory form of a retrieval collection: corpus, queries and one split's relevance labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Document:
    """One corpus entry. `title` may be empty, and so may `text` when the title is not (`data_prep.blank_text`)."""

    title: str
    text: str

    @property
    def full_text(self) -> str:
        """What retrievers and rerankers see: title and text joined by a space (the BEIR convention)."""
        return f"{self.title} {self.text}" if self.title and self.text else self.title or self.text


Qrels = dict[str, dict[str, int]]
"""query id -> {doc id -> graded relevance}; relevance > 0 means relevant, 0 judged non-relevant."""


@dataclass
class Collection:
    """A corpus, its queries and the relevance labels of one split.

    `queries` may hold queries of every split; `qrels` holds only `split`'s labels, so the
    judged queries of the split are `qrels`' keys (in file order)."""

    name: str
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Qrels
    split: str
    given_negatives: dict[str, list[str]] = field(default_factory=dict)
    """query id -> doc ids that the data itself labels as negatives (pairs files with `negatives`)."""
    notes: list[str] = field(default_factory=list)
    """What loading changed in the data, one sentence each (blank documents left out, ...), for commands to print."""
    folder: Path | None = None
    """The BEIR folder it was loaded from, where the other splits' qrels are (None: a pairs file or a dataset)."""

    def judged_query_ids(self) -> list[str]:
        """Queries of the split with at least one relevant document, in qrels order."""
        return [qid for qid, docs in self.qrels.items() if any(rel > 0 for rel in docs.values())]

    def positives(self, query_id: str) -> list[str]:
        """All relevant doc ids of a query, most relevant first (stable for ties)."""
        docs = self.qrels.get(query_id, {})
        return sorted((d for d, rel in docs.items() if rel > 0), key=lambda d: -docs[d])

    def doc_text(self, doc_id: str) -> str:
        return self.corpus[doc_id].full_text

    def split_queries(self) -> dict[str, str]:
        """The judged queries of this split, id -> text."""
        return {qid: self.queries[qid] for qid in self.judged_query_ids()}
