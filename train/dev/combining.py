"""Fitting the served rankings on the dev split: how much the reranker's score, the first stage's order and its
dense and BM25 scores each count (reranker/combiner.py), and whether the reranker counts at all.

Two rankings are fitted, both saved in rerankforge.json:

- the request ranking: what a rerank request carries (documents in the client's first-stage order, and their
  text) -- what the rerank endpoints, the adapters and `Reranker.rerank(served=True)` rank by;
- the served ranking: the request ranking, or a weighting that also uses the first stage's dense and BM25
  scores, where those are at hand (`/search`, `/ask`, `eval`, the demo).

Each weighting on a grid (steps of 1/20 for two signals, 1/10 over four) is scored by dev nDCG@10. The gate judges
the fitting itself on queries it did not see: the dev queries are cut into folds, the weights are fitted on all
folds but one and scored on that one. First, the reranker weighed against the first stage's order (`reranker` +
`position`) is kept only where these out-of-fold scores beat the first stage as it ranks (one-sided paired
randomization test over the dev queries, p < 0.05), else it is the first stage's order. Then the weighting with
dense and BM25 scores is taken only where its out-of-fold scores beat that the same way: fewer signals unless the
gain is clear. It is the served ranking, and the request ranking too where it gives dense no weight and the
model gets the first stage's BM25 statistics (`request_bm25`): then a request's documents are scored for BM25
from their text (core/lexical.py). No further choice is made for requests, so a request ranking passed the same
two gates as the served one. The weights kept are the ones fitted on every dev query. A small dev split, a
reranker that does not help on this domain, or a gain that holds only in-sample leaves the first stage as it
ranks, and the run says so with the dev figures."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np

from rerankforge.eval.metrics import per_query
from rerankforge.eval.significance import compare
from rerankforge.reranker.combiner import RETRIEVER_SIGNALS, CandidateSignals, Combiner

ORDER_SIGNALS = ("reranker", "position")
"""What every rerank request carries: the reranker's scores of documents sent in first-stage order."""
GRID_STEPS = 20
WIDE_GRID_STEPS = 10
ALPHA = 0.05
FOLDS = 5
FOLD_SEED = 0

Weights = tuple[int, ...]


@dataclass
class Fit:
    combiner: Combiner
    """The served ranking (/search, eval): the request ranking, or a weighting with dense and BM25 scores where
    its out-of-fold gain over the request ranking is clear."""
    request: Combiner
    """The request ranking (rerank endpoints, adapters): the reranker against the first stage's order, or the order
    alone when the folds of dev do not show the reranker helps."""
    leans_on_first_stage: bool
    message: str
    """One line for the run's output and the model card: what was chosen and the dev evidence."""
    evidence: dict
    """For metrics.json: dev nDCG@10 of each signal alone, in and out of fold, the weights, the p-values."""


@dataclass
class Family:
    """Every weighting of some signals on a grid, scored on the dev queries: the best in-sample and out of fold."""
    signals: tuple[str, ...]
    steps: int
    scored: dict[Weights, dict[str, float]]
    best: Weights
    out_of_fold: dict[str, float]

    def alone(self, signal: str) -> Weights:
        """The grid point of one signal alone (`position` alone: the first stage as it ranks)."""
        return tuple(self.steps * (s == signal) for s in self.signals)

    @property
    def as_ranked(self) -> Weights:
        return self.alone("position")

    def mean(self, weights: Weights) -> float:
        return _mean(self.scored[weights])


def fit_combination(candidates: dict[str, list[str]], signals: dict[str, dict[str, dict[str, float]]],
                    qrels: dict[str, dict[str, int]], where: str, first_stage: str | None = None,
                    alpha: float = ALPHA, request_bm25: bool = False) -> Fit:
    """Fit both rankings on the dev queries' `candidates` (each list in the first stage's order), judged by `qrels`.
    `signals`: signal -> query id -> {doc id -> score}, with "reranker" and the retrievers' ("dense", "bm25") where
    at hand. `where` names the dev split, `first_stage` the retriever that made the candidates (both saved);
    `alpha` is the gates' level; `request_bm25`: rerank requests can be scored for BM25 (the model gets the
    corpus's statistics), so the request ranking may weigh it."""
    queries = list(candidates)
    prepared = {qid: CandidateSignals(candidates[qid], {s: v[qid] for s, v in signals.items()}) for qid in queries}

    def ranked_by(combiner: Combiner) -> dict[str, float]:
        run = {qid: prepared[qid].rank(combiner.weights) for qid in queries}
        return per_query(qrels, run, ("nDCG@10",))["nDCG@10"]

    def combiner(family: Family, weights: Weights) -> Combiner:
        return Combiner({s: w / sum(weights) for s, w in zip(family.signals, weights)},
                        f"{where} ({len(queries)} queries)", first_stage)

    narrow = fit_family(ORDER_SIGNALS, GRID_STEPS, ranked_by, queries)
    first = narrow.scored[narrow.as_ranked]
    request_test = compare("nDCG@10", "first stage", first, "with reranker", narrow.out_of_fold, alternative="greater")
    helps = (narrow.best != narrow.as_ranked and _mean(narrow.out_of_fold) > _mean(first)
             and request_test.p_randomization < alpha)
    request = combiner(narrow, narrow.best if helps else narrow.as_ranked)
    base, base_name = (narrow.out_of_fold, "request ranking") if helps else (first, "first stage")
    served, evidence = request, {}
    retrievers = tuple(s for s in RETRIEVER_SIGNALS if s in signals)
    if retrievers:
        wide = fit_family(ORDER_SIGNALS + retrievers, WIDE_GRID_STEPS, ranked_by, queries)
        wide_test = compare("nDCG@10", base_name, base, "with dense/BM25", wide.out_of_fold, alternative="greater")
        uses = any(w > 0 for s, w in zip(wide.signals, wide.best) if s in retrievers)
        if uses and _mean(wide.out_of_fold) > _mean(base) and wide_test.p_randomization < alpha:
            served = combiner(wide, wide.best)
        evidence.update({"weights_wide": dict(combiner(wide, wide.best).weights),
                         "dev_nDCG@10_wide": wide.mean(wide.best),
                         "dev_nDCG@10_wide_out_of_fold": _mean(wide.out_of_fold),
                         "p_value_wide": wide_test.p_randomization})
    if request_bm25 and served is not request and served.request_ready:  # dense has no weight: requests can
        request = served  # have it too, their documents' BM25 scored from the corpus's statistics
    leans = not served.uses_reranker
    figures = (f"dev nDCG@10 {narrow.mean(narrow.best):.4f} with the reranker against the order "
               f"({combiner(narrow, narrow.best).describe()}; {_mean(narrow.out_of_fold):.4f} fitted out of fold, "
               f"p = {request_test.p_randomization:.3g})")
    if retrievers:
        figures += (f", {evidence['dev_nDCG@10_wide']:.4f} with dense and BM25 too "
                    f"({Combiner(evidence['weights_wide']).describe()}; {evidence['dev_nDCG@10_wide_out_of_fold']:.4f} "
                    f"out of fold, p = {evidence['p_value_wide']:.3g} against the {base_name})")
    figures += (f", vs {_mean(first):.4f} for the first stage as it ranks; one-sided randomization tests out of fold "
                f"over {len(queries)} queries")
    if leans:
        message = (f"served ranking: the first stage as it ranks; on dev no gain holds out of fold -- {figures}. More "
                   f"judged queries (a larger dev split) or a better reranker would change this")
    else:
        message = f"served ranking: {served.describe()}; rerank requests: {request.describe()}; {figures}"
    alone = {"reranker": narrow.mean(narrow.alone("reranker")),
             **{s: wide.mean(wide.alone(s)) for s in retrievers}, "first_stage": _mean(first)}
    evidence.update({"weights": dict(served.weights), "request_weights": dict(request.weights),
                     "first_stage": first_stage, "leans_on_first_stage": leans, "dev_nDCG@10_alone": alone,
                     "dev_nDCG@10_with_reranker": narrow.mean(narrow.best),
                     "dev_nDCG@10_out_of_fold": _mean(narrow.out_of_fold),
                     "weights_with_reranker": dict(combiner(narrow, narrow.best).weights),
                     "dev_nDCG@10_first_stage_only": _mean(first), "p_value": request_test.p_randomization,
                     "folds": len(folds_of(queries)), "dev_queries": len(queries), "message": message})
    return Fit(served, request, leans, message, evidence)


def fit_family(signals: tuple[str, ...], steps: int, ranked_by, queries: list[str]) -> Family:
    """Every weighting of `signals` in steps of 1/`steps`, each query's dev nDCG@10 under it, the best, and the
    out-of-fold scores of fitting it."""
    grid = [w for w in itertools.product(range(steps + 1), repeat=len(signals)) if sum(w) == steps]
    scored = {w: ranked_by(Combiner({s: x / steps for s, x in zip(signals, w)})) for w in grid}
    position = signals.index("position")
    as_ranked = tuple(steps * (s == "position") for s in signals)
    return Family(signals, steps, scored, best_weights(scored, queries, position),
                  cross_fitted(scored, queries, position, as_ranked))


def best_weights(scored: dict[Weights, dict[str, float]], queries: list[str], position: int) -> Weights:
    """The weighting of the best mean nDCG@10 over `queries`; ties go to the most weight on the first stage's
    order (`position`-th signal), then the fewest signals."""
    return max(scored, key=lambda w: (sum(scored[w][q] for q in queries), w[position], -sum(x > 0 for x in w)))


def folds_of(queries: list[str], folds: int = FOLDS) -> list[list[str]]:
    """The queries dealt into `folds` folds (at most one per query) in a shuffled order fixed by their ids."""
    order = sorted(queries)
    random.Random(FOLD_SEED).shuffle(order)
    count = max(1, min(folds, len(order)))
    return [order[i::count] for i in range(count)]


def cross_fitted(scored: dict[Weights, dict[str, float]], queries: list[str], position: int,
                 as_ranked: Weights) -> dict[str, float]:
    """Each query's nDCG@10 under the weights fitted without its fold: how the fitting does on queries it did not
    see. A single fold has nothing to fit on: the first stage's own order (`as_ranked`)."""
    groups = folds_of(queries)
    if len(groups) < 2:
        return {q: scored[as_ranked][q] for q in queries}
    out: dict[str, float] = {}
    for held in groups:
        seen = set(held)
        weights = best_weights(scored, [q for q in queries if q not in seen], position)
        out.update({q: scored[weights][q] for q in held})
    return out


def _mean(values: dict[str, float]) -> float:
    return float(np.mean(list(values.values()))) if values else 0.0
