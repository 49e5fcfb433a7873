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
    ({"colbert": 1.0}, "unknown signal 'colbert'; expected some of reranker, dense, bm25, first_stage"),
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


def _toy_dev(queries: int, informative: str, seed: int = 0, names=("reranker", "dense", "bm25")):
    """Dev queries of 20 candidates, one relevant: `informative` ranks it near the top, the others are noise."""
    rng = random.Random(seed)
    candidates, qrels, signals = {}, {}, {name: {} for name in names}
    for q in range(queries):
        qid, docs = f"q{q}", [f"q{q}-d{i}" for i in range(20)]
        relevant = rng.choice(docs)
        candidates[qid], qrels[qid] = docs, {relevant: 1}
        for name in signals:
            signals[name][qid] = {d: rng.gauss(0, 1) + (2.5 if name == informative and d == relevant else 0.0)
                                  for d in docs}
    return candidates, signals, qrels


def test_fitting_keeps_a_reranker_that_dev_shows_helps():
    candidates, signals, qrels = _toy_dev(60, informative="reranker")
    fit = fit_combination(candidates, signals, qrels, "toy dev split")
    assert not fit.leans_on_first_stage and fit.combiner.uses_reranker
    assert fit.combiner.weights["reranker"] / sum(fit.combiner.weights.values()) >= 0.5
    assert fit.evidence["p_value"] < 0.05 and fit.combiner.chosen_on == "toy dev split (60 queries)"
    assert fit.evidence["dev_nDCG@10_with_reranker"] > fit.evidence["dev_nDCG@10_alone"]["dense"] + 0.2
    assert fit.message.startswith("served ranking: ")


def test_fitting_leans_on_the_first_stage_when_dev_does_not_show_the_reranker_helps():
    candidates, signals, qrels = _toy_dev(60, informative="dense")
    fit = fit_combination(candidates, signals, qrels, "toy dev split")
    assert fit.leans_on_first_stage and not fit.combiner.uses_reranker and "dense" in fit.combiner.signals
    assert "served ranking leans on the first stage" in fit.message and "randomization p = " in fit.message
    # a helpful reranker but too few dev queries to show it: the first stage again, and the run says why
    candidates, signals, qrels = _toy_dev(60, informative="reranker")
    few = {qid: candidates[qid] for qid in list(candidates)[:3]}
    small = fit_combination(few, {s: {q: v[q] for q in few} for s, v in signals.items()},
                            {q: qrels[q] for q in few}, "toy dev split")
    assert small.leans_on_first_stage and not small.combiner.uses_reranker


def test_the_first_stage_as_it_ranks_is_kept_unless_dev_shows_a_weighting_of_its_scores_beats_it():
    candidates, signals, qrels = _toy_dev(60, "first_stage", names=("reranker", "dense", "bm25", "first_stage"))
    fit = fit_combination(candidates, signals, qrels, "toy dev split", first_stage="hybrid")
    assert fit.leans_on_first_stage and fit.combiner == Combiner({"first_stage": 1.0})
    assert fit.combiner.first_stage == "hybrid" and fit.evidence["p_value_first_stage_weighting"] >= 0.05
    # dense far better than the list's own order: the weighting is kept, then the reranker must beat that
    candidates, signals, qrels = _toy_dev(60, "dense", names=("reranker", "dense", "bm25", "first_stage"))
    fit = fit_combination(candidates, signals, qrels, "toy dev split", first_stage="hybrid")
    assert fit.leans_on_first_stage and "dense" in fit.combiner.signals and "first_stage" not in fit.combiner.signals
    assert fit.evidence["p_value_first_stage_weighting"] < 0.05


def test_equal_scores_standardise_to_zeros_however_they_round():
    """numpy's std of [0.1] * 3 is 1.4e-17, not 0: equal scores must not spread to z = -1 (served ranking and
    the hybrid first stage's z-score fusion share this normaliser)."""
    from rerankforge.core.scores import Normalizer

    assert standardise([0.1, 0.1, 0.1, None]) == [0.0, 0.0, 0.0, 0.0]
    assert Normalizer.fit([0.1] * 7, "zscore").apply(0.1) == 0.0
