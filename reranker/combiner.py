"""The served ranking: how the reranker's score and the first stage's signals combine into one ranking.

A `Combiner` is a weight per signal -- `reranker` (the cross-encoder's raw score), `position` (the candidate's
place in the list as the first stage ranked it, as a reciprocal rank 1 / (60 + rank)), `dense` (the
bi-encoder's cosine), `bm25`, or `first_stage` (whatever score the candidate list itself carries) -- applied to
each query's candidates after standardising every signal over them (z-scores: the scales differ). The weights
are fitted on the dev split (train/dev/combining.py) and saved in rerankforge.json, so train's dev evaluation,
`rerankforge eval`, the demo, `serve`, `/search` and the rerank endpoints (for documents sent in first-stage
order) all rank the same way.

    Combiner({"reranker": 0.7, "position": 0.3}).rank(candidates, {"reranker": scores})

A rerank request carries documents in its client's first-stage order, and their text: `position` comes from the
order, and `bm25` from the text with the statistics of the corpus the reranker was fitted on (core/lexical.py,
saved with the model as bm25_statistics.json), the score the first stage's BM25 gives them. A ranking of
`reranker`, `position` and `bm25` alone is what a rerank request can be served with (`request_ready`).

One signal of weight 1 ranks by that signal's raw values (the reranker alone is the raw cross-encoder)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rerankforge.core.errors import DataError
from rerankforge.core.scores import standardise

SIGNALS = ("reranker", "position", "dense", "bm25", "first_stage")
POSITION_K = 60
"""`position`'s value for the candidate at rank r (from 1) is 1 / (POSITION_K + r), the reciprocal rank of RRF."""
REQUEST_SIGNALS = ("reranker", "position", "bm25")
"""What a rerank request carries: documents to score, in the order the client's first stage ranked them, and
their text (`bm25`: scored with the corpus's statistics, where the model has them)."""
RETRIEVER_SIGNALS = ("dense", "bm25")
"""Signals a first-stage retriever scores for any (query, document) pair (`Retriever.score_pairs`)."""


@dataclass(frozen=True)
class Combiner:
    weights: Mapping[str, float]
    """Signal -> weight (non-negative; only the ratios matter). Signals of weight 0 are dropped."""
    chosen_on: str | None = field(default=None, compare=False)
    """Where the weights were fitted, e.g. 'dev split (80 train queries)'; None: not fitted."""
    first_stage: str | None = field(default=None, compare=False)
    """The first stage whose candidates they were fitted on (hybrid, dense, bm25): what `serve` retrieves with
    by default, and what "first_stage" means. None: not recorded."""

    def __post_init__(self):
        check_weights(self.weights, "fusion_weights")
        object.__setattr__(self, "weights", {s: float(w) for s, w in self.weights.items() if w > 0})

    @classmethod
    def reranker_only(cls) -> Combiner:
        return cls({"reranker": 1.0})

    @classmethod
    def with_first_stage(cls, weight: float, chosen_on: str | None = None, first_stage: str | None = None) -> Combiner:
        """`weight` x reranker + (1 - weight) x the candidate list's own score (the one-number fusion weight
        of earlier rerankforge.json files and of `serve`'s `fusion_weight` key)."""
        if not 0 <= weight <= 1:
            raise DataError(f"fusion_weight: expected a number from 0 to 1, got {weight!r}")
        return cls({"reranker": weight, "first_stage": 1 - weight}, chosen_on, first_stage)

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(self.weights)

    @property
    def uses_reranker(self) -> bool:
        return "reranker" in self.weights

    @property
    def is_reranker_only(self) -> bool:
        return self.signals == ("reranker",)

    @property
    def request_ready(self) -> bool:
        """Whether a rerank request carries every signal it weighs (the reranker's score and the order)."""
        return all(s in REQUEST_SIGNALS for s in self.signals)

    @property
    def uses_bm25(self) -> bool:
        return "bm25" in self.weights

    def for_requests(self, bm25: bool = False) -> Combiner:
        """This ranking where a rerank request can apply it (`bm25`: the model has the corpus's BM25 statistics),
        else the reranker alone (a folder fitted before request rankings were: its dense weights need scores a
        request does not carry)."""
        return self if self.request_ready and (bm25 or not self.uses_bm25) else Combiner.reranker_only()

    def order(self, scores: Sequence[float], bm25: Sequence[float] | None = None) -> list[int]:
        """Indices of a list of documents best first, from the reranker's `scores` of them in the order sent and,
        where this ranking weighs it, their `bm25` scores (what the rerank endpoints and adapters rank by when
        the documents come in first-stage order)."""
        if not self.request_ready:
            raise DataError(f"the combination {self.describe()} needs scores a rerank request does not carry; "
                            f"expected only {', '.join(REQUEST_SIGNALS)}")
        if self.uses_bm25 and (bm25 is None or len(bm25) != len(scores)):
            raise DataError(f"the combination {self.describe()} needs a BM25 score for each of the "
                            f"{len(scores)} documents, got {'none' if bm25 is None else len(bm25)}")
        ids = [str(i) for i in range(len(scores))]
        signals = {"reranker": dict(zip(ids, map(float, scores)))}
        if self.uses_bm25:
            signals["bm25"] = dict(zip(ids, map(float, bm25)))
        return [int(i) for i, _ in self.rank(ids, signals)]

    def describe(self) -> str:
        """'0.60 reranker + 0.10 dense + 0.30 bm25', weights summing to 1."""
        total = sum(self.weights.values())
        return " + ".join(f"{w / total:.2f} {s}" for s, w in self.weights.items())

    def rank(self, candidates: Sequence[str], signals: Mapping[str, Mapping[str, float]]) -> list[tuple[str, float]]:
        """The candidates best first, by the weighted sum of their standardised signals; `signals` maps each
        signal this combiner uses to {doc id -> score} (`position` comes from the candidates' order). A candidate
        a signal has no score for gets that signal's lowest standardised value (ranked with its last). Ties keep
        the candidates' order."""
        missing = [s for s in self.signals if s not in signals and s != "position"]
        if missing:
            raise DataError(f"the combination {self.describe()} needs the signal(s) {', '.join(missing)}; got only "
                            f"{', '.join(signals) or 'none'}")
        return CandidateSignals(candidates, signals).rank(self.weights)


class CandidateSignals:
    """One query's candidates and their signals, each standardised once and kept: ranking them under many
    weightings (the dev split's grids) costs a weighted sum per weighting, not the z-scores again.
    `Combiner.rank` is this for one weighting."""

    def __init__(self, candidates: Sequence[str], signals: Mapping[str, Mapping[str, float]]):
        self.candidates = list(candidates)
        self.signals = signals
        self._standardised: dict[str, list[float]] = {}

    def values(self, name: str) -> Mapping[str, float]:
        if name == "position":
            return {d: 1 / (POSITION_K + r) for r, d in enumerate(self.candidates, 1)}
        return self.signals[name]

    def standardised(self, name: str) -> list[float]:
        if name not in self._standardised:
            values = self.values(name)
            self._standardised[name] = standardise([values.get(d) for d in self.candidates])
        return self._standardised[name]

    def rank(self, weights: Mapping[str, float]) -> list[tuple[str, float]]:
        """The candidates best first under `weights` (signal -> weight > 0); see `Combiner.rank`."""
        if len(weights) == 1:  # one signal: its raw values, so "reranker" alone is the raw cross-encoder
            (name,) = weights
            values = self.values(name)
            floor = min(values.values(), default=0.0)
            combined = [values.get(d, floor) for d in self.candidates]
        else:
            combined = [0.0] * len(self.candidates)
            for name, weight in weights.items():
                for i, value in enumerate(self.standardised(name)):
                    combined[i] += weight * value
        return sorted(zip(self.candidates, combined), key=lambda hit: -hit[1])


def check_weights(weights: object, where: str) -> None:
    """A non-empty {signal: weight} mapping of known signals and finite, non-negative weights, one positive."""
    if not isinstance(weights, Mapping) or not weights:
        raise DataError(f"{where}: expected an object of signal weights such as {{\"reranker\": 0.7, \"bm25\": "
                        f"0.3}}, got {weights!r}")
    for signal, weight in weights.items():
        if signal not in SIGNALS:
            raise DataError(f"{where}: unknown signal {signal!r}; expected some of {', '.join(SIGNALS)}")
        if type(weight) not in (int, float) or not math.isfinite(weight) or weight < 0:
            raise DataError(f"{where}: {signal}: expected a number >= 0, got {weight!r}")
    if not any(w > 0 for w in weights.values()):
        raise DataError(f"{where}: expected at least one weight above 0, got {dict(weights)!r}")
