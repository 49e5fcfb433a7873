"""Hard-negative mining: for every judged (query, positive) pair, the first-stage candidates that
are not relevant but look it.

What a cross-encoder learns is decided here. Three guards keep real positives out of the negatives:
every judged positive of the query is excluded (not just the pair's own), so is any document whose
text equals a positive's (corpora carry duplicates), and candidates scoring too close to the
positive are dropped as likely unjudged relevant documents (false negatives)."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from rerankforge.core.errors import ConfigError
from rerankforge.core.rankings import Retriever
from .collection import Collection

RECALL_DEPTHS = (10, 50, 100)


@dataclass
class MiningConfig:
    """Which first-stage candidates become negatives."""

    num_negatives: int = field(default=8, metadata={"help": "Negatives per (query, positive) pair."})
    min_rank: int = field(
        default=1, metadata={"help": "Best first-stage rank a negative may have (1 = the top hit)."})
    max_rank: int = field(default=100, metadata={"help": "Worst first-stage rank a negative may have."})
    sampling: Literal["top", "random"] = field(
        default="top", metadata={"help": "top: the best-ranked valid candidates; random: a seeded sample of them."})
    relative_margin: float | None = field(
        default=0.05,
        metadata={"help": "Drop candidates scoring above positive_score - |positive_score| x margin "
                          "(likely false negatives; NV-Retriever's TopK-PercPos)."})
    absolute_margin: float | None = field(
        default=None, metadata={"help": "Drop candidates scoring above positive_score - margin."})
    max_score: float | None = field(default=None, metadata={"help": "Drop candidates scoring above this."})
    seed: int = field(default=42, metadata={"help": "Seed for random sampling."})

    def __post_init__(self) -> None:
        if self.num_negatives < 1:
            raise ConfigError(f"num_negatives must be >= 1, got {self.num_negatives}")
        if not 1 <= self.min_rank <= self.max_rank:
            raise ConfigError(f"need 1 <= min_rank <= max_rank, got min_rank={self.min_rank}, "
                              f"max_rank={self.max_rank}")
        if self.num_negatives > self.max_rank - self.min_rank + 1:
            raise ConfigError(f"num_negatives={self.num_negatives} cannot fit in ranks {self.min_rank}.."
                              f"{self.max_rank}; raise max_rank or lower num_negatives")
        if self.sampling not in ("top", "random"):
            raise ConfigError(f"sampling must be 'top' or 'random', got {self.sampling!r}")
        for name in ("relative_margin", "absolute_margin"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0 (or None to disable), got {value}")


@dataclass
class MinedExample:
    """One (query, positive) pair with its negatives, ids and first-stage scores (for distillation)."""

    query_id: str
    query: str
    positive_id: str
    positive: str
    negative_ids: list[str]
    negatives: list[str]
    positive_score: float
    negative_scores: list[float]
    positive_rank: int | None
    """First-stage rank of the positive (None: not in the retrieved depth)."""


@dataclass
class MiningResult:
    examples: list[MinedExample]
    summary: dict


def mine_negatives(collection: Collection, retriever: Retriever, config: MiningConfig) -> MiningResult:
    """Mine negatives for every judged (query, positive) pair of `collection`'s split."""
    started = time.perf_counter()
    queries = collection.split_queries()
    depth = max(config.max_rank, *RECALL_DEPTHS)
    run = retriever.search(queries, depth)
    positives = {qid: collection.positives(qid) for qid in queries}
    positive_scores = retriever.score_pairs(queries, positives)

    dropped = {"positive": 0, "same_text_as_positive": 0, "relative_margin": 0, "absolute_margin": 0,
               "max_score": 0}
    examples = []
    twins = _same_text_docs(collection)
    for qid, query in queries.items():
        hits = run.get(qid, [])
        ranks = {doc_id: rank for rank, (doc_id, _) in enumerate(hits, start=1)}
        excluded = {twin for p in positives[qid] for twin in twins.get(p, ())}
        for positive_id in positives[qid]:
            positive_score = positive_scores[qid][positive_id]
            candidates = []
            for rank, (doc_id, score) in enumerate(hits, start=1):
                if rank < config.min_rank or rank > config.max_rank:
                    continue
                if doc_id in positives[qid]:
                    reason = "positive"
                elif doc_id in excluded:
                    reason = "same_text_as_positive"
                else:
                    reason = _false_negative(score, positive_score, config)
                if reason:
                    dropped[reason] += 1
                else:
                    candidates.append((doc_id, score))
            chosen = _sample(candidates, config, key=f"{qid}\x00{positive_id}")
            examples.append(MinedExample(
                query_id=qid, query=query, positive_id=positive_id,
                positive=collection.doc_text(positive_id),
                negative_ids=[d for d, _ in chosen], negatives=[collection.doc_text(d) for d, _ in chosen],
                positive_score=float(positive_score), negative_scores=[float(s) for _, s in chosen],
                positive_rank=ranks.get(positive_id)))
    summary = _summary(collection, retriever, config, examples, dropped, depth,
                       time.perf_counter() - started)
    return MiningResult(examples, summary)


def _same_text_docs(collection: Collection) -> dict[str, set[str]]:
    """For each document whose text (after whitespace and case folding) another document shares, the
    ids of those others. One pass over the corpus, so the per-query check is a dictionary lookup."""
    groups: dict[str, list[str]] = {}
    for doc_id in collection.corpus:
        groups.setdefault(" ".join(collection.doc_text(doc_id).split()).casefold(), []).append(doc_id)
    return {doc_id: set(group) - {doc_id} for group in groups.values() if len(group) > 1 for doc_id in group}


def _false_negative(score: float, positive_score: float, config: MiningConfig) -> str | None:
    """The filter that rejects a candidate as a likely false negative, or None if it passes."""
    if config.max_score is not None and score > config.max_score:
        return "max_score"
    if config.absolute_margin is not None and score > positive_score - config.absolute_margin:
        return "absolute_margin"
    if config.relative_margin is not None and score > positive_score - abs(positive_score) * config.relative_margin:
        return "relative_margin"
    return None


def _sample(candidates: list[tuple[str, float]], config: MiningConfig, key: str) -> list[tuple[str, float]]:
    if config.sampling == "top" or len(candidates) <= config.num_negatives:
        return candidates[: config.num_negatives]
    # One generator per pair, seeded by the pair itself: the sample doesn't depend on query order.
    rng = random.Random(f"{config.seed}\x00{key}")
    picked = sorted(rng.sample(range(len(candidates)), config.num_negatives))
    return [candidates[i] for i in picked]


def _summary(collection: Collection, retriever: Retriever, config: MiningConfig, examples: list[MinedExample],
             dropped: dict, depth: int, seconds: float) -> dict:
    counts = [len(e.negative_ids) for e in examples]
    ranks = [e.positive_rank for e in examples]
    found = sorted(r for r in ranks if r is not None)
    return {
        "dataset": collection.name,
        "split": collection.split,
        "retriever": retriever.name,
        "queries": len({e.query_id for e in examples}),
        "examples": len(examples),
        "negatives_per_example": {"target": config.num_negatives, "mean": round(statistics.fmean(counts), 3),
                                  "min": min(counts), "max": max(counts)},
        "examples_short_of_negatives": sum(1 for c in counts if c < config.num_negatives),
        "candidates_dropped": dropped,
        "likely_false_negatives_dropped": sum(dropped[k] for k in ("relative_margin", "absolute_margin",
                                                                     "max_score")),
        "positive_recall": {f"@{k}": round(sum(1 for r in found if r <= k) / len(ranks), 4)
                            for k in RECALL_DEPTHS},
        "positive_rank": {"median_when_retrieved": statistics.median(found) if found else None,
                          f"not_in_top_{depth}": len(ranks) - len(found)},
        "settings": asdict(config),
        "seconds": round(seconds, 2),
    }
