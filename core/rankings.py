"""A ranking of documents per query (a \"run\"), the type every stage passes around."""

from __future__ import annotations

from typing import Protocol

Hit = tuple[str, float]
Run = dict[str, list[Hit]]
"""query id -> [(doc id, score), ...] ordered best first."""


def best_first(scores: dict[str, float]) -> list[Hit]:
    """`scores` as a ranking, best first; equal scores in the order trec_eval (and pytrec_eval) ranks them, doc
    id descending, so a list's order is exactly the ranking its scores are evaluated as. The served ranking
    weighs that order (a rerank request carries nothing else), so the two must agree: reciprocal rank fusion
    ties often."""
    return sorted(sorted(scores.items(), key=lambda item: item[0], reverse=True), key=lambda item: -item[1])


class Retriever(Protocol):
    """A first stage built over one corpus.

    `search` returns each query's top-k (best first). `score_pairs` gives the first-stage score of
    given (query, doc) pairs on the same scale as `search` -- mining needs the positive's score for
    false-negative filtering even when the positive was not retrieved."""

    name: str

    def search(self, queries: dict[str, str], k: int) -> Run: ...

    def score_pairs(
        self, queries: dict[str, str], doc_ids: dict[str, list[str]]
    ) -> dict[str, dict[str, float]]: ...
