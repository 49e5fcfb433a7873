"""What the page asks the reranker while it is open: scores of a query's documents, and new queries run through
the served pipeline.

A search runs the served pipeline of `rerankforge serve` (serve/pipeline.py) over an index built by `rerankforge
index` where one is given; without one, the collection's BM25 top-k, ranked as the rerank endpoints rank
documents sent in first-stage order (the model's request ranking). Nothing is written: no index or embedding
cache is built."""

from __future__ import annotations

import threading
import time

from rerankforge.core.errors import DataError
from rerankforge.data_prep.collection import Collection
from rerankforge.reranker.scoring import Reranker


class LiveRanker:
    def __init__(self, reranker: Reranker, collection: Collection, index: str | None = None, k: int = 50):
        self.reranker, self.collection, self.k = reranker, collection, k
        self._index_folder = index
        self._pipeline = None
        self._bm25 = None
        self._lock = threading.Lock()
        self._scoring = threading.Lock()  # one forward pass at a time: two would share the 2 cores, not gain

    @property
    def ranking(self) -> str:
        """The ranking a search returns, in words."""
        if self._index_folder:
            return f"served ({self.reranker.combiner.describe()}) over the index {self._index_folder}"
        return f"request ranking ({self.reranker.request_combiner.describe()}) over the collection's BM25 top-{self.k}"

    @property
    def backend(self) -> str:
        """What scores, in words: the backend and its precision."""
        r = self.reranker
        return f"{getattr(r.backend, 'name', 'torch')} {getattr(r.precision, 'name', r.precision)}"

    def score_texts(self, query: str, texts: list[str]) -> list[float]:
        with self._scoring:
            return [float(s) for s in self.reranker.score([(query, t) for t in texts])]

    def score(self, query: str, doc_ids: list[str]) -> tuple[list[float], list[float], float]:
        """The reranker's raw scores of (query, document) for each document, their probabilities of relevance
        (the model's calibration) and the seconds the scoring took."""
        started = time.perf_counter()
        with self._scoring:
            scores = self.reranker.score([(query, self.collection.doc_text(d)) for d in doc_ids])
        probabilities = self.reranker.probability(scores)
        return [float(s) for s in scores], [float(p) for p in probabilities], time.perf_counter() - started

    def search(self, query: str, k: int | None = None, top_n: int = 10) -> dict:
        """The query's top-n after reranking its first stage's top-k: rank, id, title and text (the index's passage
        where there is an index), first-stage, reranker and ranking scores, probability of relevance."""
        if not query.strip():
            raise DataError("q: expected a non-empty query")
        k = min(k or self.k, 200)
        started = time.perf_counter()
        if self._index_folder:
            with self._scoring:
                passages = self._served_pipeline().search(query, k=k, top_n=top_n)
            hits = [{"rank": p.rank, "id": p.doc_id, "title": p.title, "text": p.text,  # the index's passage
                     "first_stage": p.first_stage_score, "reranker": p.rerank_score, "score": p.score,
                     "probability": p.relevance} for p in passages]
        else:
            first = self._collection_bm25().search({"q": query}, k).get("q", [])
            doc_ids = [d for d, _ in first]
            with self._scoring:
                scores = self.reranker.score([(query, self.collection.doc_text(d)) for d in doc_ids])
            order, _ = self.reranker.order(scores, served=True, query=query,
                                           documents=[self.collection.doc_text(d) for d in doc_ids])
            probabilities = self.reranker.probability(scores)
            corpus = self.collection.corpus
            hits = [{"rank": rank, "id": doc_ids[i], "title": corpus[doc_ids[i]].title, "text": corpus[doc_ids[i]].text,
                     "first_stage": float(first[i][1]), "reranker": float(scores[i]),
                     "probability": float(probabilities[i])} for rank, i in enumerate(order[:top_n], start=1)]
        return {"query": query, "k": k, "ranking": self.ranking, "hits": hits,
                "seconds": time.perf_counter() - started}

    def _served_pipeline(self):
        with self._lock:
            if self._pipeline is None:
                from rerankforge.serve.index import SearchIndex
                from rerankforge.serve.pipeline import Pipeline
                from rerankforge.serve.service import first_stage_for

                index = SearchIndex.load(self._index_folder, retriever=first_stage_for("auto", self.reranker))
                self._pipeline = Pipeline(index, self.reranker, k=self.k)
            return self._pipeline

    def _collection_bm25(self):
        with self._lock:
            if self._bm25 is None:
                from rerankforge.data_prep.bm25 import BM25Retriever

                self._bm25 = BM25Retriever(self.collection.corpus, show_progress=False)
            return self._bm25
