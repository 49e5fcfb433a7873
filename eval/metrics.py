"""Standard IR metrics through pytrec_eval (the trec_eval code), so numbers equal trec_eval's."""

from __future__ import annotations

from rerankforge.data_prep.collection import Qrels
from rerankforge.data_prep.errors import DataError, preview
from rerankforge.data_prep.runs import Run

# Our names -> pytrec_eval measures. nDCG uses graded relevance as given in the qrels.
MEASURES = {
    "nDCG@1": "ndcg_cut.1", "nDCG@3": "ndcg_cut.3", "nDCG@5": "ndcg_cut.5", "nDCG@10": "ndcg_cut.10",
    "MRR@10": "recip_rank", "MAP@100": "map_cut.100",
    "R@10": "recall.10", "R@20": "recall.20", "R@50": "recall.50", "R@100": "recall.100",
}
DEFAULT_METRICS = ("nDCG@10", "MRR@10", "MAP@100", "R@10", "R@100")


def per_query(qrels: Qrels, run: Run, metrics: tuple[str, ...] = DEFAULT_METRICS) -> dict[str, dict[str, float]]:
    """metric -> {query id -> value} over the judged queries; a judged query missing from the run scores 0."""
    import pytrec_eval

    unknown = [m for m in metrics if m not in MEASURES]
    if unknown:
        raise DataError(f"unknown metrics {preview(unknown)}; known: {', '.join(MEASURES)}")
    judged = {qid: docs for qid, docs in qrels.items() if any(rel > 0 for rel in docs.values())}
    overlap = judged.keys() & run.keys()
    if not overlap:
        raise DataError(f"the run shares no query with the judged queries ({len(judged)} judged, "
                        f"{len(run)} in the run; run ids look like {preview(sorted(run), 3)})")
    values: dict[str, dict[str, float]] = {m: dict.fromkeys(judged, 0.0) for m in metrics}
    for depth, group in _by_depth(metrics).items():
        scored = {qid: {doc_id: score for doc_id, score in run[qid][:depth]} for qid in overlap}
        evaluator = pytrec_eval.RelevanceEvaluator(judged, _measure_specs(group))
        for qid, result in evaluator.evaluate(scored).items():
            for metric in group:
                values[metric][qid] = result[MEASURES[metric].replace(".", "_")]
    return values


def mean(per_query_values: dict[str, dict[str, float]]) -> dict[str, float]:
    return {metric: sum(v.values()) / len(v) for metric, v in per_query_values.items()}


def _by_depth(metrics: tuple[str, ...]) -> dict[int | None, list[str]]:
    """Metrics grouped by how much of the ranking they read: MRR@10 reads only the top 10
    (trec_eval's recip_rank has no cut-off), the others the whole run."""
    groups: dict[int | None, list[str]] = {}
    for metric in metrics:
        groups.setdefault(10 if metric == "MRR@10" else None, []).append(metric)
    return groups


def _measure_specs(metrics: list[str]) -> set[str]:
    """pytrec_eval measure strings with the cut-offs asked for (its defaults lack e.g. ndcg_cut.1, recall.50)."""
    cutoffs: dict[str, list[str]] = {}
    for metric in metrics:
        name, _, cutoff = MEASURES[metric].partition(".")
        cutoffs.setdefault(name, [])
        if cutoff:
            cutoffs[name].append(cutoff)
    return {f"{name}.{','.join(cuts)}" if cuts else name for name, cuts in cutoffs.items()}
