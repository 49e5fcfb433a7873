"""A ranking of documents per query (a \"run\"), the type every stage passes around."""

from __future__ import annotations

Hit = tuple[str, float]
Run = dict[str, list[Hit]]
"""query id -> [(doc id, score), ...] ordered best first."""
