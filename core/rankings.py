"""A ranking of documents per query (a \"run\"), the type every stage passes around."""

from __future__ import annotations

from typing import Protocol

Hit = tuple[str, float]
Run = dict[str, list[Hit]]
"""query id -> [(doc id, score), ...] ordered best first."""


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
