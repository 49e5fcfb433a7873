"""Everything the page shows, loaded once: the collection, the report's rankings, the reranker, the training
file, and the labels file (read again whenever it changed on disk, so two pages on one file agree)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.core.errors import DataError
from rerankforge.data_prep.collection import Collection

from .live import LiveRanker
from .report_view import ReportView
from .training_view import TrainingView


@dataclass
class InspectState:
    collection: Collection
    """The collection and the qrels of the split the report is of."""
    labels_path: Path
    """The labels file judgments are appended to (the only file the page writes)."""
    report: ReportView | None = None
    """The report's rankings (None: no --report; the query views are then empty)."""
    live: LiveRanker | None = None
    """The reranker, for live scores and searches (None: no --model)."""
    training: TrainingView | None = None
    """The training file's groups (None: no --train_file)."""
    model_folder: str | None = None
    """Where the reranker's metrics.json (the training chart) is."""
    annotator: str = ""
    """Recorded with each judgment the page sends without a name of its own."""
    live_depth: int = 20
    """First-stage documents of a query the reranker scores when its view opens."""
    _labels: tuple[tuple[int, int] | None, list] = field(default=(None, []), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def max_grade(self) -> int:
        """The highest relevance grade of the collection's qrels: 1 for binary collections."""
        return max([1, *(rel for docs in self.collection.qrels.values() for rel in docs.values())])

    def labels(self) -> list:
        """Every row of the labels file, in file order (none before the first label)."""
        from rerankforge.data_prep.labels import read_labels

        try:
            stat = os.stat(self.labels_path)
            key = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            return []
        with self._lock:
            if self._labels[0] != key:
                self._labels = (key, read_labels(self.labels_path))
            return self._labels[1]

    def latest(self) -> dict[str, dict[str, int]]:
        from rerankforge.data_prep.labels import latest_labels

        return latest_labels(self.labels())

    def label_details(self, query_id: str) -> dict[str, dict]:
        """The query's latest label of each document, with its time and annotator."""
        out = {}
        for label in self.labels():
            if label.query_id == query_id:
                out[label.doc_id] = {"relevance": label.relevance, "time": label.time, "annotator": label.annotator}
        return out

    def add_label(self, query_id: str, doc_id: str, relevance: int, annotator: str) -> dict:
        from rerankforge.data_prep.labels import append_label

        if query_id not in self.collection.queries:
            raise DataError(f"query_id: expected a query of {self.collection.name}, got {query_id!r}")
        if doc_id not in self.collection.corpus:
            raise DataError(f"doc_id: expected a document of {self.collection.name}, got {doc_id!r}")
        if not isinstance(relevance, int) or isinstance(relevance, bool) or not 0 <= relevance <= self.max_grade:
            raise DataError(f"relevance: expected an integer from 0 (not relevant) to {self.max_grade}, got "
                            f"{relevance!r}")
        label = append_label(self.labels_path, query_id, doc_id, relevance, annotator=annotator)
        return {"query_id": label.query_id, "doc_id": label.doc_id, "relevance": label.relevance,
                "time": label.time, "annotator": label.annotator}

    def document(self, doc_id: str) -> dict:
        doc = self.collection.corpus[doc_id]
        return {"id": doc_id, "title": doc.title, "text": doc.text}


def default_labels_path(data_folder: Path | None, collection: Collection) -> Path:
    """Beside the collection's files: `<collection folder>/labels.tsv` where that folder is writable; else (a
    read-only shared copy, a dataset fetched by name) `./labels/<collection>.labels.tsv`."""
    if data_folder is not None and os.access(data_folder, os.W_OK):
        return data_folder / "labels.tsv"
    return Path("labels") / f"{collection.name}.labels.tsv"
