"""BM25 of any (query, document) pair from a corpus's statistics, without its index: how a rerank request's
documents get the score the first stage's BM25 gives them, so the served ranking can weigh it there too.

BM25 (Lucene's variant, bm25s' default) needs, besides the pair's own terms, each query term's document
frequency and the corpus's document count and average length. `BM25Statistics` holds exactly these, taken from
the first stage's index (`data_prep.bm25.BM25Retriever.statistics`) and saved with the reranker
(bm25_statistics.json), so for a document of the corpus `scores` gives the retriever's own score (to float32
rounding), and for any other document the score it would get in that corpus. Terms found in one document only
are not stored: a term the statistics do not hold counts as found in one document (unseen terms are rare).

    statistics.scores("what causes anemia", ["iron deficiency ...", "..."])"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError
from .files import atomic_write_text

BM25_STATISTICS = "bm25_statistics.json"
"""The file a reranker folder keeps its corpus's BM25 statistics in."""


def analyze(texts: Sequence[str], stemmer, stopwords: str | None, as_ids: bool = False, show_progress: bool = False):
    """The one BM25 analyzer, of corpus, queries and requests' documents alike (bm25s): lowercase, words of 2+
    characters, stopwords out, then stemmed with `stemmer` (a PyStemmer stemmer, or None). Token lists, or with
    `as_ids` bm25s' `Tokenized` (ids and vocabulary) for indexing."""
    import bm25s

    return bm25s.tokenize(list(texts), lower=True, stopwords=stopwords, stemmer=stemmer, return_ids=as_ids,
                          show_progress=show_progress)


@dataclass(frozen=True)
class BM25Statistics:
    """A corpus's BM25 statistics: what scoring a (query, document) pair as its index does needs."""
    k1: float = field(metadata={"help": "BM25's term-frequency saturation."})
    b: float = field(metadata={"help": "BM25's length normalisation, 0..1."})
    documents: int = field(metadata={"help": "Documents in the corpus."})
    average_length: float = field(metadata={"help": "Mean indexed terms per document."})
    stemmer_language: str | None = field(metadata={"help": "PyStemmer's stemmer (porter, english, ...) or None."})
    stopwords: str | None = field(metadata={"help": "bm25s' stopword list (en, ...) or None."})
    document_frequency: Mapping[str, int] = field(repr=False, metadata={
        "help": "Analyzed term -> documents holding it, for terms in 2 documents or more."})

    def idf(self, term: str) -> float:
        df = self.document_frequency.get(term, 1)
        return math.log(1 + (self.documents - df + 0.5) / (df + 0.5))

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        """BM25 of `query` with each of `documents` (0.0 where they share no term), in the order given."""
        import Stemmer

        # a stemmer of its own per call: PyStemmer's are not thread-safe, and requests are scored concurrently
        stemmer = Stemmer.Stemmer(self.stemmer_language) if self.stemmer_language else None
        analyzed = analyze([query, *documents], stemmer, self.stopwords)
        # a term the query repeats counts as often as it occurs, as in bm25s (and Lucene's boolean query)
        terms = {t: n * self.idf(t) for t, n in Counter(analyzed[0]).items()}
        out = []
        for tokens in analyzed[1:]:
            counts = Counter(t for t in tokens if t in terms)
            norm = self.k1 * (1 - self.b + self.b * len(tokens) / self.average_length)
            out.append(float(sum(terms[t] * tf / (tf + norm) for t, tf in counts.items())))
        return out

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / BM25_STATISTICS
        values = {"k1": self.k1, "b": self.b, "documents": self.documents, "average_length": self.average_length,
                  "stemmer_language": self.stemmer_language, "stopwords": self.stopwords,
                  "document_frequency": dict(self.document_frequency)}
        atomic_write_text(path, json.dumps(values, ensure_ascii=False, separators=(",", ":")) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> BM25Statistics:
        """The statistics in `path`; a DataError naming the file and key where it is not what `save` writes."""
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: expected the BM25 statistics JSON that rerankforge writes, got unreadable "
                            f"content ({error})") from None
        if not isinstance(values, dict):
            raise DataError(f"{path}: expected a JSON object, got {type(values).__name__}")
        expected = {"k1": (int, float), "b": (int, float), "documents": (int,), "average_length": (int, float),
                    "stemmer_language": (str, type(None)), "stopwords": (str, type(None)),
                    "document_frequency": (dict,)}
        for key, kinds in expected.items():
            if type(values.get(key)) not in kinds or (key in ("documents", "average_length") and values[key] <= 0):
                raise DataError(f"{path}: {key}: expected {' or '.join(k.__name__ for k in kinds)}"
                                f"{' above 0' if key in ('documents', 'average_length') else ''}, got "
                                f"{values.get(key)!r}"[:300])
        bad = next(((t, n) for t, n in values["document_frequency"].items() if type(n) is not int or n < 1), None)
        if bad:
            raise DataError(f"{path}: document_frequency: expected a term -> a whole number >= 1, got {bad[0]!r}: "
                            f"{bad[1]!r}"[:300])
        import Stemmer

        if values["stemmer_language"] is not None and values["stemmer_language"] not in Stemmer.algorithms():
            raise DataError(f"{path}: stemmer_language: expected one of {', '.join(Stemmer.algorithms())} or null, "
                            f"got {values['stemmer_language']!r}")
        return cls(**{key: values[key] for key in expected})
