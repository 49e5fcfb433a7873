"""BM25 first stage (bm25s): the lexical half of hybrid retrieval and a cheap miner of hard negatives.

Defaults (k1=1.2, b=0.75, Porter stemmer, bm25s English stopwords, Lucene scoring, one flat
title + text field) were chosen by nDCG@10 on SciFact *train* queries; see `HybridRetriever` for
fusing with a dense retriever. `fields="multifield"` scores title and text separately, as the BEIR
paper's Elasticsearch baseline does; flat scored higher on SciFact train (0.698 vs 0.692 nDCG@10).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import bm25s
import numpy as np
import Stemmer
from bm25s.tokenization import Tokenized

from rerankforge.core.errors import ConfigError, DataError, preview
from rerankforge.core.lexical import BM25Statistics, analyze
from rerankforge.core.progress import progress_enabled
from rerankforge.core.rankings import Hit, Run
from .collection import Document

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
FIELD_MODES = ("flat", "multifield")


def _make_stemmer(language: str | None) -> Stemmer.Stemmer | None:
    """A PyStemmer stemmer, or None for no stemming; an unknown language is a ConfigError, not a KeyError."""
    if language is None:
        return None
    if language not in Stemmer.algorithms():
        raise ConfigError(
            f"stemmer_language must be None or one of {', '.join(Stemmer.algorithms())}; got {language!r}"
        )
    return Stemmer.Stemmer(language)


def _check_stopwords(stopwords: str | None) -> None:
    """Fail at construction (not at first tokenization) on a stopword list bm25s does not know."""
    if stopwords is None:
        return
    try:
        bm25s.tokenize(["probe"], stopwords=stopwords, show_progress=False)
    except ValueError:
        raise ConfigError(
            f"stopwords must be None or a bm25s stopword list name such as 'en', 'english', 'en_plus', "
            f"'de', 'fr'; got {stopwords!r}"
        ) from None


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _FieldIndex:
    """A bm25s index over one field (title or text) whose scores come back corpus-length.

    Only documents with at least one term in the field are indexed, as Lucene counts them: the
    field's document count (in idf) and average length leave out, say, documents without a title,
    which then simply score 0 on it. `rows[i]` is the corpus row of the index's i-th document."""

    def __init__(self, tokens: Tokenized, n_docs: int, k1: float, b: float, method: str,
                 show_progress: bool) -> None:
        self.n_docs = n_docs
        self.rows = np.array([row for row, ids in enumerate(tokens.ids) if ids], dtype=np.int64)
        self._index = None
        if len(self.rows):  # a corpus without any titles gets no title index at all
            self._index = bm25s.BM25(k1=k1, b=b, method=method)
            kept = Tokenized(ids=[tokens.ids[row] for row in self.rows], vocab=tokens.vocab)
            self._index.index(kept, show_progress=show_progress)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """Per-document BM25 of this field for an analyzed, non-empty query (float32, corpus order)."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        if self._index is not None:
            out[self.rows] = self._index.get_scores(query_tokens)
        return out


class BM25Retriever:
    """BM25 over a corpus, implementing the `Retriever` protocol.

    `fields` picks what is indexed:

    - "flat": one field, `Document.full_text` (title + text) -- Pyserini's "flat" BEIR baseline.
    - "multifield": title and text as separate BM25 fields, each with its own idf and average
      length, combined like the Elasticsearch query of the BEIR paper (`multi_match`,
      `best_fields`, fields title and text): score = best field score + `tie_breaker` x the
      other field's score. Both fields are scored against the whole corpus per query
      (`get_scores`, O(corpus) numpy per query) and then cut to the top-k; this is exact, unlike
      merging per-field top-k lists, which would miss documents that are good on both fields but
      top on neither. The analyzer stays ours (bm25s stopwords, Porter), not Elasticsearch's
      `english` one, and lengths are not quantized as Lucene's norms are, so scores are close
      to, not identical with, Elasticsearch's.

    Runs list only documents sharing at least one term with the query (score > 0), as Lucene and
    Pyserini do: a query made only of stopwords or unknown words gets an empty list rather than
    k arbitrary zero-score documents that would pass for "hard" negatives."""

    name = "bm25"

    def __init__(
        self,
        corpus: dict[str, Document],
        *,
        k1: float = 1.2,
        b: float = 0.75,
        method: str = "lucene",
        stemmer_language: str | None = "porter",
        stopwords: str | None = "en",
        fields: str = "flat",
        tie_breaker: float = 0.5,
        n_threads: int = 0,
        query_batch_size: int = 1024,
        show_progress: bool = False,
    ) -> None:
        _validate_options(k1, b, method, fields, tie_breaker, n_threads, query_batch_size)
        if not corpus:
            raise DataError("cannot build a BM25 index over an empty corpus")
        self.k1, self.b, self.method = k1, b, method
        self.fields, self.tie_breaker = fields, tie_breaker
        self.name = "bm25" if fields == "flat" else "bm25-multifield"  # run tag / mined-file provenance
        self.stemmer_language, self.stopwords = stemmer_language, stopwords
        self.n_threads = n_threads
        self.query_batch_size = query_batch_size
        show_progress = show_progress and progress_enabled()  # bm25s draws its bars when asked: --no_progress
        self.show_progress = show_progress
        self._stemmer = _make_stemmer(stemmer_language)
        _check_stopwords(stopwords)
        self._doc_ids = list(corpus)
        self._doc_id_array = np.array(self._doc_ids, dtype=object)
        self._doc_index = {doc_id: i for i, doc_id in enumerate(self._doc_ids)}
        if fields == "flat":
            self._index = bm25s.BM25(k1=k1, b=b, method=method)
            tokens = self._tokenize([doc.full_text for doc in corpus.values()], as_ids=True)
            if not tokens.vocab:  # bm25s would fail deep inside (max() of an empty vocabulary)
                raise DataError(f"cannot build a BM25 index: none of the {len(corpus)} documents holds a word it "
                                "indexes (words of 2+ letters that are not stopwords); expected real text, or use "
                                "--retriever dense")
            self._index.index(tokens, show_progress=show_progress)
            self._average_length = float(np.mean([len(ids) for ids in tokens.ids]))
        else:
            self._field_indexes = [
                _FieldIndex(self._tokenize([getattr(doc, name) for doc in corpus.values()], as_ids=True),
                            len(corpus), k1, b, method, show_progress)
                for name in ("title", "text")
            ]

    @functools.cached_property
    def statistics(self) -> BM25Statistics | None:
        """What scoring any (query, document) pair as this index does needs (core/lexical.py): what a rerank
        request's documents get their BM25 score from. Read off the index when first asked (a term's document
        frequency is its column's entry count); None for multifield and methods other than lucene."""
        if self.fields != "flat" or self.method != "lucene":
            return None
        frequency = np.diff(self._index.scores["indptr"])
        return BM25Statistics(self.k1, self.b, len(self._doc_ids), self._average_length, self.stemmer_language,
                              self.stopwords, {term: int(frequency[i]) for term, i in self._index.vocab_dict.items()
                                               if i < len(frequency) and frequency[i] > 1})

    def __len__(self) -> int:
        return len(self._doc_ids)

    def _tokenize(self, texts: list[str], as_ids: bool = False, progress: bool | None = None):
        """core/lexical.py's analyzer with this index's stemmer and stopwords, for corpus and queries. `progress`:
        bars or not (default the retriever's `show_progress`)."""
        return analyze(texts, self._stemmer, self.stopwords, as_ids,
                       self.show_progress if progress is None else progress)

    def search(self, queries: dict[str, str], k: int) -> Run:
        """Each query's top-k (k capped at the corpus size), best first, zero-score hits dropped.

        Queries go through bm25s in batches of `query_batch_size`, so memory stays at one score
        vector per worker plus a batch x k result, never queries x corpus."""
        if k < 1:
            raise ConfigError(f"k must be a positive integer; got {k!r}")
        k = min(k, len(self._doc_ids))
        run: Run = {}
        for batch in _chunks(list(queries.items()), self.query_batch_size):
            tokens = self._tokenize([text for _, text in batch])
            if self.fields == "multifield":
                top = self._map(lambda query_tokens: self._top_k(self._scores(query_tokens), k), tokens)
                run.update((qid, hits) for (qid, _), hits in zip(batch, top))
                continue
            docs, scores = self._index.retrieve(
                tokens,
                k=k,
                show_progress=self.show_progress,
                n_threads=self.n_threads,
            )
            for (qid, _), row_docs, row_scores in zip(batch, docs, scores):
                run[qid] = self._hits(row_docs, row_scores)
        return run

    def _scores(self, query_tokens: list[str]) -> np.ndarray:
        """Corpus-length scores of one analyzed query: the single source of both `search` (multifield)
        and `score_pairs`, so the two agree bit for bit."""
        if not query_tokens:  # bm25s cannot score an empty token list
            return np.zeros(len(self._doc_ids), dtype=np.float32)
        if self.fields == "flat":
            return self._index.get_scores(query_tokens)
        title, text = (field.scores(query_tokens) for field in self._field_indexes)
        return np.maximum(title, text) + np.float32(self.tie_breaker) * np.minimum(title, text)

    def _top_k(self, scores: np.ndarray, k: int) -> list[Hit]:
        """The k best positive scores, best first; equal scores listed in corpus order (reproducible runs)."""
        rows = np.flatnonzero(scores > 0)
        if len(rows) > k:
            rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
        rows = rows[np.lexsort((rows, -scores[rows]))]
        return self._hits(rows, scores[rows])

    def _map(self, fn: Callable, items: Iterable) -> list:
        """`fn` over `items`, on `n_threads` threads like bm25s' own retrieve (numpy drops the GIL)."""
        if self.n_threads == 0:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(os.cpu_count() if self.n_threads == -1 else self.n_threads) as pool:
            return list(pool.map(fn, items))

    def _hits(self, row_docs: np.ndarray, row_scores: np.ndarray) -> list[Hit]:
        keep = row_scores > 0
        ids = self._doc_id_array[row_docs[keep]]
        return [(doc_id, float(score)) for doc_id, score in zip(ids, row_scores[keep])]

    def score_pairs(
        self, queries: dict[str, str], doc_ids: dict[str, list[str]]
    ) -> dict[str, dict[str, float]]:
        """BM25 scores of given (query, doc) pairs -- the same numbers `search` reports (0.0 when no
        query term occurs in the document). One corpus-length score vector per query at a time."""
        missing_queries = [qid for qid in doc_ids if qid not in queries]
        if missing_queries:
            raise DataError(f"score_pairs: no query text for query ids {preview(missing_queries)}")
        out: dict[str, dict[str, float]] = {}
        for qid, docs in doc_ids.items():
            rows = self._rows(docs, qid)
            (tokens,) = self._tokenize([queries[qid]], progress=False)  # one query at a time: no bars
            scores = self._scores(tokens)
            out[qid] = {doc_id: float(scores[row]) for doc_id, row in zip(docs, rows)}
        return out

    def _rows(self, docs: list[str], qid: str) -> list[int]:
        unknown = [d for d in docs if d not in self._doc_index]
        if unknown:
            raise DataError(
                f"score_pairs: query {qid!r} names documents not in the corpus: {preview(unknown)}"
            )
        return [self._doc_index[d] for d in docs]


def _validate_options(k1: float, b: float, method: str, fields: str, tie_breaker: float, n_threads: int,
                      query_batch_size: int) -> None:
    if not k1 >= 0:
        raise ConfigError(f"k1 must be a number >= 0; got {k1!r}")
    if not 0 <= b <= 1:
        raise ConfigError(f"b must be a number in [0, 1]; got {b!r}")
    if method not in BM25_METHODS:
        raise ConfigError(f"method must be one of {', '.join(BM25_METHODS)}; got {method!r}")
    if fields not in FIELD_MODES:
        raise ConfigError(f"fields must be one of {', '.join(FIELD_MODES)}; got {fields!r}")
    if not 0 <= tie_breaker <= 1:
        raise ConfigError(f"tie_breaker must be a number in [0, 1]; got {tie_breaker!r}")
    if not isinstance(n_threads, int) or n_threads < -1:
        raise ConfigError(
            f"n_threads must be 0 (sequential), -1 (all {os.cpu_count()} cores) or a positive count; "
            f"got {n_threads!r}"
        )
    if not isinstance(query_batch_size, int) or query_batch_size < 1:
        raise ConfigError(f"query_batch_size must be a positive integer; got {query_batch_size!r}")
