"""The served ranking: combining the reranker with the first stage's signals, and fitting it on a dev split."""

import random
import re

import pytest

from rerankforge.core.errors import DataError
from rerankforge.core.scores import standardise
from rerankforge.reranker.combiner import Combiner
from rerankforge.reranker.folder import RerankerSettings, read_settings, write_settings
from rerankforge.training.dev.combining import fit_combination


def test_one_signal_ranks_by_its_raw_values_and_ties_keep_the_candidates_order():
    ranked = Combiner({"reranker": 1.0}).rank(["a", "b", "c", "d"], {"reranker": {"a": 0.5, "b": 2.0, "c": 0.5}})
    assert ranked == [("b", 2.0), ("a", 0.5), ("c", 0.5), ("d", 0.5)]  # d has no score: the list's lowest


def test_signals_are_standardised_then_weighted():
    signals = {"reranker": {"a": 10.0, "b": 0.0, "c": 5.0}, "bm25": {"a": 0.0, "b": 300.0, "c": 150.0}}
    # the BM25 scale is 30x the reranker's; standardised, equal weights cancel exactly: a, b tie at 0, c at 0
    tied = Combiner({"reranker": 1, "bm25": 1}).rank(["a", "b", "c"], signals)
    assert [round(score, 9) for _, score in tied] == [0.0, 0.0, 0.0]
    leaning = Combiner({"reranker": 0.7, "bm25": 0.3}).rank(["a", "b", "c"], signals)
    assert [d for d, _ in leaning] == ["a", "c", "b"]
    assert Combiner({"reranker": 0.2, "bm25": 0.8}).rank(["a", "b", "c"], signals)[0][0] == "b"


def test_a_candidate_missing_from_a_signal_ranks_with_its_last():
    assert standardise([3.0, None, 1.0]) == [1.0, -1.0, -1.0]
    assert standardise([2.0, 2.0, None]) == [0.0, 0.0, 0.0]  # a constant signal cannot tell them apart


def test_weights_of_zero_are_dropped_and_the_description_sums_to_one():
    combiner = Combiner({"reranker": 3, "dense": 0, "bm25": 1})
    assert combiner.signals == ("reranker", "bm25") and combiner.describe() == "0.75 reranker + 0.25 bm25"
    assert Combiner.with_first_stage(1.0).is_reranker_only


@pytest.mark.parametrize("weights, expected", [
    ({}, "expected an object of signal weights"),
    ([0.5, 0.5], "expected an object of signal weights"),
    ({"colbert": 1.0}, "unknown signal 'colbert'; expected some of reranker, position, dense, bm25, first_stage"),
    ({"reranker": -0.1}, "reranker: expected a number >= 0, got -0.1"),
    ({"reranker": "0.5"}, "reranker: expected a number >= 0, got '0.5'"),
    ({"reranker": float("nan")}, "reranker: expected a number >= 0, got nan"),
    ({"reranker": 0, "bm25": 0}, "expected at least one weight above 0"),
])
def test_bad_weights_are_refused_with_what_was_expected(weights, expected):
    with pytest.raises(DataError, match="fusion_weights: " + re.escape(expected)):
        Combiner(weights)


def test_a_combination_needs_every_signal_it_weighs():
    with pytest.raises(DataError, match="needs the signal\\(s\\) dense; got only reranker"):
        Combiner({"reranker": 0.5, "dense": 0.5}).rank(["a"], {"reranker": {"a": 1.0}})


def test_the_settings_file_carries_the_served_ranking(tmp_path):
    write_settings(tmp_path, RerankerSettings(fusion_weights={"reranker": 0.6, "dense": 0.1, "bm25": 0.3},
                                              fusion_chosen_on="dev split (80 queries)"))
    settings = read_settings(tmp_path)
    assert settings.combiner == Combiner({"reranker": 0.6, "dense": 0.1, "bm25": 0.3})
    assert settings.combiner.chosen_on == "dev split (80 queries)"
    (tmp_path / "rerankforge.json").write_text('{"fusion_weights": {"reranker": 1, "splade": 2}}')
    with pytest.raises(DataError, match="rerankforge.json: fusion_weights: unknown signal 'splade'"):
        read_settings(tmp_path)
    (tmp_path / "rerankforge.json").write_text('{"fusion_weights": {"first_stage": 1}, "fusion_first_stage": "splade"}')
    with pytest.raises(DataError, match="fusion_first_stage: expected hybrid, dense, bm25 or null, got 'splade'"):
        read_settings(tmp_path)
    (tmp_path / "rerankforge.json").write_text('{"fusion_weight": 0.25}')  # written before fusion_weights
    assert read_settings(tmp_path).combiner == Combiner({"reranker": 0.25, "first_stage": 0.75})


def _toy_dev(queries: int, bonus: float, seed: int = 0, depth: int = 20):
    """Dev queries of `depth` candidates in a first stage's order, one relevant each, placed near the top (its
    rank drawn from an exponential of mean 4); the reranker's scores are noise plus `bonus` for the relevant one."""
    rng = random.Random(seed)
    candidates, qrels, scores = {}, {}, {}
    for q in range(queries):
        qid, docs = f"q{q}", [f"q{q}-d{i}" for i in range(depth)]
        relevant = docs[min(int(rng.expovariate(0.25)), depth - 1)]
        candidates[qid], qrels[qid] = docs, {relevant: 1}
        scores[qid] = {d: rng.gauss(0, 1) + (bonus if d == relevant else 0.0) for d in docs}
    return candidates, {"reranker": scores}, qrels


def _in_sample(candidates, signals, qrels):
    """The grid's per-query dev nDCG@10 and its best step, all fitted and judged on the same queries."""
    from rerankforge.eval.metrics import per_query
    from rerankforge.training.dev.combining import GRID_STEPS, best_weights

    scored = {}
    for step in range(GRID_STEPS + 1):
        combiner = Combiner({"reranker": step / GRID_STEPS, "position": 1 - step / GRID_STEPS})
        run = {q: combiner.rank(candidates[q], {"reranker": signals["reranker"][q]}) for q in candidates}
        scored[step, GRID_STEPS - step] = per_query(qrels, run, ("nDCG@10",))["nDCG@10"]
    return scored, best_weights(scored, list(candidates), position=1)


def test_position_is_the_first_stages_order_as_a_reciprocal_rank():
    assert Combiner({"position": 1.0}).rank(["c", "a", "b"], {}) == [("c", 1 / 61), ("a", 1 / 62), ("b", 1 / 63)]
    # the reranker reverses the first stage's order: the heavier of the two standardised signals wins
    reverse = {"reranker": {"a": 0, "b": 1, "c": 2}}
    assert Combiner({"reranker": 0.4, "position": 0.6}).rank(["a", "b", "c"], reverse)[0][0] == "a"
    assert Combiner({"reranker": 0.6, "position": 0.4}).rank(["a", "b", "c"], reverse)[0][0] == "c"
    combiner = Combiner({"reranker": 0.7, "position": 0.3})
    assert combiner.request_ready and not Combiner({"reranker": 0.7, "dense": 0.3}).request_ready
    assert combiner.order([0.1, 5.0, 0.2]) == [1, 0, 2] and Combiner({"position": 1}).order([3.0, 9.0]) == [0, 1]
    with pytest.raises(DataError, match="needs scores a rerank request does not carry"):
        Combiner({"reranker": 0.5, "dense": 0.5}).order([1.0])
    # BM25 is request-ready: scored from the documents' text (core/lexical.py), passed beside the reranker's
    lexical = Combiner({"reranker": 0.5, "bm25": 0.5})
    assert lexical.request_ready and lexical.order([0.0, 1.0, 0.5], bm25=[9.0, 0.0, 8.0]) == [2, 1, 0]
    with pytest.raises(DataError, match="needs a BM25 score for each of the 3 documents, got none"):
        lexical.order([0.0, 1.0, 0.5])


def test_fitting_weighs_a_reranker_that_helps_out_of_fold_against_the_first_stages_order():
    candidates, signals, qrels = _toy_dev(60, bonus=2.5, seed=1)
    fit = fit_combination(candidates, signals, qrels, "toy dev split", first_stage="hybrid")
    assert not fit.leans_on_first_stage and fit.combiner.signals == ("reranker", "position")
    assert fit.combiner.first_stage == "hybrid" and fit.combiner.chosen_on == "toy dev split (60 queries)"
    assert fit.evidence["p_value"] < 0.05 and fit.evidence["folds"] == 5
    assert fit.evidence["dev_nDCG@10_out_of_fold"] > fit.evidence["dev_nDCG@10_first_stage_only"] + 0.2
    assert fit.message.startswith("served ranking: 0.") and "out of fold" in fit.message


def test_fitting_keeps_the_first_stages_order_when_the_reranker_does_not_help():
    candidates, signals, qrels = _toy_dev(60, bonus=0.0, seed=1)
    fit = fit_combination(candidates, signals, qrels, "toy dev split")
    assert fit.leans_on_first_stage and fit.combiner == Combiner({"position": 1.0})
    assert fit.message.startswith("served ranking: the first stage as it ranks") and "p = " in fit.message
    # a helpful reranker but too few dev queries to show it: the first stage again
    candidates, signals, qrels = _toy_dev(60, bonus=2.5, seed=1)
    few = list(candidates)[:3]
    small = fit_combination({q: candidates[q] for q in few}, {"reranker": {q: signals["reranker"][q] for q in few}},
                            {q: qrels[q] for q in few}, "toy dev split")
    assert small.leans_on_first_stage and not small.combiner.uses_reranker


def test_the_fold_gate_rejects_a_weighting_that_only_wins_in_sample():
    """A reranker of pure noise whose best weight happens to beat the first stage on the 24 dev queries it was
    fitted on (one-sided p < 0.05 in-sample: the gate of fitting and judging on the same queries keeps it); fitted
    on four folds and judged on the fifth, the gain is gone, and the first stage's order is served."""
    from rerankforge.eval.significance import compare

    candidates, signals, qrels = _toy_dev(24, bonus=0.0, seed=65)
    scored, best = _in_sample(candidates, signals, qrels)
    in_sample = compare("nDCG@10", "first stage", scored[0, 20], "reranked", scored[best], alternative="greater")
    assert best[0] > 0 and in_sample.p_randomization < 0.05
    fit = fit_combination(candidates, signals, qrels, "toy dev split")
    assert fit.leans_on_first_stage and fit.combiner == Combiner({"position": 1.0})
    assert fit.evidence["p_value"] >= 0.05 and "no gain holds out of fold" in fit.message


def test_equal_scores_standardise_to_zeros_however_they_round():
    """numpy's std of [0.1] * 3 is 1.4e-17, not 0: equal scores must not spread to z = -1 (served ranking and
    the hybrid first stage's z-score fusion share this normaliser)."""
    from rerankforge.core.scores import Normalizer

    assert standardise([0.1, 0.1, 0.1, None]) == [0.0, 0.0, 0.0, 0.0]
    assert Normalizer.fit([0.1] * 7, "zscore").apply(0.1) == 0.0


def test_the_served_ranking_weighs_dense_and_bm25_only_where_their_gain_holds_out_of_fold():
    """A dense score that finds the relevant document (the reranker is noise): the served ranking (/search, eval)
    takes it, the request ranking (what a rerank request can be served with) stays the first stage's order."""
    candidates, signals, qrels = _toy_dev(60, bonus=0.0, seed=2)
    rng = random.Random(5)
    signals["dense"] = {q: {d: rng.gauss(0, 1) + 3.0 * (d in qrels[q]) for d in docs} for q, docs in candidates.items()}
    signals["bm25"] = {q: {d: rng.gauss(0, 1) for d in docs} for q, docs in candidates.items()}
    fit = fit_combination(candidates, signals, qrels, "toy dev split", first_stage="hybrid")
    assert "dense" in fit.combiner.signals and fit.request == Combiner({"position": 1.0})
    assert fit.evidence["p_value_wide"] < 0.05 and fit.evidence["request_weights"] == {"position": 1.0}
    # noise in dense and BM25 too: nothing but the first stage's order, in both
    signals["dense"] = signals["bm25"]
    plain = fit_combination(candidates, signals, qrels, "toy dev split")
    assert plain.combiner == plain.request == Combiner({"position": 1.0}) and plain.leans_on_first_stage


def test_the_settings_file_carries_the_request_ranking(tmp_path):
    write_settings(tmp_path, RerankerSettings(fusion_weights={"reranker": 0.5, "dense": 0.5},
                                              request_fusion_weights={"reranker": 0.3, "position": 0.7}))
    settings = read_settings(tmp_path)
    assert settings.request_combiner_for(bm25=False) == Combiner({"reranker": 0.3, "position": 0.7})
    # older folders: the served ranking where a request can apply it, else the reranker alone
    assert RerankerSettings(fusion_weights={"reranker": 1, "position": 1}).request_combiner_for(False) == Combiner(
        {"reranker": 1, "position": 1})
    lexical = RerankerSettings(fusion_weights={"reranker": 1, "bm25": 1})
    assert lexical.request_combiner_for(bm25=False).is_reranker_only
    assert lexical.request_combiner_for(bm25=True) == Combiner({"reranker": 1, "bm25": 1})
    (tmp_path / "rerankforge.json").write_text('{"request_fusion_weights": {"reranker": 1, "dense": 1}}')
    with pytest.raises(DataError, match="request_fusion_weights: expected weights of reranker, position and bm25 "
                                        "only"):
        read_settings(tmp_path)


def test_the_request_ranking_weighs_bm25_where_requests_can_be_scored_for_it():
    """A BM25 score that finds the relevant document (the reranker is noise): the served ranking weighs it where
    its out-of-fold gain holds; with the corpus's statistics going with the model (`request_bm25`) the request
    ranking is that same ranking, without them requests keep the first stage's order. A served ranking that
    weighs dense stays out of requests."""
    candidates, signals, qrels = _toy_dev(60, bonus=0.0, seed=3)
    rng = random.Random(7)
    signals["bm25"] = {q: {d: rng.gauss(0, 1) + 3.0 * (d in qrels[q]) for d in docs} for q, docs in candidates.items()}
    lexical = fit_combination(candidates, signals, qrels, "toy dev split", request_bm25=True)
    assert "bm25" in lexical.request.signals and lexical.request.request_ready
    assert lexical.combiner == lexical.request and lexical.evidence["p_value_wide"] < 0.05
    assert lexical.evidence["request_weights"] == dict(lexical.request.weights)
    plain = fit_combination(candidates, signals, qrels, "toy dev split")
    assert plain.request == Combiner({"position": 1.0}) and plain.combiner == lexical.combiner
    signals["dense"] = signals.pop("bm25")
    dense = fit_combination(candidates, signals, qrels, "toy dev split", request_bm25=True)
    assert "dense" in dense.combiner.signals and dense.request == Combiner({"position": 1.0})
