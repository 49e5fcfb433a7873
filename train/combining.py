"""Fitting the served ranking on the dev split: how much the reranker, the dense and the BM25 scores each
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
from rerankforge.reranker.combiner import Combiner, standardise

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
                    qrels: dict[str, dict[str, int]], where: str) -> Fit:
    """Fit the weights of `signals` (signal -> query id -> {doc id -> score}; "reranker" among them) on the
    dev queries' `candidates`, judged by `qrels`. `where` names the dev split in the saved combination."""
    names = list(signals)
    queries = list(candidates)
    z = {qid: np.array([standardise([signals[s][qid].get(d) for d in candidates[qid]]) for s in names]).T
         for qid in queries}

    def per_query_ndcg(weights: tuple[float, ...]) -> dict[str, float]:
        if sum(w > 0 for w in weights) == 1:  # one signal: its raw order, as Combiner.rank does
            alone = Combiner({names[weights.index(max(weights))]: 1.0})
            run = {qid: alone.rank(candidates[qid], {s: signals[s][qid] for s in names}) for qid in queries}
            return per_query(qrels, run, ("nDCG@10",))["nDCG@10"]
        run = {qid: list(zip(candidates[qid], (z[qid] @ np.array(weights)).tolist())) for qid in queries}
        return per_query(qrels, run, ("nDCG@10",))["nDCG@10"]

    grid = [w for w in itertools.product(range(GRID_STEPS + 1), repeat=len(names)) if sum(w) == GRID_STEPS]
    scored = {w: per_query_ndcg(tuple(x / GRID_STEPS for x in w)) for w in grid}
    value = {w: float(np.mean(list(v.values()))) for w, v in scored.items()}
    ranker = names.index("reranker")
    best = max(grid, key=lambda w: (value[w], w[ranker]))
    first_only = max((w for w in grid if w[ranker] == 0), key=lambda w: value[w])
    test = compare("nDCG@10", "first stage", scored[first_only], "with reranker", scored[best], alternative="greater")
    alone = {s: value[tuple(GRID_STEPS * (n == s) for n in names)] for s in names}

    def combiner(w: tuple[int, ...]) -> Combiner:
        return Combiner({s: x / GRID_STEPS for s, x in zip(names, w)}, f"{where} ({len(queries)} queries)")

    chosen, first = combiner(best), combiner(first_only)
    helps = best[ranker] > 0 and test.p_randomization < ALPHA
    figures = (f"dev nDCG@10 {value[best]:.4f} with the reranker ({chosen.describe()}) vs {value[first_only]:.4f} "
               f"without ({first.describe()}), one-sided randomization p = {test.p_randomization:.3g} over {len(queries)} "
               f"queries")
    if helps:
        message = f"served ranking: {chosen.describe()}; {figures}"
    else:
        why = "the reranker gets no weight" if best[ranker] == 0 else f"the gain is not significant (p >= {ALPHA})"
        message = (f"served ranking leans on the first stage ({first.describe()}): on dev {why} -- {figures}. "
                   f"More judged queries (a larger dev split) or a better reranker would change this")
    evidence = {"weights": dict((chosen if helps else first).weights), "leans_on_first_stage": not helps,
                "dev_nDCG@10_alone": alone, "dev_nDCG@10_with_reranker": value[best],
                "weights_with_reranker": dict(chosen.weights), "dev_nDCG@10_first_stage_only": value[first_only],
                "weights_first_stage_only": dict(first.weights), "p_value": test.p_randomization,
                "dev_queries": len(queries), "message": message}
    return Fit(chosen if helps else first, not helps, message, evidence)

