"""Scores on a common scale: one normaliser for the hybrid first stage's fusion (min-max or z-score per list) and
the served ranking's signals (z-scores over a query's candidates)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NORMALIZATIONS = ("minmax", "zscore")


@dataclass(frozen=True)
class Normalizer:
    """One query's normalization of one component's list.

    Built from that list alone, so `apply` maps a raw score to the same scale whether the doc came
    from the list or from `score_pairs`. `floor` is what a doc missing from the list gets: the lowest
    normalized value in the list (0.0 for min-max), so absence never beats being ranked last."""

    method: str
    center: float
    scale: float
    floor: float
    empty: bool = False

    @classmethod
    def fit(cls, scores: Sequence[float], method: str) -> Normalizer:
        if not scores:  # the component found nothing (e.g. a stopword-only query for BM25): no say
            return cls(method, 0.0, 0.0, 0.0, empty=True)
        values = np.asarray(scores, dtype=np.float64)
        if method == "minmax":
            low, spread = float(values.min()), float(values.max() - values.min())
            return cls(method, low, spread, 0.0)
        # statistics' mean and deviation are exactly rounded: numpy's std of a constant list can be 1e-17, not 0,
        # which would spread equal scores to z = +-1
        mean, std = statistics.fmean(values.tolist()), statistics.pstdev(values.tolist())
        return cls(method, mean, std, (float(values.min()) - mean) / std if std > 0 else 0.0)

    def apply(self, score: float) -> float:
        """Normalized score, never below `floor` (a pair outside the list ranks with the missing docs)."""
        if self.empty:
            return self.floor
        if self.scale > 0:
            value = (score - self.center) / self.scale
        elif self.method == "minmax":  # all list scores equal: the list is the top, outsiders the floor
            value = 1.0 if score >= self.center else 0.0
        else:
            value = 0.0
        return max(value, self.floor)


def standardise(values: Sequence[float | None]) -> list[float]:
    """z-scores over the values present; a missing value (None) gets the lowest z-score. A constant (or
    single) list standardises to zeros: the signal cannot tell these candidates apart."""
    normalizer = Normalizer.fit([v for v in values if v is not None], "zscore")
    return [normalizer.floor if v is None else normalizer.apply(v) for v in values]
