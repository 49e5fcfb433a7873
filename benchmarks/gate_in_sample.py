"""The gate rerankforge used before the fold gate (train/dev/combining.py), kept verbatim as the baseline of
benchmarks/gate_robustness.py: every weighting of reranker, dense and BM25 on a simplex grid, fitted and judged
on the same dev queries.

Fitting the served ranking on the dev split: how much the reranker, the dense and the BM25 scores each
count (reranker/combiner.py), and whether the reranker counts at all.

Every weighting on a grid over the simplex (steps of 1/20) is scored by dev nDCG@10 on the dev candidates.
The best one is kept only where dev shows the reranker earns its place: against the best weighting of the
first-stage signals alone, a one-sided paired randomization test over the dev queries (is the gain above
zero?) must give p < 0.05. Otherwise
-- a small dev split, or a reranker that does not help on this domain -- the saved combination leans on the
first stage alone, and the run says so with the dev figures."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rerankforge.eval.metrics import per_query
from rerankforge.eval.significance import compare
from rerankforge.core.scores import standardise
from rerankforge.reranker.combiner import Combiner

GRID_STEPS = 20
ALPHA = 0.05


@dataclass
class Fit:
    combiner: Combiner
    """What is saved: the best weighting with the reranker, or of the first stage alone when dev does not
    show the reranker helps."""
    leans_on_first_stage: bool
    message: str
    """One line for the run's output and the model card: what was chosen and the dev evidence."""
    evidence: dict
    """For metrics.json: dev nDCG@10 of each signal alone, of both best weightings, the p-value."""


def fit_combination(candidates: dict[str, list[str]], signals: dict[str, dict[str, dict[str, float]]],
                    qrels: dict[str, dict[str, int]], where: str, first_stage: str | None = None) -> Fit:
    """Fit the served ranking on the dev queries' `candidates`, judged by `qrels`. `signals`: signal -> query id
    -> {doc id -> score}, with "reranker", the retrievers' ("dense", "bm25") and, optionally, "first_stage" (the
    candidate list's own score: how the first stage ranks them as it is). Each step away from the default needs
    dev evidence (one-sided paired randomization test, p < ALPHA): a weighting of the retrievers' scores must
    beat the first stage as it ranks, and the best weighting with the reranker must beat the first stage's
    choice. `where` names the dev split, `first_stage` the retriever that made the candidates (both saved)."""
    names = [s for s in signals if s != "first_stage"]
    queries = list(candidates)
    z = {qid: np.array([standardise([signals[s][qid].get(d) for d in candidates[qid]]) for s in names]).T
         for qid in queries}

    def ranked_by(combiner: Combiner) -> dict[str, float]:
        run = {qid: combiner.rank(candidates[qid], {s: v[qid] for s, v in signals.items()}) for qid in queries}
        return per_query(qrels, run, ("nDCG@10",))["nDCG@10"]

    def per_query_ndcg(weights: tuple[float, ...]) -> dict[str, float]:
        if sum(w > 0 for w in weights) == 1:  # one signal: its raw order, as Combiner.rank does
            return ranked_by(Combiner({names[weights.index(max(weights))]: 1.0}))
        run = {qid: list(zip(candidates[qid], (z[qid] @ np.array(weights)).tolist())) for qid in queries}
        return per_query(qrels, run, ("nDCG@10",))["nDCG@10"]

    def combiner(weights: dict[str, float]) -> Combiner:
        return Combiner(weights, f"{where} ({len(queries)} queries)", first_stage)

    grid = [w for w in itertools.product(range(GRID_STEPS + 1), repeat=len(names)) if sum(w) == GRID_STEPS]
    scored = {w: per_query_ndcg(tuple(x / GRID_STEPS for x in w)) for w in grid}
    value = {w: float(np.mean(list(v.values()))) for w, v in scored.items()}
    ranker = names.index("reranker")
    best = max(grid, key=lambda w: (value[w], w[ranker]))
    weighted = max((w for w in grid if w[ranker] == 0), key=lambda w: value[w])
    alone = {s: value[tuple(GRID_STEPS * (n == s) for n in names)] for s in names}
    with_reranker = combiner({s: x / GRID_STEPS for s, x in zip(names, best)})

    base, base_scores = combiner({s: x / GRID_STEPS for s, x in zip(names, weighted)}), scored[weighted]
    evidence: dict = {}
    if "first_stage" in signals:  # the first stage as it ranks, unless dev shows a weighting of its scores beats it
        as_ranked = ranked_by(Combiner({"first_stage": 1.0}))
        alone["first_stage"] = float(np.mean(list(as_ranked.values())))
        reweighted = compare("nDCG@10", "first stage", as_ranked, "weighted", base_scores, alternative="greater")
        evidence["p_value_first_stage_weighting"] = reweighted.p_randomization
        if reweighted.p_randomization >= ALPHA:
            base, base_scores = combiner({"first_stage": 1.0}), as_ranked
    test = compare("nDCG@10", "first stage", base_scores, "with reranker", scored[best], alternative="greater")
    helps = best[ranker] > 0 and test.p_randomization < ALPHA
    base_value = float(np.mean(list(base_scores.values())))
    figures = (f"dev nDCG@10 {value[best]:.4f} with the reranker ({with_reranker.describe()}) vs {base_value:.4f} "
               f"without ({base.describe()}), one-sided randomization p = {test.p_randomization:.3g} over "
               f"{len(queries)} queries")
    if helps:
        message = f"served ranking: {with_reranker.describe()}; {figures}"
    else:
        why = "the reranker gets no weight" if best[ranker] == 0 else f"the gain is not significant (p >= {ALPHA})"
        message = (f"served ranking leans on the first stage ({base.describe()}): on dev {why} -- {figures}. "
                   f"More judged queries (a larger dev split) or a better reranker would change this")
    chosen = with_reranker if helps else base
    evidence.update({"weights": dict(chosen.weights), "first_stage": first_stage, "leans_on_first_stage": not helps,
                     "dev_nDCG@10_alone": alone, "dev_nDCG@10_with_reranker": value[best],
                     "weights_with_reranker": dict(with_reranker.weights), "dev_nDCG@10_first_stage_only": base_value,
                     "weights_first_stage_only": dict(base.weights), "p_value": test.p_randomization,
                     "dev_queries": len(queries), "message": message})
    return Fit(chosen, not helps, message, evidence)
