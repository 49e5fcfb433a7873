"""Scores as probabilities: Platt scaling fitted on dev, saved in rerankforge.json, read by every stage;
`min_relevance` in serve's /search and /ask; ECE and min_relevance precision / recall in the eval report."""

from __future__ import annotations

import json
import shutil

import httpx
import numpy as np
import pytest

from rerankforge.core.errors import DataError
from rerankforge.reranker.calibration import (SIGMOID, Calibration, expected_calibration_error, fit_platt,
                                              precision_recall_at)
from test_serve import index_dir  # noqa: F401  (the fixture: a SearchIndex over the SciFact slice)


def _synthetic(n: int, scale: float, bias: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(scale * scores + bias)))).astype(int)
    return scores, labels


def test_platt_fit_recovers_the_parameters_and_lowers_the_calibration_error():
    scores, labels = _synthetic(20_000, 1.5, -2.0)
    fitted = fit_platt(scores, labels)
    assert fitted.scale == pytest.approx(1.5, abs=0.1) and fitted.bias == pytest.approx(-2.0, abs=0.15)
    before = expected_calibration_error(SIGMOID.probability(scores), labels)
    after = expected_calibration_error(fitted.probability(scores), labels)
    assert after < 0.02 < before


def test_platt_fit_stays_finite_when_the_scores_nearly_separate_the_classes():
    """A trained reranker's dev candidates: a few dozen relevant ones far above thousands of others. Plain
    Newton steps diverge here (scale 5e9 on SciFact's dev split, 2e10 on these); the smoothed targets keep the optimum
    finite and the line search reaches it."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(10.6, 2.2, 76), rng.normal(-2.2, 1.2, 3924)])  # plain Newton: scale 2e10
    labels = np.concatenate([np.ones(76, int), np.zeros(3924, int)])
    fitted = fit_platt(scores, labels)
    assert 0.5 < fitted.scale < 5 and abs(fitted.bias) < 50
    probabilities = fitted.probability(scores)
    assert len(np.unique(np.round(probabilities, 3))) > 20  # graded, not a step (which has 2)
    assert expected_calibration_error(probabilities, labels) < expected_calibration_error(
        SIGMOID.probability(scores), labels)


def test_platt_fit_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="needs relevant and non-relevant candidates, got 0 relevant"):
        fit_platt([0.1, 0.2], [0, 0])
    scores, labels = _synthetic(2_000, 1.0, 0.0)
    with pytest.raises(ValueError, match="would invert the ranking"):
        fit_platt(-scores, labels)
    with pytest.raises(ValueError, match="as many labels as scores"):
        fit_platt([0.1, 0.2], [1])


def test_min_relevance_precision_and_recall():
    p, y = [0.9, 0.8, 0.4, 0.2], [1, 0, 1, 0]
    assert precision_recall_at(p, y, 0.5) == (0.5, 0.5)
    assert precision_recall_at(p, y, 0.1) == (0.5, 1.0)
    assert precision_recall_at(p, y, 0.95) == (1.0, 0.0)  # nothing kept: no false positive, nothing found


def test_training_fits_the_calibration_on_its_dev_candidates():
    """DevSet.calibrate: every dev candidate, relevant where the qrels say so; the error before and after and
    what each min_relevance threshold keeps."""
    from types import SimpleNamespace

    from rerankforge.training.dev.dev_eval import DevSet

    scores, labels = _synthetic(4_000, 0.8, -3.0, seed=3)
    run = {f"q{i // 50}": [(f"d{i}", 0.0) for i in range(start, start + 50)] for start in range(0, 4_000, 50)
           for i in [start]}
    qrels = {qid: {doc: 1 for doc, _ in hits if labels[int(doc[1:])]} for qid, hits in run.items()}
    dev = DevSet(SimpleNamespace(qrels=qrels), {qid: "" for qid in run}, run, 50, signals={})
    by_query = {qid: {doc: float(scores[int(doc[1:])]) for doc, _ in hits} for qid, hits in run.items()}
    calibration, report = dev.calibrate(by_query)
    assert calibration.scale == pytest.approx(0.8, abs=0.15) and calibration.bias == pytest.approx(-3.0, abs=0.3)
    assert report["fitted_on"] == f"dev split (80 queries, 4000 candidates, {labels.sum()} relevant)"
    assert report["ece_calibrated"] < report["ece_sigmoid"]
    assert report["min_relevance"]["0.5"]["precision"] > report["min_relevance"]["0.1"]["precision"]
    # the thresholds of target precisions and recalls, on the same candidates, as the calibration keeps them
    from rerankforge.reranker.calibration import precision_recall_at

    probabilities = calibration.probability(scores)
    for metric, rows in report["targets"].items():
        for target, row in rows.items():
            kept = precision_recall_at(probabilities, labels, row["min_relevance"])
            assert kept == pytest.approx((row["precision"], row["recall"])) and row[metric] >= float(target) - 1e-12
            assert calibration.targets[metric][target] == row["min_relevance"]
    assert "0.95" in report["targets"]["recall"] and report["targets"]["precision"]


def test_target_thresholds_are_the_most_recall_at_a_precision_and_the_most_precision_at_a_recall():
    from rerankforge.core.errors import RerankforgeError
    from rerankforge.reranker.calibration import Calibration, targets_table, thresholds_of

    # best first: 0.9 (relevant), 0.8 (no), 0.8 (relevant), 0.6 (relevant), 0.3, 0.2 (no), 0.1 (relevant)
    table = targets_table([0.9, 0.8, 0.8, 0.6, 0.3, 0.2, 0.1], [1, 0, 1, 1, 0, 0, 1])
    assert table["precision"]["0.75"] == {"min_relevance": 0.6, "precision": 0.75, "recall": 0.75}
    assert table["precision"]["0.95"] == {"min_relevance": 0.9, "precision": 1.0, "recall": 0.25}
    assert table["precision"]["0.50"]["min_relevance"] == 0.1  # 4 of 7 kept are relevant: the most recall
    assert table["recall"]["0.50"] == {"min_relevance": 0.8, "precision": pytest.approx(2 / 3), "recall": 0.5}
    calibration = Calibration(targets=thresholds_of(table))
    assert calibration.min_relevance_for(precision=0.72) == 0.6  # between targets: the next stricter (0.75)
    assert calibration.min_relevance_for(recall=0.5) == 0.8
    no_table = targets_table([0.4, 0.3], [0, 0])
    assert no_table == {"precision": {}, "recall": {}}
    with pytest.raises(RerankforgeError, match="min_precision: no threshold reached precision 0.99"):
        Calibration(targets=thresholds_of(targets_table([0.9, 0.5], [0, 1]))).min_relevance_for(precision=0.99)
    with pytest.raises(RerankforgeError, match="min_recall: this model records no dev thresholds"):
        Calibration().min_relevance_for(recall=0.5)


@pytest.fixture(scope="module")
def calibrated_reranker(tmp_path_factory, tiny_reranker) -> str:
    folder = tmp_path_factory.mktemp("calibrated") / "reranker"
    shutil.copytree(tiny_reranker, folder)
    settings = folder / "rerankforge.json"
    values = json.loads(settings.read_text()) if settings.is_file() else {}
    values.update(calibration_scale=2.0, calibration_bias=-1.0, calibration_fitted_on="dev split (test)",
                  relevance_targets={"precision": {"0.50": 0.3, "0.90": 0.8}, "recall": {"0.50": 0.4}})
    settings.write_text(json.dumps(values))
    return str(folder)


def test_the_folders_calibration_is_what_the_reranker_reads(calibrated_reranker, tiny_reranker):
    from rerankforge.reranker.scoring import Reranker

    reranker = Reranker.load(calibrated_reranker, max_length=64)
    assert reranker.calibration == Calibration(2.0, -1.0, "dev split (test)")
    scores = reranker.score([("bone fractures", "vitamin d and bone density"), ("q", "cars")])
    np.testing.assert_allclose(reranker.probability(scores), 1 / (1 + np.exp(-(2 * scores - 1))), rtol=1e-6)
    plain = Reranker.load(tiny_reranker, max_length=64)
    np.testing.assert_allclose(plain.probability(scores), 1 / (1 + np.exp(-scores)), rtol=1e-6)


@pytest.mark.parametrize("values, expected", [
    ({"calibration_scale": float("nan"), "calibration_bias": 0.0}, "calibration_scale: expected a finite number"),
    ({"calibration_scale": "2", "calibration_bias": 0.0}, "calibration_scale: expected a finite number"),
    ({"calibration_scale": 2.0}, "calibration_scale and calibration_bias together"),
])
def test_a_bad_calibration_in_rerankforge_json_is_named(values, expected, tmp_path):
    from rerankforge.reranker.folder import read_settings

    (tmp_path / "rerankforge.json").write_text(json.dumps(values))
    with pytest.raises(DataError, match=expected):
        read_settings(tmp_path)


def test_serve_answers_with_calibrated_relevance_and_min_relevance(calibrated_reranker, index_dir, scifact_slice):
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.serve.app import create_app
    from rerankforge.serve.config import ServeConfig
    from rerankforge.serve.index import SearchIndex
    from rerankforge.serve.pipeline import NOTHING_RELEVANT, Pipeline
    from test_serve import running

    class MustNotBeAsked:
        name = "must-not-be-asked"

        def generate(self, messages):
            pytest.fail("the generator was asked although no passage reached min_relevance")

    reranker = Reranker.load(calibrated_reranker, max_length=64, batch_size=16)
    pipeline = Pipeline(SearchIndex.load(index_dir), reranker, generator=MustNotBeAsked(), k=10, top_n=5)
    query = json.loads((scifact_slice / "queries.jsonl").read_text().splitlines()[0])["text"]
    config = ServeConfig(reranker="tiny", index=str(index_dir))
    with running(create_app(config, reranker, pipeline)) as url:
        documents = ["vitamin d and bone fractures", "an unrelated sentence about cars"]
        ranked = httpx.post(f"{url}/v2/rerank", json={"query": "fractures", "documents": documents}).json()
        scores = reranker.score([("fractures", d) for d in documents])
        for r in ranked["results"]:
            assert r["relevance_score"] == pytest.approx(1 / (1 + np.exp(-(2 * scores[r["index"]] - 1))), abs=1e-6)
        tei = httpx.post(f"{url}/rerank", json={"query": "fractures", "texts": documents}).json()
        assert {r["index"]: r["score"] for r in tei} == {r["index"]: pytest.approx(r["relevance_score"], abs=1e-6)
                                                         for r in ranked["results"]}

        everything = httpx.post(f"{url}/search", json={"query": query, "top_n": 5}).json()["results"]
        assert len(everything) == 5 and all(0 < r["relevance"] < 1 for r in everything)
        middle = sorted(r["relevance"] for r in everything)[2]
        kept = httpx.post(f"{url}/search", json={"query": query, "top_n": 5, "min_relevance": middle}).json()
        assert [r["doc_id"] for r in kept["results"]] == [r["doc_id"] for r in everything if r["relevance"] >= middle]
        none = httpx.post(f"{url}/search", json={"query": query, "min_relevance": 1.0}).json()
        assert none["results"] == []
        asked = httpx.post(f"{url}/ask", json={"query": query, "min_relevance": 1.0}).json()
        assert asked["answer"] == NOTHING_RELEVANT and asked["sources"] == [] and asked["generator"] == "none"
        for bad_value in (1.5, "0.5", True):  # out of range, or not a JSON number
            bad = httpx.post(f"{url}/search", json={"query": query, "min_relevance": bad_value})
            assert bad.status_code == 422 and "min_relevance" in bad.text
        # a target precision or recall: the threshold the model's dev split recorded for it (or the next stricter)
        for target, threshold in (({"min_precision": 0.9}, 0.8), ({"min_precision": 0.42}, 0.3),
                                  ({"min_recall": 0.5}, 0.4)):
            by_target = httpx.post(f"{url}/search", json={"query": query, "top_n": 5, **target}).json()["results"]
            assert by_target == [r for r in everything if r["relevance"] >= threshold]
        unreached = httpx.post(f"{url}/search", json={"query": query, "min_precision": 0.95})
        assert unreached.status_code == 422 and "no threshold reached precision 0.95" in unreached.text
        both = httpx.post(f"{url}/search", json={"query": query, "min_precision": 0.9, "min_relevance": 0.2})
        assert both.status_code == 422 and "at most one of min_relevance, min_precision" in both.text


def test_eval_report_shows_the_calibration_error_and_min_relevance(calibrated_reranker, scifact_slice, tmp_path):
    from rerankforge.cli.main import main as rerankforge

    out = tmp_path / "report"
    assert rerankforge(["eval", "--data", str(scifact_slice), "--split", "test", "--retriever", "bm25",
                        "--reranker", calibrated_reranker, "--depth", "10", "--k", "10", "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    [view] = metrics["calibration"]
    assert view["calibration"] == "dev split (test)" and view["candidates"] > 0
    assert 0 <= view["ece_sigmoid"] <= 1 and 0 <= view["ece_calibrated"] <= 1
    assert set(view["min_relevance"]) == {"0.1", "0.3", "0.5", "0.7", "0.9"}
    # the model's dev thresholds of target precisions / recalls (precision 0.80 and recall 0.90 it has none of)
    assert set(view["targets"]) == {"precision 0.50", "recall 0.50"}
    assert view["targets"]["precision 0.50"]["min_relevance"] == 0.3
    assert 0 <= view["targets"]["recall 0.50"]["recall"] <= 1
    text = (out / "report.md").read_text()
    assert "## Scores as probabilities" in text and "| precision 0.50 | 0.300 |" in text


def test_calibrate_command_fits_on_a_drawn_dev_split_and_saves_it(tmp_path, tiny_reranker, scifact_slice,
                                                                   tiny_bi_encoder, capsys):
    """`rerankforge calibrate` on a folder trained elsewhere: --data draws the dev queries. A random tiny model
    may rank them backwards; then nothing is written and the error says why."""
    from rerankforge.cli.main import main as rerankforge
    from rerankforge.reranker.folder import read_settings

    folder = tmp_path / "reranker"
    shutil.copytree(tiny_reranker, folder)
    before = (folder / "rerankforge.json").read_text() if (folder / "rerankforge.json").is_file() else None
    code = rerankforge(["calibrate", "--model", str(folder), "--data", str(scifact_slice), "--split", "test",
                        "--dev_queries", "10", "--depth", "10", "--first_stage_model", tiny_bi_encoder])
    out, err = capsys.readouterr()
    if code == 0:
        settings = read_settings(folder)
        assert settings.calibration_scale > 0 and "(10 queries, 100 candidates" in settings.calibration_fitted_on
        assert "expected calibration error on dev" in out and "min_relevance on dev: 0.1:" in out
        # the BM25 statistics go with the folder exactly where its new request ranking weighs BM25
        assert (folder / "bm25_statistics.json").is_file() == settings.request_combiner_for(False).uses_bm25
    else:
        assert code == 2 and err.strip().splitlines()[-1].startswith("error: calibrate: cannot fit on ")
        after = (folder / "rerankforge.json").read_text() if (folder / "rerankforge.json").is_file() else None
        assert after == before
    assert rerankforge(["calibrate", "--model", str(tmp_path / "nowhere")]) == 2
    assert "expected a local reranker folder" in capsys.readouterr().err


def test_the_servers_min_precision_is_read_from_the_models_dev_thresholds(calibrated_reranker, tiny_reranker):
    from rerankforge.core.errors import ConfigError
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.serve.config import ServeConfig, check_serve_config
    from rerankforge.serve.service import min_relevance

    calibrated, plain = Reranker.load(calibrated_reranker), Reranker.load(tiny_reranker)
    assert min_relevance(ServeConfig(reranker="r", min_precision=0.9), calibrated) == 0.8
    assert min_relevance(ServeConfig(reranker="r", min_relevance=0.25), plain) == 0.25
    with pytest.raises(ConfigError, match="r: min_precision: this model records no dev thresholds"):
        min_relevance(ServeConfig(reranker="r", min_precision=0.9), plain)
    with pytest.raises(ConfigError, match="at most one of min_relevance, min_precision and min_recall"):
        check_serve_config(ServeConfig(reranker="r", min_precision=0.9, min_recall=0.5))
