"""Is a difference between two systems real? Paired tests over per-query scores, through scipy.

Both systems are scored on the same queries, so every test is paired: a two-sided randomization
(permutation) test that swaps the two systems' scores per query, a paired t-test, and a bootstrap 95%
confidence interval of the mean difference. Resampling is seeded, so a report is reproducible."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

RESAMPLES = 10_000


@dataclass
class Comparison:
    """System B against system A on one metric, over the same queries."""

    metric: str
    a: str
    b: str
    mean_a: float
    mean_b: float
    difference: float
    """mean(B - A): positive means B is better."""
    relative: float | None
    """difference / mean_a (None when mean_a is 0)."""
    ci95: tuple[float, float]
    """Bootstrap 95% confidence interval of the mean difference (BCa)."""
    p_randomization: float
    """Paired randomization test: two-sided, or one-sided where `compare` was asked "greater"."""
    p_ttest: float
    """Two-sided paired t-test."""
    wins: int
    ties: int
    losses: int

    def stars(self, alpha: float = 0.05) -> str:
        return "**" if self.p_randomization < alpha / 5 else "*" if self.p_randomization < alpha else ""

    def as_dict(self) -> dict:
        return asdict(self)


def compare(metric: str, a: str, scores_a: dict[str, float], b: str, scores_b: dict[str, float],
            seed: int = 0, alternative: str = "two-sided") -> Comparison:
    """Compare B with A on the queries both were scored on (every judged query, in practice). `alternative`
    "greater" makes the randomization test one-sided: is B better than A (the t-test stays two-sided)."""
    from scipy import stats

    queries = sorted(scores_a.keys() & scores_b.keys())
    x = np.array([scores_a[q] for q in queries], dtype=float)
    y = np.array([scores_b[q] for q in queries], dtype=float)
    diff = y - x
    if np.allclose(diff, 0.0):
        p_perm = p_t = 1.0
        ci = (0.0, 0.0)
    else:
        p_perm = stats.permutation_test((x, y), _mean_difference, permutation_type="samples", vectorized=True,
                                        n_resamples=RESAMPLES, alternative=alternative, rng=seed).pvalue
        p_t = stats.ttest_rel(y, x).pvalue
        p_t = 1.0 if np.isnan(p_t) else p_t
        ci = bootstrap_ci(diff, seed)
    mean_a = float(x.mean())
    return Comparison(metric=metric, a=a, b=b, mean_a=mean_a, mean_b=float(y.mean()), difference=float(diff.mean()),
                      relative=float(diff.mean() / mean_a) if mean_a else None, ci95=ci,
                      p_randomization=float(p_perm), p_ttest=float(p_t),
                      wins=int((diff > 1e-12).sum()), ties=int((np.abs(diff) <= 1e-12).sum()),
                      losses=int((diff < -1e-12).sum()))


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% confidence interval of the mean of `values` (BCa; percentile when BCa degenerates)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.allclose(values, values[0]):
        return float(values.mean()), float(values.mean())
    result = stats.bootstrap((values,), np.mean, n_resamples=RESAMPLES, confidence_level=0.95, method="BCa",
                             rng=seed)
    low, high = result.confidence_interval
    if np.isnan(low) or np.isnan(high):
        result = stats.bootstrap((values,), np.mean, n_resamples=RESAMPLES, method="percentile", rng=seed)
        low, high = result.confidence_interval
    return float(low), float(high)


def _mean_difference(x, y, axis):
    return np.mean(y - x, axis=axis)
