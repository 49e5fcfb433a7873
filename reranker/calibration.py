"""Calibration: a reranker's raw scores read as probabilities of relevance.

A cross-encoder's logits rank well but say little on their own: a sigmoid of them is not the chance that a
document is relevant. Platt scaling fits `p = sigmoid(scale * score + bias)` on judged candidates of the dev
split (never test), with Platt's smoothed targets so a few dozen positives don't push the fit to certainty.
The fit is saved in rerankforge.json (reranker/folder.py) and read back by every stage, so `min_relevance`
in serve means the same thing wherever the model runs. Expected calibration error (ECE) says how far the
probabilities are from the observed rates, before and after.

A probability threshold is hard to choose by hand (on the demo's dev split, 0.5 keeps precision 1.00 and recall
0.00), so the fit also records, for target precisions and recalls of 0.05 to 0.95, the threshold that reaches
each on dev (`targets_table`); `serve` and `/search` take `min_precision` / `min_recall` and read the threshold
from it (`Calibration.min_relevance_for`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rerankforge.core.errors import RerankforgeError

TARGETS = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""The precisions and recalls (0.05 .. 0.95) whose dev thresholds a calibration records."""


@dataclass(frozen=True)
class Calibration:
    """`p = sigmoid(scale * score + bias)`; the identity (1, 0) is a plain sigmoid of the raw score."""

    scale: float = 1.0
    bias: float = 0.0
    fitted_on: str | None = None
    """Where it was fitted (e.g. 'dev split (80 train queries, 4000 candidates, 97 relevant)')."""
    targets: dict | None = field(default=None, compare=False)
    """"precision" / "recall" -> {target ("0.80") -> the min_relevance that reaches it on dev}; None: not fitted."""

    def probability(self, scores) -> np.ndarray:
        z = self.scale * np.asarray(scores, dtype=np.float64) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))

    def min_relevance_for(self, precision: float | None = None, recall: float | None = None) -> float:
        """The probability threshold that reached `precision` (or kept `recall`) of the relevant candidates on the
        dev split, from `targets`; a target between the recorded ones takes the next stricter one (a precision or
        recall at least that asked)."""
        (metric, wanted), = [(m, v) for m, v in (("precision", precision), ("recall", recall)) if v is not None]
        table = (self.targets or {}).get(metric) or {}
        if not table:
            raise RerankforgeError(f"min_{metric}: this model records no dev thresholds (its calibration was not "
                                   f"fitted with them: `rerankforge calibrate --model DIR` fits them); pass "
                                   f"min_relevance instead")
        reached = sorted((float(t), threshold) for t, threshold in table.items() if float(t) >= wanted - 1e-9)
        if not reached:
            best = max(table, key=float)
            raise RerankforgeError(f"min_{metric}: no threshold reached {metric} {wanted:g} on the model's dev split "
                                   f"(the most is {best} at min_relevance {table[best]:.3f})")
        return reached[0][1]


SIGMOID = Calibration()
"""What an uncalibrated reranker's relevance scores are: the sigmoid of its logits (sentence-transformers'
CrossEncoder default)."""


def fit_platt(scores: Sequence[float], labels: Sequence[int], iterations: int = 100) -> Calibration:
    """Platt scaling with Platt's (1999) smoothed targets ((positives + 1) / (positives + 2) and
    1 / (negatives + 2)), by Newton's method with a backtracking line search on the log-loss (Lin, Lin & Weng
    2007): plain Newton steps overshoot when the scores nearly separate the classes, as a trained reranker's
    do. Needs at least one relevant and one non-relevant candidate, and scores that rank the relevant ones
    higher."""
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"expected as many labels as scores, got {y.shape} labels for {x.shape} scores")
    positives, negatives = int((y > 0).sum()), int((y <= 0).sum())
    if not positives or not negatives:
        raise ValueError(f"calibration needs relevant and non-relevant candidates, got {positives} relevant and "
                         f"{negatives} non-relevant")
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(theta: np.ndarray) -> float:  # -sum(t log p + (1 - t) log(1 - p)), p = sigmoid(z), computed stably
        z = theta[0] * x + theta[1]
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    theta = np.array([0.0, math.log((positives + 1) / (negatives + 1))])
    current = loss(theta)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(theta[0] * x + theta[1], -60.0, 60.0)))
        w = p * (1 - p)
        gradient = np.array([np.sum((p - target) * x), np.sum(p - target)])
        hessian = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-10:  # backtrack until the loss falls enough (Armijo)
            candidate = theta - size * step
            value = loss(candidate)
            if value <= current - 1e-4 * size * float(gradient @ step):
                break
            size /= 2
        else:
            break  # no step lowers the loss: converged as far as float precision goes
        theta, improvement, current = candidate, current - value, value
        if improvement < 1e-12 * max(1.0, abs(current)):
            break
    scale, bias = float(theta[0]), float(theta[1])
    if not scale > 0:
        raise ValueError(f"the scores do not rank relevant candidates above non-relevant ones (fitted scale "
                         f"{scale:.3g}): a calibration would invert the ranking")
    return Calibration(scale, bias)


def expected_calibration_error(probabilities: Sequence[float], labels: Sequence[int], bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over `bins` equal-width probability bins, weighted by how
    many candidates fall in each (Naeini et al. 2015)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = (np.asarray(labels) > 0).astype(np.float64)
    if not len(p):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.sum() / len(p) * abs(y[inside].mean() - p[inside].mean())
    return float(error)


def precision_recall_at(probabilities: Sequence[float], labels: Sequence[int], threshold: float) -> tuple[float, float]:
    """Of the candidates kept by `p >= threshold`: the share relevant (precision; 1.0 when none is kept), and
    the share of the relevant ones kept (recall)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels) > 0
    kept = p >= threshold
    precision = float(y[kept].mean()) if kept.any() else 1.0
    recall = float(kept[y].mean()) if y.any() else float("nan")
    return precision, recall


def min_relevance_table(probabilities: Sequence[float], labels: Sequence[int],
                        thresholds: Sequence[float]) -> dict[str, dict[str, float]]:
    """threshold ("0.5") -> {"precision", "recall"} of `precision_recall_at` each threshold."""
    return {f"{t:.1f}": dict(zip(("precision", "recall"), precision_recall_at(probabilities, labels, t)))
            for t in thresholds}


def targets_table(probabilities: Sequence[float], labels: Sequence[int],
                  targets: Sequence[float] = TARGETS) -> dict[str, dict[str, dict[str, float]]]:
    """"precision" / "recall" -> {target ("0.80") -> {"min_relevance", "precision", "recall"}}: for each target
    precision the lowest threshold whose kept candidates (p >= threshold) reach it -- the most recall at that
    precision --, for each target recall the highest threshold that keeps it -- the most precision. A target no
    threshold reaches is left out."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = (np.asarray(labels) > 0)[np.argsort(-p, kind="stable")]
    p = np.sort(p)[::-1]
    relevant = int(y.sum())
    if not len(p) or not relevant:
        return {"precision": {}, "recall": {}}
    cuts = np.flatnonzero(np.append(p[1:] < p[:-1], True))  # keep the top cut + 1: every p >= p[cut]
    kept = np.cumsum(y)[cuts]
    precision, recall = kept / (cuts + 1), kept / relevant
    table: dict[str, dict[str, dict[str, float]]] = {"precision": {}, "recall": {}}
    for target in targets:
        key = f"{target:.2f}"
        hits = np.flatnonzero(precision >= target - 1e-12)
        if hits.size:
            i = hits[-1]
            table["precision"][key] = {"min_relevance": float(p[cuts[i]]), "precision": float(precision[i]),
                                       "recall": float(recall[i])}
        hits = np.flatnonzero(recall >= target - 1e-12)
        if hits.size:
            i = hits[0]
            table["recall"][key] = {"min_relevance": float(p[cuts[i]]), "precision": float(precision[i]),
                                    "recall": float(recall[i])}
    return table


def thresholds_of(table: dict) -> dict[str, dict[str, float]]:
    """`targets_table`'s thresholds alone, as a Calibration's `targets` (and rerankforge.json) keep them."""
    return {metric: {t: v["min_relevance"] for t, v in rows.items()} for metric, rows in table.items()}


def targets_line(targets: dict) -> str:
    """What min_precision / min_recall mean on dev, e.g. 'precision 0.80 needs min_relevance 0.42 (recall 0.31)'."""
    parts = []
    for metric, other, wanted in (("precision", "recall", ("0.50", "0.80")), ("recall", "precision", ("0.90",))):
        for target in wanted:
            row = targets.get(metric, {}).get(target)
            if row:
                parts.append(f"{metric} {target} needs min_relevance {row['min_relevance']:.3f} ({other} "
                             f"{row[other]:.2f})")
            else:
                parts.append(f"no threshold reaches {metric} {target}")
    return "on dev " + ", ".join(parts) + " (serve: min_precision / min_recall)"


def relevance(scorer, scores) -> np.ndarray:
    """`scores` as probabilities of relevance: the scorer's calibration where it has one (a Reranker does),
    else the plain sigmoid."""
    return getattr(scorer, "probability", SIGMOID.probability)(scores)

