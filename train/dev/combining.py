"""Fitting the served ranking on the dev split: how much the reranker's score counts against the first stage's
own order (reranker/combiner.py: `reranker` + `position`), and whether it counts at all.

The served ranking weighs two signals only: the reranker's score and the candidate's place in the first stage's
list. Every rerank request carries both (documents arrive in the client's first-stage order), so the endpoints,
the adapters, `/search` and `eval` rank alike; and the weight shrinks towards the first stage's own order, which
holds on queries the dev split does not resemble. Reweighting the first stage's dense and BM25 scores is left
out: it fitted the dev queries' habits (BM25 far stronger on SciFact's train queries than on its test queries)
and lost to the first stage on test.

Each weight on a grid (steps of 1/20; 0 is the first stage as it ranks, 1 the reranker alone) is scored by dev
nDCG@10. The gate judges the fitting itself on queries it did not see: the dev queries are cut into folds, the
weight is fitted on all folds but one and scored on that one, and the reranker is kept only where these
out-of-fold scores beat the first stage's, by a one-sided paired randomization test over the dev queries
(p < 0.05). Then the weight fitted on every dev query is saved. Otherwise -- a small dev split, a reranker that
does not help on this domain, or a gain that holds only in-sample -- the served ranking is the first stage's own
order, and the run says so with the dev figures."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from rerankforge.eval.metrics import per_query
from rerankforge.eval.significance import compare
from rerankforge.reranker.combiner import Combiner

GRID_STEPS = 20
ALPHA = 0.05
FOLDS = 5
FOLD_SEED = 0
AS_RANKED = 0
"""The grid step of the first stage as it ranks (the reranker's weight 0)."""


@dataclass
class Fit:
    combiner: Combiner
    """What is saved: the reranker's weight against the first stage's order, or the order alone when the
    folds of dev do not show the reranker helps."""
    leans_on_first_stage: bool
    message: str
    """One line for the run's output and the model card: what was chosen and the dev evidence."""
    evidence: dict
    """For metrics.json: dev nDCG@10 of each signal alone, in and out of fold, the weights, the p-value."""


def fit_combination(candidates: dict[str, list[str]], signals: dict[str, dict[str, dict[str, float]]],
                    qrels: dict[str, dict[str, int]], where: str, first_stage: str | None = None,
                    alpha: float = ALPHA) -> Fit:
    """Fit the served ranking on the dev queries' `candidates` (each list in the first stage's order), judged by
    `qrels`. `signals`: signal -> query id -> {doc id -> score}, with "reranker" and, for the record, the
    retrievers' ("dense", "bm25"); only the reranker's are weighed, against the candidates' order. `where` names
    the dev split, `first_stage` the retriever that made the candidates (both saved); `alpha` the gate's level."""
    queries = list(candidates)
    reranker = signals["reranker"]

    def ranked_by(combiner: Combiner) -> dict[str, float]:
        run = {qid: combiner.rank(candidates[qid], {"reranker": reranker[qid], **{
            s: v[qid] for s, v in signals.items() if s != "reranker"}}) for qid in queries}
        return per_query(qrels, run, ("nDCG@10",))["nDCG@10"]

    def combiner(step: int) -> Combiner:
        weights = {"reranker": step / GRID_STEPS, "position": 1 - step / GRID_STEPS}
        return Combiner(weights, f"{where} ({len(queries)} queries)", first_stage)

    scored = {step: ranked_by(combiner(step)) for step in range(GRID_STEPS + 1)}
    best = best_step(scored, queries)
    out_of_fold = cross_fitted(scored, queries)
    as_ranked = scored[AS_RANKED]
    test = compare("nDCG@10", "first stage", as_ranked, "with reranker", out_of_fold, alternative="greater")
    value = {step: float(np.mean([scores[q] for q in queries])) if queries else 0.0 for step, scores in scored.items()}
    held_out = float(np.mean(list(out_of_fold.values()))) if queries else 0.0
    helps = best != AS_RANKED and held_out > value[AS_RANKED] and test.p_randomization < alpha
    with_reranker, chosen = combiner(best), combiner(best if helps else AS_RANKED)
    figures = (f"dev nDCG@10 {value[best]:.4f} with the reranker ({with_reranker.describe()}; {held_out:.4f} fitted "
               f"out of fold) vs {value[AS_RANKED]:.4f} for the first stage as it ranks, one-sided randomization "
               f"p = {test.p_randomization:.3g} out of fold over {len(queries)} queries")
    if helps:
        message = f"served ranking: {chosen.describe()}; {figures}"
    else:
        why = ("the reranker gets no weight" if best == AS_RANKED else
               f"the gain does not hold out of fold (p >= {alpha:g})" if held_out > value[AS_RANKED] else
               "the gain does not hold out of fold")
        message = (f"served ranking: the first stage as it ranks; on dev {why} -- {figures}. More judged queries "
                   f"(a larger dev split) or a better reranker would change this")
    alone = {"reranker": value[GRID_STEPS], "first_stage": value[AS_RANKED],
             **{s: _mean(ranked_by(Combiner({s: 1.0}))) for s in signals if s in ("dense", "bm25")}}
    evidence = {"weights": dict(chosen.weights), "first_stage": first_stage, "leans_on_first_stage": not helps,
                "dev_nDCG@10_alone": alone, "dev_nDCG@10_with_reranker": value[best],
                "dev_nDCG@10_out_of_fold": held_out, "weights_with_reranker": dict(with_reranker.weights),
                "dev_nDCG@10_first_stage_only": value[AS_RANKED], "p_value": test.p_randomization,
                "folds": min(FOLDS, len(queries)), "dev_queries": len(queries), "message": message}
    return Fit(chosen, not helps, message, evidence)


def best_step(scored: dict[int, dict[str, float]], queries: list[str]) -> int:
    """The grid step of the best mean nDCG@10 over `queries`; ties go to the smaller weight (nearer the first
    stage's own order)."""
    return max(scored, key=lambda step: (sum(scored[step][q] for q in queries), -step))


def folds_of(queries: list[str], folds: int = FOLDS) -> list[list[str]]:
    """The queries dealt into `folds` folds (at most one per query) in a shuffled order fixed by their ids."""
    order = sorted(queries)
    random.Random(FOLD_SEED).shuffle(order)
    count = max(1, min(folds, len(order)))
    return [order[i::count] for i in range(count)]


def cross_fitted(scored: dict[int, dict[str, float]], queries: list[str]) -> dict[str, float]:
    """Each query's nDCG@10 under the weight fitted without its fold: how the fitting does on queries it did not
    see. A single fold has nothing to fit on: the first stage's own scores."""
    groups = folds_of(queries)
    if len(groups) < 2:
        return {q: scored[AS_RANKED][q] for q in queries}
    out: dict[str, float] = {}
    for held in groups:
        seen = set(held)
        step = best_step(scored, [q for q in queries if q not in seen])
        out.update({q: scored[step][q] for q in held})
    return out


def _mean(values: dict[str, float]) -> float:
    return float(np.mean(list(values.values()))) if values else 0.0
