"""Hybrid first stage: fuse the rankings of several retrievers (usually dense + BM25).

Two fusions: reciprocal rank fusion (RRF, Cormack et al. 2009), which needs no score calibration,
and a weighted sum of per-query normalized scores. The pure functions are shared by eval and serve;
`HybridRetriever` wraps them in the `Retriever` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence


from rerankforge.core.errors import ConfigError, DataError, preview
from rerankforge.core.rankings import Hit, Retriever, Run, best_first
from rerankforge.core.scores import NORMALIZATIONS, Normalizer

FUSION_METHODS = ("rrf", "score")


def _check_weights(weights: Sequence[float] | None, n_runs: int) -> list[float]:
    """Equal weights (1.0 each) by default; otherwise one non-negative weight per run."""
    if weights is None:
        return [1.0] * n_runs
    if len(weights) != n_runs or any(not w >= 0 for w in weights):
        raise ConfigError(
            f"weights must be {n_runs} non-negative numbers, one per retriever/run; got {list(weights)!r}"
        )
    return [float(w) for w in weights]


def _check_rrf_k(k: int) -> None:
    if not isinstance(k, int) or k < 0:
        raise ConfigError(f"rrf_k must be an integer >= 0 (60 is the usual choice); got {k!r}")


def _check_normalization(normalization: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {', '.join(NORMALIZATIONS)}; got {normalization!r}")


def _ranked(scores: dict[str, float]) -> list[Hit]:
    """Best first; ties as trec_eval breaks them (`best_first`), so fused runs are deterministic and their order is
    the ranking their scores evaluate to."""
    return best_first(scores)


def _query_ids(runs: Sequence[Run]) -> list[str]:
    """Union of the runs' query ids, in first-seen order."""
    return list(dict.fromkeys(qid for run in runs for qid in run))


def _rrf_scores(lists: Sequence[list[Hit]], k: int, weights: Sequence[float]) -> dict[str, float]:
    """sum_i w_i / (k + rank_i(d)) with 1-based ranks; a list without d adds nothing."""
    fused: dict[str, float] = {}
    for hits, weight in zip(lists, weights):
        for rank, (doc_id, _) in enumerate(hits, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
    return fused


def reciprocal_rank_fusion(runs: list[Run], k: int = 60, weights: Sequence[float] | None = None) -> Run:
    """Fuse runs by (weighted) reciprocal rank over the union of their candidates."""
    _check_rrf_k(k)
    weights = _check_weights(weights, len(runs))
    return {
        qid: _ranked(_rrf_scores([run.get(qid, []) for run in runs], k, weights)) for qid in _query_ids(runs)
    }


def _score_fusion_scores(
    lists: Sequence[list[Hit]], normalization: str, weights: Sequence[float]
) -> dict[str, float]:
    normalizers = [Normalizer.fit([s for _, s in hits], normalization) for hits in lists]
    candidates = dict.fromkeys(doc_id for hits in lists for doc_id, _ in hits)
    fused = {doc_id: 0.0 for doc_id in candidates}
    for hits, norm, weight in zip(lists, normalizers, weights):
        listed = {doc_id: norm.apply(score) for doc_id, score in hits}
        for doc_id in fused:
            fused[doc_id] += weight * listed.get(doc_id, norm.floor)
    return fused


def score_fusion(
    runs: list[Run], normalization: str = "minmax", weights: Sequence[float] | None = None
) -> Run:
    """Fuse runs by a weighted sum of per-query normalized scores over the union of candidates.

    A doc missing from a run's list gets that list's lowest normalized value (0 for min-max)."""
    _check_normalization(normalization)
    weights = _check_weights(weights, len(runs))
    return {
        qid: _ranked(_score_fusion_scores([run.get(qid, []) for run in runs], normalization, weights))
        for qid in _query_ids(runs)
    }


class HybridRetriever:
    """Several retrievers fused into one first stage (the `Retriever` protocol).

    Each component is searched to `max(k, candidate_depth)` so fusion sees more than the final k.
    Every call works on lists of its own and keeps nothing on the object, so one retriever serves
    concurrent calls (a server's threads): `score_pairs` searches the components again, to
    `candidate_depth`, and so gives the fused scores of a `search` with k <= candidate_depth."""

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        *,
        method: str = "rrf",
        rrf_k: int = 60,
        normalization: str = "minmax",
        weights: Sequence[float] | None = None,
        candidate_depth: int = 100,
    ) -> None:
        if not retrievers:
            raise ConfigError("retrievers must hold at least one retriever; got none")
        if method not in FUSION_METHODS:
            raise ConfigError(f"method must be one of {', '.join(FUSION_METHODS)}; got {method!r}")
        _check_rrf_k(rrf_k)
        _check_normalization(normalization)
        if not isinstance(candidate_depth, int) or candidate_depth < 1:
            raise ConfigError(f"candidate_depth must be a positive integer; got {candidate_depth!r}")
        self.retrievers = list(retrievers)
        self.method = method
        self.rrf_k = rrf_k
        self.normalization = normalization
        self.weights = _check_weights(weights, len(self.retrievers))
        self.candidate_depth = candidate_depth
        self.name = f"hybrid-{method}"

    def search(self, queries: dict[str, str], k: int) -> Run:
        if k < 1:
            raise ConfigError(f"k must be a positive integer; got {k!r}")
        lists = self._component_lists(queries, max(k, self.candidate_depth))
        return {qid: _ranked(self._fuse(per_component))[:k] for qid, per_component in lists.items()}

    def _component_lists(self, queries: dict[str, str], depth: int) -> dict[str, list[list[Hit]]]:
        """query id -> one hit list per component, searched to `depth`."""
        runs = [retriever.search(queries, depth) for retriever in self.retrievers]
        return {qid: [run.get(qid, []) for run in runs] for qid in queries}

    def _fuse(self, lists: list[list[Hit]]) -> dict[str, float]:
        if self.method == "rrf":
            return _rrf_scores(lists, self.rrf_k, self.weights)
        return _score_fusion_scores(lists, self.normalization, self.weights)

    def score_pairs(
        self, queries: dict[str, str], doc_ids: dict[str, list[str]]
    ) -> dict[str, dict[str, float]]:
        """Fused scores of given pairs on `search`'s scale, for docs inside or outside the fused list.

        RRF: each component contributes by the doc's rank in its depth-list (nothing if absent).
        Score fusion: each component's raw pair score, normalized with that query's list statistics
        and floored at the list's minimum -- for a listed doc this equals its `search` value."""
        missing = [qid for qid in doc_ids if qid not in queries]
        if missing:
            raise DataError(f"score_pairs: no query text for query ids {preview(missing)}")
        lists = self._component_lists({qid: queries[qid] for qid in doc_ids}, self.candidate_depth)
        if self.method == "rrf":
            return {qid: self._rrf_pairs(lists[qid], docs) for qid, docs in doc_ids.items()}
        raw = [retriever.score_pairs(queries, doc_ids) for retriever in self.retrievers]
        return {
            qid: self._score_pairs_fused(lists[qid], [r.get(qid, {}) for r in raw], docs)
            for qid, docs in doc_ids.items()
        }

    def _rrf_pairs(self, lists: list[list[Hit]], docs: list[str]) -> dict[str, float]:
        fused = _rrf_scores(lists, self.rrf_k, self.weights)
        return {doc_id: fused.get(doc_id, 0.0) for doc_id in docs}

    def _score_pairs_fused(
        self, lists: list[list[Hit]], raw: list[dict[str, float]], docs: list[str]
    ) -> dict[str, float]:
        normalizers = [Normalizer.fit([s for _, s in hits], self.normalization) for hits in lists]
        out = {}
        for doc_id in docs:
            out[doc_id] = sum(
                weight * (norm.apply(scores[doc_id]) if doc_id in scores else norm.floor)
                for norm, scores, weight in zip(normalizers, raw, self.weights)
            )
        return out
