"""What a reranker is worth on a collection: first stage vs reranked on the same candidates.

`evaluate` computes everything a report holds -- metrics of every ranking, the ceiling a reranker of
that depth can reach, gains with significance, the per-query view, metric vs reranking depth, the
token-budget view for the top-n passed to an LLM, and reranking latency -- and returns it as one
`Report`; `report_files.write_report` turns it into files."""

from __future__ import annotations

import statistics
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

from rerankforge.core.errors import DataError
from rerankforge.core.processes import processes
from rerankforge.data_prep.collection import Collection
from rerankforge.core.rankings import Run
from rerankforge.reranker.calibration import (SIGMOID, expected_calibration_error, min_relevance_table,
                                              precision_recall_at)
from rerankforge.reranker.combiner import RETRIEVER_SIGNALS, Combiner
from rerankforge.reranker.scoring import Reranker

from .metrics import judged, mean, parse_metric, per_query
from .significance import Comparison, bootstrap_ci, compare

REPORT_METRICS = ("nDCG@1", "nDCG@3", "nDCG@5", "nDCG@10", "MRR@10", "MAP@100")


@dataclass
class EvalSettings:
    """How deep to rerank and what to measure."""

    depth: int = 50
    """Main reranking depth: each reranker rescores the first stage's top-`depth` (tables, significance)."""
    ks: tuple[int, ...] = (10, 20, 50, 100)
    """Depths of the metric-vs-depth curve (the main depth is always one of them)."""
    top_ns: tuple[int, ...] = (1, 3, 5, 10)
    """Passages handed to an LLM: hit rate and tokens sent for each n."""
    primary: str = "nDCG@10"
    """The metric that significance tests, the per-query view and the depth curve use."""
    metrics: tuple[str, ...] = REPORT_METRICS
    """Metrics of the main table (recall at each depth is added as the ceiling)."""
    regressions: int = 10
    """Worst per-query regressions listed per reranked ranking."""
    seed: int = 0
    """Seeds the randomization tests and bootstrap resampling."""

    def __post_init__(self):
        for metric in (self.primary, *self.metrics):
            parse_metric(metric)
        self.ks = tuple(sorted(set(self.ks) | {self.depth}))
        self.top_ns = tuple(sorted(set(self.top_ns)))
        if min(self.ks) < 1 or min(self.top_ns) < 1:
            raise DataError(f"depths and top-n must be positive, got k={self.ks}, top-n={self.top_ns}")

    @property
    def max_depth(self) -> int:
        return max(self.ks)

    @property
    def budget_ns(self) -> range:
        """Every n from 1 to the largest top-n: the budget view draws the whole curve, not just `top_ns`."""
        return range(1, max(self.top_ns) + 1)


@dataclass
class System:
    """One ranking of the judged queries: a first stage, or a reranker applied to one."""

    name: str
    first_stage: str
    reranker: str | None = None
    combination: str | None = None
    """How the reranked ranking combines its signals (Combiner.describe); None for a first stage."""
    run: Run = field(default_factory=dict, repr=False)
    per_query: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    """metric -> {query id -> value}."""
    means: dict[str, float] = field(default_factory=dict)
    """Over every judged query of the split; one the first stage did not rank scores 0."""
    ci95: tuple[float, float] = (0.0, 0.0)
    """Bootstrap 95% confidence interval of the primary metric's mean."""
    covered: int = 0
    """Judged queries its first stage ranked: fewer than all when a run file covers only some."""
    covered_means: dict[str, float] = field(default_factory=dict)
    """Means over those covered queries only (what trec_eval reports for a run, which averages over the
    run's queries). Equal to `means` when the first stage covers every judged query."""

    @property
    def is_first_stage(self) -> bool:
        return self.reranker is None


@dataclass
class Regression:
    query_id: str
    query: str
    before: float
    after: float
    rank_before: int | None
    """Rank of the query's best-placed relevant document in the first stage (None: not retrieved)."""
    rank_after: int | None


@dataclass
class Latency:
    reranker: str
    depth: int
    queries: int
    p50_ms: float
    p95_ms: float
    pairs_per_s: float
    device: str
    batch_size: int
    precision: str  # fp32, bf16, fp16 or int8: what the reranker scored in
    backend: str = "torch"  # what ran the forward pass: torch, onnx or onnx-int8 (reranker/backends.py)


@dataclass
class CalibrationView:
    """How well a reranker's scores read as probabilities on this split: every candidate of the main depth of
    the first first stage, relevant where the qrels judge it so."""
    reranker: str
    candidates: int
    relevant: int
    calibration: str
    """Where the model's calibration was fitted (its rerankforge.json), or "none" (plain sigmoid)."""
    ece_sigmoid: float
    """Expected calibration error of the plain sigmoid of the raw scores (10 bins)."""
    ece_calibrated: float | None
    """The same for the model's calibration; None where it has none."""
    min_relevance: dict[str, dict[str, float]]
    """threshold -> {"precision", "recall"} of the candidates kept by probability >= threshold."""
    targets: dict[str, dict[str, float]] = field(default_factory=dict)
    """What `min_precision` / `min_recall` keep here: "precision 0.80" -> {"min_relevance" (the model's dev
    threshold for it), "precision", "recall" (on this split)}, for the targets TARGET_VIEW names."""


@dataclass
class Report:
    collection: str
    split: str
    queries: int
    settings: EvalSettings
    systems: list[System]
    ceiling: dict[str, dict[str, float]]
    """first stage -> {"R@k": recall of its top-k, "nDCG@10@k": the best nDCG@10 a reranker of depth k can reach}."""
    comparisons: list[Comparison]
    regressions: dict[str, list[Regression]]
    """reranked system -> its worst regressions against its first stage."""
    depth_curve: dict[str, dict[int, float]]
    """system (first stages, rerankers, "<first stage> ceiling") -> {k -> primary metric when reranking the top-k}."""
    budget: dict[str, dict[int, dict[str, float]]]
    """system -> {n -> {"hit_rate", "tokens"}} for n = 1..max(top_ns): what the top-n handed to an LLM holds
    and costs."""
    latency: list[Latency]
    tokenizer: str
    calibration: list[CalibrationView] = field(default_factory=list)

    def partly_covered(self) -> list[System]:
        """First stages that rank only some of the judged queries: their means over all judged queries
        count the others as 0, so the report gives both views."""
        return [s for s in self.systems if s.is_first_stage and s.covered < self.queries]


def evaluate(collection: Collection, first_stages: dict[str, Run], rerankers: list[Reranker],
             settings: EvalSettings, progress=print,
             signals: dict[str, dict[str, dict[str, float]]] | None = None,
             rerank: list[str] | None = None) -> Report:
    """Rerank every first stage with every reranker, on the same candidates, and measure it all: each reranker
    alone, and its served ranking (its combination with the first stage's signals) where it carries one.
    `signals`: "dense" / "bm25" -> query id -> {doc id -> score} of the candidates, for combinations that use
    them (`retriever_signals`). `rerank`: the first stages the rerankers rerank (default: every one)."""
    signals = signals or {}
    unknown = [name for name in rerank or [] if name not in first_stages]
    if unknown:
        raise DataError(f"--rerank: expected names of the first stages ({', '.join(first_stages)}), got "
                        f"{', '.join(unknown)}")
    reranked_stages = [name for name in first_stages if rerank is None or name in rerank]
    qrels = judged(collection.qrels)
    queries = collection.queries
    candidates = {name: {qid: [d for d, _ in first_stages[name].get(qid, [])[:settings.max_depth]] for qid in qrels}
                  for name in reranked_stages}
    scores, latency = {}, []
    for reranker in rerankers:
        progress(f"reranking with {reranker.name} (top-{settings.max_depth} of {', '.join(reranked_stages)})")
        scores[reranker.name], timing = _score_all(reranker, candidates, queries, collection.doc_text)
        latency.append(timing)

    systems, curve, ceiling = [], {}, {}
    for fs_name, run in first_stages.items():
        first = {qid: run.get(qid, []) for qid in qrels}
        covered = [qid for qid in qrels if qid in run]
        systems.append(_system(fs_name, fs_name, None, None, first, collection, settings, covered))
        curve[fs_name] = dict.fromkeys(settings.ks, systems[-1].means[settings.primary])
        oracle = {k: _oracle(first, qrels, k) for k in settings.ks}
        curve[f"{fs_name} ceiling"] = {k: _metric(collection, oracle[k], settings.primary) for k in settings.ks}
        recall = mean(per_query(collection.qrels, first, tuple(f"R@{k}" for k in settings.ks)))
        ceiling[fs_name] = {**recall, **{f"{settings.primary}@{k}": curve[f"{fs_name} ceiling"][k] for k in settings.ks}}
        for reranker in rerankers if fs_name in reranked_stages else []:
            for combiner in _variants(reranker):
                name = _system_name(fs_name, reranker, combiner)
                reranked = {k: _reranked(first, {"reranker": scores[reranker.name], **signals}, k, combiner)
                            for k in settings.ks}
                systems.append(_system(name, fs_name, reranker.name, combiner.describe(), reranked[settings.depth],
                                       collection, settings, covered))
                curve[name] = {k: _metric(collection, reranked[k], settings.primary) for k in settings.ks}

    comparisons, regressions = _significance(systems, settings, collection)
    budget = _budget(systems, collection, settings, rerankers)
    main = candidates[reranked_stages[0]]
    views = [_calibration_view(r, scores[r.name], main, qrels, settings.depth) for r in rerankers]
    return Report(collection=collection.name, split=collection.split, queries=len(qrels), settings=settings,
                  systems=systems, ceiling=ceiling, comparisons=comparisons, regressions=regressions,
                  depth_curve=curve, budget=budget, latency=latency,
                  tokenizer=_tokenizer_name(rerankers), calibration=[v for v in views if v is not None])


MIN_RELEVANCE_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)
TARGET_VIEW = (("precision", "0.50"), ("precision", "0.80"), ("recall", "0.50"), ("recall", "0.90"))


def _calibration_view(reranker: Reranker, scores: dict[str, dict[str, float]], candidates: dict[str, list[str]],
                      qrels: dict[str, dict[str, int]], depth: int) -> CalibrationView | None:
    flat = [(scores[qid][d], int(qrels[qid].get(d, 0) > 0)) for qid, docs in candidates.items() for d in docs[:depth]]
    if not flat:
        return None
    values, labels = [v for v, _ in flat], [y for _, y in flat]
    calibration = getattr(reranker, "calibration", SIGMOID)
    fitted = (calibration.scale, calibration.bias) != (SIGMOID.scale, SIGMOID.bias)
    probabilities = calibration.probability(values)
    return CalibrationView(
        reranker=reranker.name, candidates=len(values), relevant=sum(labels),
        calibration=calibration.fitted_on or ("fitted" if fitted else "none"),
        ece_sigmoid=expected_calibration_error(SIGMOID.probability(values), labels),
        ece_calibrated=expected_calibration_error(probabilities, labels) if fitted else None,
        min_relevance=min_relevance_table(probabilities, labels, MIN_RELEVANCE_THRESHOLDS),
        targets=_targets_view(calibration, probabilities, labels))


def _targets_view(calibration, probabilities, labels) -> dict[str, dict[str, float]]:
    """The model's dev thresholds for TARGET_VIEW's targets, and what each keeps on this split."""
    view = {}
    for metric, target in TARGET_VIEW:
        threshold = ((calibration.targets or {}).get(metric) or {}).get(target)
        if threshold is not None:
            precision, recall = precision_recall_at(probabilities, labels, threshold)
            view[f"{metric} {target}"] = {"min_relevance": threshold, "precision": precision, "recall": recall}
    return view


def _score_all(reranker: Reranker, candidates: dict[str, dict[str, list[str]]], queries: dict[str, str],
               doc_text) -> tuple[dict[str, dict[str, float]], Latency]:
    """Scores of every (query, candidate) pair of every first stage, each pair scored once. The first
    first stage is scored query by query and timed (the serving view); the other stages' extra
    candidates are scored in one length-sorted pass."""
    names = list(candidates)
    team = processes()  # under a launcher, each process scores a share of the queries and of the extra pairs
    main = candidates[names[0]]
    part = {qid: main[qid] for qid in team.share(list(main))}
    scores, seconds = (team.gather_dict(found, list(main)) for found in reranker.score_timed(part, queries, doc_text))
    extra = [(qid, d) for name in names[1:] for qid, docs in candidates[name].items()
             for d in docs if d not in scores[qid]]
    extra = list(dict.fromkeys(extra))
    if extra:
        share = team.share(extra)
        values = team.gather(list(map(float, reranker.score([(queries[q], doc_text(d)) for q, d in share]))))
        for (qid, doc_id), value in zip(extra, values):
            scores[qid][doc_id] = float(value)
    timed = [s for qid, s in seconds.items() if candidates[names[0]][qid]]
    pairs = sum(len(docs) for docs in candidates[names[0]].values())
    backend = getattr(reranker, "backend", None)  # None: a scorer with only a torch model (a test double)
    device = _device_name(next(reranker.model.parameters()).device) if reranker.model is not None else "cpu"
    return scores, Latency(reranker=reranker.name, depth=max(map(len, candidates[names[0]].values()), default=0),
                           queries=len(timed), p50_ms=1000 * float(np.percentile(timed, 50)),
                           p95_ms=1000 * float(np.percentile(timed, 95)), pairs_per_s=pairs / sum(timed),
                           device=device, batch_size=reranker.batch_size,
                           precision=reranker.precision.name, backend=getattr(backend, "name", "torch"))


def retriever_signals(rerankers: list[Reranker]) -> list[str]:
    """The first-stage retrievers ("dense", "bm25") whose scores the rerankers' served and request rankings
    combine."""
    return [s for s in RETRIEVER_SIGNALS if any(s in c.signals for r in rerankers for c in _variants(r))]


def _variants(reranker: Reranker) -> list[Combiner]:
    """The reranker alone, its served ranking where it combines the reranker with other signals, and its request
    ranking (what the rerank endpoints serve documents sent in first-stage order) where that differs from both."""
    alone = Combiner.reranker_only()
    request = getattr(reranker, "request_combiner", alone)
    variants = [alone]
    for combiner in (reranker.combiner, request):
        if combiner not in variants:
            variants.append(combiner)
    return variants


REQUEST_ORDER = " (served, request order)"
"""The system-name suffix of a reranker's request ranking, where it differs from its served ranking."""


def _system_name(first_stage: str, reranker: Reranker, combiner: Combiner) -> str:
    if combiner.is_reranker_only:
        return f"{first_stage} >> {reranker.name}"
    is_request = combiner != reranker.combiner
    return f"{first_stage} >> {reranker.name}" + (REQUEST_ORDER if is_request else " (served)")


def _reranked(first: Run, signals: dict[str, dict[str, dict[str, float]]], depth: int, combiner: Combiner) -> Run:
    """The top-`depth` ranked by `combiner` over `signals` (signal -> query id -> {doc id -> score}; the first
    stage's own score is signal "first_stage"), then the first stage's remainder in its own order (so recall
    below the reranking depth stays comparable); scores decrease down the list, as TREC files need."""
    out: Run = {}
    for qid, hits in first.items():
        by_signal = {name: values.get(qid, {}) for name, values in signals.items()}
        head = combiner.rank([d for d, _ in hits[:depth]], {**by_signal, "first_stage": dict(hits)}) if hits else []
        floor = min((s for _, s in head), default=0.0)
        tail = [(doc_id, floor - 1.0 - i) for i, (doc_id, _) in enumerate(hits[depth:])]
        out[qid] = head + tail
    return out


def _oracle(first: Run, qrels: dict[str, dict[str, int]], depth: int) -> Run:
    """The best a reranker of this depth can do: the top-`depth` sorted by relevance grade."""
    out: Run = {}
    for qid, hits in first.items():
        head = sorted(hits[:depth], key=lambda hit: -qrels[qid].get(hit[0], 0))
        out[qid] = [(doc_id, float(len(hits) - i)) for i, (doc_id, _) in enumerate(head + hits[depth:])]
    return out


def _metric(collection: Collection, run: Run, metric: str) -> float:
    return mean(per_query(collection.qrels, run, (metric,)))[metric]


def _system(name: str, first_stage: str, reranker: str | None, combination: str | None, run: Run,
            collection: Collection, settings: EvalSettings, covered: list[str]) -> System:
    hits = (f"Hit@{n}" for n in settings.budget_ns)
    metrics = tuple(dict.fromkeys((settings.primary, *settings.metrics, *hits)))
    values = per_query(collection.qrels, run, metrics, run_name=name)
    system = System(name=name, first_stage=first_stage, reranker=reranker, combination=combination, run=run,
                    per_query=values, means=mean(values), covered=len(covered),
                    covered_means=mean({m: {qid: by_query[qid] for qid in covered} for m, by_query in values.items()}))
    system.ci95 = bootstrap_ci(np.array(list(values[settings.primary].values())), settings.seed)
    return system


def _significance(systems: list[System], settings: EvalSettings, collection: Collection):
    """Each reranked ranking against its first stage and every other first stage (is it better than the best
    of them?), and reranked rankings of one first stage against each other; with the worst per-query
    regressions against its first stage."""
    metric = settings.primary
    comparisons, regressions = [], {}
    firsts = [s for s in systems if s.is_first_stage]
    for first in firsts:
        reranked = [s for s in systems if s.first_stage == first.name and not s.is_first_stage]
        for system in reranked:
            for other in [first] + [f for f in firsts if f is not first]:  # its own first stage, then the others
                comparisons.append(compare(metric, other.name, other.per_query[metric], system.name,
                                           system.per_query[metric], settings.seed))
            regressions[system.name] = _worst(first, system, collection, settings)
        for i, a in enumerate(reranked):
            for b in reranked[i + 1:]:
                comparisons.append(compare(metric, a.name, a.per_query[metric], b.name, b.per_query[metric],
                                           settings.seed))
    return comparisons, regressions


def _worst(first: System, system: System, collection: Collection, settings: EvalSettings) -> list[Regression]:
    metric = settings.primary
    before, after = first.per_query[metric], system.per_query[metric]
    losers = sorted((qid for qid in before if after[qid] < before[qid] - 1e-12),
                    key=lambda qid: (after[qid] - before[qid], qid))[:settings.regressions]
    return [Regression(query_id=qid, query=collection.queries[qid], before=before[qid], after=after[qid],
                       rank_before=first_relevant_rank(first.run, collection, qid),
                       rank_after=first_relevant_rank(system.run, collection, qid))
            for qid in losers]


def first_relevant_rank(run: Run, collection: Collection, qid: str) -> int | None:
    """1-based rank of the query's best-placed relevant document, None when none was retrieved."""
    relevant = {d for d, rel in collection.qrels.get(qid, {}).items() if rel > 0}
    return next((rank for rank, (doc_id, _) in enumerate(run.get(qid, []), 1) if doc_id in relevant), None)


def _budget(systems: list[System], collection: Collection, settings: EvalSettings,
            rerankers: list[Reranker]) -> dict[str, dict[int, dict[str, float]]]:
    """For each n: the share of queries with a relevant passage in the top-n, and the mean tokens those
    n passages cost (counted with the first reranker's tokenizer, whitespace words without one)."""
    count = _token_counter(rerankers[0].tokenizer if rerankers else None, collection)
    budget = {}
    for system in systems:
        budget[system.name] = {
            n: {"hit_rate": system.means[f"Hit@{n}"],
                "tokens": statistics.fmean(sum(count(d) for d, _ in system.run[qid][:n]) for qid in system.run)}
            for n in settings.budget_ns}
    return budget


def _tokenizer_name(rerankers: list[Reranker]) -> str:
    tokenizer = rerankers[0].tokenizer if rerankers else None
    return "whitespace" if tokenizer is None else Path(tokenizer.name_or_path).name or tokenizer.name_or_path


def _token_counter(tokenizer, collection: Collection):
    cache: dict[str, int] = {}

    def count(doc_id: str) -> int:
        if doc_id not in cache:
            text = collection.doc_text(doc_id)
            cache[doc_id] = (len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) if tokenizer is not None
                             else len(text.split()))
        return cache[doc_id]

    return count


def _device_name(device) -> str:
    import os
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {os.cpu_count()} cores)"
