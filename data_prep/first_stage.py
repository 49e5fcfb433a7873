"""The first stage as the rest of the toolkit uses it: the retrievers it is made of ("dense", "bm25"), each built
once over a corpus; the rankings of bm25, dense and hybrid (their fusion as `RetrieverConfig` says: `fusion`,
`rrf_k`); and the signals the served ranking weighs -- each part's score of every candidate, whether it retrieved
that candidate or not. eval, training's dev split, score-teacher and the demo all go through it."""

from __future__ import annotations

import dataclasses

from rerankforge.core.errors import DataError
from rerankforge.core.rankings import Retriever, Run

from .collection import Document
from .retrieval import RetrieverConfig, build_retriever

KINDS = ("bm25", "dense", "hybrid")
PARTS = ("dense", "bm25")


class FirstStage:
    """The parts of a first stage over one corpus, and what is computed from them."""

    def __init__(self, parts: dict[str, Retriever], config: RetrieverConfig | None = None):
        self.parts, self.config = parts, config or RetrieverConfig()

    @classmethod
    def build(cls, corpus: dict[str, Document], kinds, config: RetrieverConfig | None = None) -> FirstStage:
        """The parts that `kinds` (bm25, dense, hybrid: rankings or signals) are made of, each built once with
        `config`'s settings (its `retriever` is ignored)."""
        config = config or RetrieverConfig()
        for kind in kinds:
            if kind not in KINDS:
                raise DataError(f"--retriever: expected bm25, dense or hybrid, got {kind!r}")
        needed = [part for part in PARTS if any(kind in (part, "hybrid") for kind in kinds)]
        return cls({part: build_retriever(corpus, dataclasses.replace(config, retriever=part)) for part in needed},
                   config)

    def retriever(self, kind: str) -> Retriever:
        """A part, or "hybrid": the parts fused."""
        if kind != "hybrid":
            return self.parts[kind]
        from .hybrid import HybridRetriever

        return HybridRetriever([self.parts[part] for part in PARTS], method=self.config.fusion,
                               rrf_k=self.config.rrf_k)

    def search(self, queries: dict[str, str], kinds, k: int) -> dict[str, Run]:
        """kind -> the top-`k` of every query."""
        return {kind: self.retriever(kind).search(queries, k) for kind in kinds}

    def signals(self, queries: dict[str, str], candidates: dict[str, list[str]],
                kinds) -> dict[str, dict[str, dict[str, float]]]:
        """kind -> query id -> {doc id -> that part's score}, for the candidates given."""
        return {kind: self.parts[kind].score_pairs(queries, candidates) for kind in kinds}


def candidates_of(first_stages: dict[str, Run], queries: dict[str, str], depth: int) -> dict[str, list[str]]:
    """Every query's candidates: the top-`depth` of each first stage, in order, each document once."""
    candidates: dict[str, list[str]] = {}
    for run in first_stages.values():
        for qid, hits in run.items():
            if qid in queries:
                candidates[qid] = list(dict.fromkeys([*candidates.get(qid, []), *(d for d, _ in hits[:depth])]))
    return candidates
