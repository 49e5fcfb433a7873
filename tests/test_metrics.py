"""IR metrics: every advertised cut-off is computed, with hand-checked values."""

import math

import pytest


def test_every_metric_cutoff_is_computed():
    """pytrec_eval's default cut-offs lack nDCG@1/@3 and recall@50: each must still come out (hand values)."""
    from rerankforge.eval.metrics import MEASURES, mean, per_query

    qrels = {"q": {"a": 1, "z": 1}}
    run = {"q": [("b", 3.0), ("a", 2.0)] + [(f"n{i}", 1.0 - i / 100) for i in range(60)] + [("z", -1.0)]}
    values = mean(per_query(qrels, run, tuple(MEASURES)))
    assert values["nDCG@1"] == 0.0 and values["R@50"] == 0.5 and values["R@100"] == 1.0
    assert values["nDCG@3"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert values["MRR@10"] == 0.5
