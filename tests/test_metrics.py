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


def test_a_list_is_ranked_by_score_and_equal_scores_rank_as_listed():
    """Ties stay in the list's order (the reranker's ties in the first stage's order, as the endpoints answer
    them); trec_eval would put "b" first (doc id descending). An unsorted list is still ranked by its scores."""
    from rerankforge.eval.metrics import per_query

    qrels = {"q": {"a": 1}}
    assert per_query(qrels, {"q": [("a", 1.0), ("b", 1.0)]}, ("MRR@10",))["MRR@10"]["q"] == 1.0
    assert per_query(qrels, {"q": [("b", 1.0), ("a", 1.0)]}, ("MRR@10",))["MRR@10"]["q"] == 0.5
    assert per_query(qrels, {"q": [("b", 0.1), ("c", 0.5), ("a", 2.0)]}, ("MRR@1",))["MRR@1"]["q"] == 1.0
    # the cut-off applies to the ranking, not to the list as given
    assert per_query(qrels, {"q": [("b", 0.1), ("c", 0.5), ("a", 2.0)]}, ("R@1",))["R@1"]["q"] == 1.0
