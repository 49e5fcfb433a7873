"""Standard IR metrics through pytrec_eval (the trec_eval code), so numbers equal trec_eval's.

A metric is named `FAMILY@N` with any cut-off N: nDCG (graded relevance as given in the qrels), MRR,
MAP, R (recall), P (precision) and Hit (hit rate: at least one relevant document in the top N; trec_eval's
`success`). A document counts as relevant when its grade is at least 1, as in trec_eval.

A run's lists are ranked by score, and equal scores rank as listed (a stable sort): trec_eval would break
them by doc id instead; rerankforge's rankings keep tied documents in the order
they came (the reranker's ties in the first stage's order, as the rerank endpoints answer), and its fused first
stages list ties the way trec_eval breaks them (`best_first`), so their figures are trec_eval's."""

from __future__ import annotations

import re

from rerankforge.core.errors import DataError, preview
from rerankforge.data_prep.collection import Qrels
from rerankforge.core.rankings import Run

FAMILIES = {"nDCG": "ndcg_cut", "MRR": "recip_rank", "MAP": "map_cut", "R": "recall", "P": "P", "Hit": "success"}
"""Our metric families -> pytrec_eval measures (MRR@N is recip_rank over the run cut at N)."""
MEASURES = ("nDCG@1", "nDCG@3", "nDCG@5", "nDCG@10", "MRR@10", "MAP@100", "R@10", "R@20", "R@50", "R@100")
"""The metrics `rerankforge eval` reports by default; any FAMILY@N is accepted."""
DEFAULT_METRICS = ("nDCG@10", "MRR@10", "MAP@100", "R@10", "R@100")
_NAME = re.compile(r"^(nDCG|MRR|MAP|R|P|Hit)@([1-9][0-9]*)$")


def parse_metric(name: str) -> tuple[str, int]:
    """`nDCG@10` -> ("nDCG", 10); a clear error for anything else."""
    match = _NAME.match(name)
    if not match:
        raise DataError(f"unknown metric {name!r}: expected FAMILY@N with FAMILY one of "
                        f"{', '.join(FAMILIES)} and N a positive integer, e.g. nDCG@10, Hit@3")
    return match.group(1), int(match.group(2))


def judged(qrels: Qrels) -> Qrels:
    """The queries with at least one relevant document: the ones every metric averages over."""
    return {qid: docs for qid, docs in qrels.items() if any(rel > 0 for rel in docs.values())}


def per_query(qrels: Qrels, run: Run, metrics: tuple[str, ...] = DEFAULT_METRICS,
              run_name: str = "the run") -> dict[str, dict[str, float]]:
    """metric -> {query id -> value} over the judged queries; a judged query missing from the run scores 0."""
    import pytrec_eval

    parsed = {metric: parse_metric(metric) for metric in metrics}
    relevant = judged(qrels)
    overlap = relevant.keys() & run.keys()
    if not overlap:
        raise DataError(f"{run_name} shares no query with the judged queries ({len(relevant)} judged, e.g. "
                        f"{preview(sorted(relevant), 3)}; {len(run)} in the run, e.g. {preview(sorted(run), 3)})")
    values: dict[str, dict[str, float]] = {m: dict.fromkeys(relevant, 0.0) for m in metrics}
    for depth, group in _by_depth(parsed).items():
        scored = {qid: _by_order(_ranked(run[qid])[:depth]) for qid in overlap}
        evaluator = pytrec_eval.RelevanceEvaluator(relevant, _measure_specs([parsed[m] for m in group]))
        for qid, result in evaluator.evaluate(scored).items():
            for metric in group:
                values[metric][qid] = result[_result_key(*parsed[metric])]
    return values


def _ranked(hits):
    """Best first by score; equal scores keep their order in the list."""
    return sorted(hits, key=lambda hit: -hit[1])


def _by_order(hits) -> dict[str, float]:
    """A list's documents with strictly decreasing scores in list order, so trec_eval ranks them as listed."""
    return {doc_id: float(len(hits) - i) for i, (doc_id, _) in enumerate(hits)}


def mean(per_query_values: dict[str, dict[str, float]]) -> dict[str, float]:
    return {metric: sum(v.values()) / len(v) for metric, v in per_query_values.items()}


def _by_depth(parsed: dict[str, tuple[str, int]]) -> dict[int | None, list[str]]:
    """Metrics grouped by how much of the ranking they read: MRR@N reads only the top N (trec_eval's
    recip_rank has no cut-off), the others the whole run."""
    groups: dict[int | None, list[str]] = {}
    for metric, (family, cutoff) in parsed.items():
        groups.setdefault(cutoff if family == "MRR" else None, []).append(metric)
    return groups


def _measure_specs(parsed: list[tuple[str, int]]) -> set[str]:
    """pytrec_eval measure strings with the cut-offs asked for (its defaults lack e.g. ndcg_cut.1, recall.50)."""
    cutoffs: dict[str, set[int]] = {}
    for family, cutoff in parsed:
        cutoffs.setdefault(FAMILIES[family], set())
        if family != "MRR":
            cutoffs[FAMILIES[family]].add(cutoff)
    return {f"{name}.{','.join(map(str, sorted(cuts)))}" if cuts else name for name, cuts in cutoffs.items()}


def _result_key(family: str, cutoff: int) -> str:
    return "recip_rank" if family == "MRR" else f"{FAMILIES[family]}_{cutoff}"
