"""Fusing the reranker's scores with the first stage's: the weight a trained reranker carries in its
rerankforge.json (chosen on its dev split), applied the same way by train's dev evaluation, eval and serve."""

from __future__ import annotations


def fuse(first_stage: list[tuple[str, float]], reranker: dict[str, float], weight: float) -> list[tuple[str, float]]:
    """Rank by `weight * z(reranker) + (1 - weight) * z(first stage)`, z standardising each query's
    scores (the two scales differ); weight 1.0 is the reranker alone."""
    import statistics

    def z(values: list[float]) -> list[float]:
        if len(values) < 2:
            return [0.0] * len(values)
        mu, sd = statistics.fmean(values), statistics.pstdev(values) or 1.0
        return [(v - mu) / sd for v in values]

    ids = [doc_id for doc_id, _ in first_stage]
    if weight >= 1.0:
        fused = [reranker[d] for d in ids]
    else:
        fused = [weight * r + (1 - weight) * f for r, f in zip(z([reranker[d] for d in ids]),
                                                               z([s for _, s in first_stage]))]
    return sorted(zip(ids, fused), key=lambda hit: -hit[1])
