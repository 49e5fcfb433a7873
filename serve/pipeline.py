"""The two-stage RAG pipeline: retrieve top-k -> rerank -> keep top-n -> prompt -> LLM answer.

    pipeline = Pipeline(SearchIndex.load("index/"), Reranker.load("outputs/scifact/reranker-minilm-full"),
                        generator=OpenAIChat(base_url="http://localhost:8000/v1", model="..."))
    passages = pipeline.search("Does vitamin D prevent fractures?", k=50, top_n=5)
    answer = pipeline.ask("Does vitamin D prevent fractures?")

The reranker is anything with `score(pairs) -> scores` (a `Reranker`, or the server's dynamic batcher
in front of one); the ranking is the served ranking the model carries (reranker/combiner.py: its score
combined with the first stage's dense / BM25 scores, weights fitted on its dev split), exactly as
`rerankforge eval` reports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, Sequence

from rerankforge.core.errors import ConfigError, DataError
from rerankforge.reranker.calibration import relevance
from rerankforge.reranker.combiner import RETRIEVER_SIGNALS, Combiner

from .index import DocHit, SearchIndex
from .prompt import build_messages


class Scorer(Protocol):
    combiner: Combiner

    def score(self, pairs: Sequence[tuple[str, str]]): ...


class Generator(Protocol):
    name: str

    def generate(self, messages: list[dict[str, str]]) -> str: ...


@dataclass
class Passage:
    rank: int
    doc_id: str
    title: str
    text: str
    """The document's best passage (its chunk with the highest rerank score; the whole text when unchunked)."""
    chunk_id: str
    first_stage_score: float
    rerank_score: float | None
    """The reranker's raw score of the best passage (None without a reranker)."""
    relevance: float | None
    """The probability that the passage is relevant: the rerank score through the model's calibration (fitted
    on its dev split; the plain sigmoid where it has none). None without a reranker."""
    score: float
    """What the ranking is by: the served ranking's combined score (the rerank score where the model ranks by
    the reranker alone)."""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    answer: str | None
    """The generator's text (None with no generator: the prompt and sources are the result)."""
    sources: list[Passage]
    """The passages the prompt cites, numbered [1]..[n] in this order."""
    messages: list[dict[str, str]]
    generator: str


NOTHING_RELEVANT = "No passage in the index is relevant enough to answer this (none reached min_relevance)."


class Pipeline:
    def __init__(self, retriever: SearchIndex, reranker: Scorer | None = None, generator: Generator | None = None,
                 k: int = 50, top_n: int = 5, fusion_weight: float | None = None, min_relevance: float | None = None):
        self.retriever, self.reranker, self.generator = retriever, reranker, generator
        self.k, self.top_n = k, top_n
        self.min_relevance = min_relevance
        """Passages whose relevance (probability) is below this are left out, so a query with nothing relevant
        gets no passages; None: the top-n whatever their relevance."""
        self.combiner = None if reranker is None else (
            reranker.combiner if fusion_weight is None else Combiner.with_first_stage(fusion_weight))
        """How the ranking combines the reranker's score with the first stage's signals: the model's own served
        ranking, or `fusion_weight` x reranker + (1 - fusion_weight) x first stage."""
        missing = [s for s in (self.combiner.signals if self.combiner else ()) if s in RETRIEVER_SIGNALS
                   and s not in getattr(retriever, "parts", {})]
        if missing:
            raise ConfigError(f"retriever: the reranker's served ranking ({self.combiner.describe()}, fitted on "
                              f"{self.combiner.chosen_on or 'its dev split'}) needs {' and '.join(missing)} scores, "
                              f"which this first stage does not compute; expected retriever hybrid (or auto)")

    def search(self, query: str, k: int | None = None, top_n: int | None = None,
               min_relevance: float | None = None) -> list[Passage]:
        """The top-n of the query's top-k first-stage documents after reranking, less those below
        `min_relevance` (default: the pipeline's)."""
        k, top_n = k or self.k, top_n or self.top_n
        threshold = self.min_relevance if min_relevance is None else min_relevance
        if not query.strip():
            raise DataError("query: expected a non-empty string")
        hits = self.retriever.search({"q": query}, k)["q"]
        if self.reranker is None or not hits:
            return [self._passage(rank, hit, hit.chunks[0][0], None, hit.score) for rank, hit in
                    enumerate(hits[:top_n], 1)]
        pairs = [(query, self.retriever.chunks[chunk_id].document.full_text) for hit in hits for chunk_id, _ in hit.chunks]
        scores = iter(float(s) for s in self.reranker.score(pairs))
        best: dict[str, tuple[str, float]] = {}
        for hit in hits:  # a document's rerank score: its best chunk's
            for chunk_id, _ in hit.chunks:
                value = next(scores)
                if hit.doc_id not in best or value > best[hit.doc_id][1]:
                    best[hit.doc_id] = (chunk_id, value)
        kinds = [s for s in self.combiner.signals if s in RETRIEVER_SIGNALS]
        signals = {"reranker": {d: s for d, (_, s) in best.items()},
                   "first_stage": {hit.doc_id: hit.score for hit in hits},
                   **(self.retriever.signals(query, hits, kinds) if kinds else {})}
        ranked = self.combiner.rank([hit.doc_id for hit in hits], signals)
        by_id = {hit.doc_id: hit for hit in hits}
        passages = [self._passage(rank, by_id[doc_id], best[doc_id][0], best[doc_id][1], score)
                    for rank, (doc_id, score) in enumerate(ranked[:top_n], 1)]
        return [p for p in passages if threshold is None or p.relevance >= threshold]

    def ask(self, query: str, k: int | None = None, top_n: int | None = None,
            min_relevance: float | None = None) -> Answer:
        """Search, build a prompt citing the top-n passages as [1]..[n], and ask the generator."""
        sources = self.search(query, k, top_n, min_relevance)
        messages = build_messages(query, sources)
        if not sources:  # every candidate fell below min_relevance: nothing to answer from, the LLM is not asked
            return Answer(answer=NOTHING_RELEVANT, sources=[], messages=messages, generator="none")
        answer = self.generator.generate(messages) if self.generator is not None else None
        return Answer(answer=answer, sources=sources, messages=messages,
                      generator=self.generator.name if self.generator is not None else "none")

    def _passage(self, rank: int, hit: DocHit, chunk_id: str, rerank: float | None, score: float) -> Passage:
        doc = self.retriever.docs[hit.doc_id]
        chunk = self.retriever.chunks[chunk_id]
        probability = None if rerank is None else float(relevance(self.reranker, [rerank])[0])
        return Passage(rank=rank, doc_id=hit.doc_id, title=doc.title, text=chunk.text, chunk_id=chunk_id,
                       first_stage_score=hit.score, rerank_score=rerank, relevance=probability, score=float(score))
