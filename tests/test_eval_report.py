"""`rerankforge eval` reports: numbers equal pytrec_eval on the written runs, the ceiling bounds every
reranker, significance behaves, the token budget and per-query view are right by hand, bad input stops."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rerankforge.cli.main import main as rerankforge
from rerankforge.core.hardware import Precision
from rerankforge.reranker.combiner import Combiner


@pytest.fixture(scope="module")
def bm25_run(tmp_path_factory, scifact_slice) -> Path:
    run_file = tmp_path_factory.mktemp("runs") / "bm25.trec"
    assert rerankforge(["retrieve", "--data", str(scifact_slice), "--retriever", "bm25", "--k", "30",
                        "--output", str(run_file), "--no_show_progress"]) == 0
    return run_file


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, scifact_slice, bm25_run, tiny_reranker, tiny_bi_encoder) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(bm25_run), "--retriever", "dense",
                        "--model", tiny_bi_encoder, "--reranker", tiny_reranker, "--depth", "20", "--k", "5,10,30",
                        "--top_n", "1,3,5", "--output", str(out)]) == 0
    return out


def test_report_folder_holds_every_file(report_dir):
    metrics = json.loads((report_dir / "metrics.json").read_text())
    names = list(metrics["systems"])
    assert names == ["bm25", "bm25 >> tiny-reranker0", "dense", "dense >> tiny-reranker0"]
    for name in ("ndcg_vs_depth", "hit_rate_vs_top_n", "per_query_gain"):
        png = (report_dir / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    report = (report_dir / "report.md").read_text()
    for section in ("## Metrics", "**Ceiling**", "## Significance", "## Metric vs reranking depth",
                    "## Token budget", "## Per query", "## Cost"):
        assert section in report
    rows = list(csv.DictReader((report_dir / "per_query.csv").open()))
    assert len(rows) == 4 * metrics["judged_queries"] == 4 * 20
    assert {"query_id", "system", "nDCG@10", "Hit@3", "first_relevant_rank", "query"} <= set(rows[0])


def test_report_numbers_equal_pytrec_eval_on_its_run_files(report_dir, scifact_slice):
    import pytrec_eval

    from rerankforge.data_prep.runs import read_trec
    from rerankforge.eval.report_files import slug

    qrels = {}
    for line in (scifact_slice / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, doc_id, rel = line.split("\t")
        qrels.setdefault(qid, {})[doc_id] = int(rel)
    metrics = json.loads((report_dir / "metrics.json").read_text())
    for name, system in metrics["systems"].items():
        run = read_trec(report_dir / "runs" / f"{slug(name)}.trec")
        scored = {q: dict(hits) for q, hits in run.items()}
        direct = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map_cut.100", "success.3"}).evaluate(scored)
        for ours, theirs in (("nDCG@10", "ndcg_cut_10"), ("MAP@100", "map_cut_100"), ("Hit@3", "success_3")):
            expected = sum(direct[q][theirs] for q in qrels) / len(qrels)
            assert system["metrics"][ours] == pytest.approx(expected, abs=1e-9), (name, ours)


def test_ceiling_bounds_every_reranker_and_reranking_keeps_recall(report_dir):
    metrics = json.loads((report_dir / "metrics.json").read_text())
    for first in ("bm25", "dense"):
        curve = metrics["depth_curve"]
        for k in ("5", "10", "30"):
            assert curve[f"{first} >> tiny-reranker0"][k] <= curve[f"{first} ceiling"][k] + 1e-12
            assert curve[f"{first} ceiling"][k] >= curve[first][k] - 1e-12
        # reranking the top-20 reorders, never adds or loses: recall@20 and @30 are the first stage's
        assert metrics["ceiling"][first]["R@30"] >= metrics["ceiling"][first]["R@10"]
        main = metrics["systems"][f"{first} >> tiny-reranker0"]["metrics"]["nDCG@10"]
        assert curve[f"{first} >> tiny-reranker0"]["20"] == pytest.approx(main)


def test_comparisons_cover_each_reranker_against_every_first_stage(report_dir):
    metrics = json.loads((report_dir / "metrics.json").read_text())
    pairs = [(c["a"], c["b"]) for c in metrics["comparisons"]]
    assert pairs == [("bm25", "bm25 >> tiny-reranker0"), ("dense", "bm25 >> tiny-reranker0"),  # its own first
                     ("dense", "dense >> tiny-reranker0"), ("bm25", "dense >> tiny-reranker0")]  # stage first
    for c in metrics["comparisons"]:
        assert c["wins"] + c["ties"] + c["losses"] == 20
        assert 0 < c["p_randomization"] <= 1 and c["ci95"][0] <= c["difference"] <= c["ci95"][1]
    latency = metrics["latency"][0]
    assert latency["depth"] == 30 and latency["p50_ms"] <= latency["p95_ms"] and latency["pairs_per_s"] > 0
    assert latency["precision"] == "fp32"  # what `auto` chose on a CPU without native bf16 (see conftest)


def test_significance_of_equal_and_of_clearly_different_systems():
    from scipy import stats

    from rerankforge.eval.significance import compare

    rng = np.random.default_rng(0)
    a = {str(i): float(v) for i, v in enumerate(rng.random(200))}
    same = compare("nDCG@10", "a", a, "b", dict(a))
    assert same.p_randomization == 1.0 and same.ci95 == (0.0, 0.0) and same.ties == 200
    better = {q: v + 0.1 + rng.normal(0, 0.05) for q, v in a.items()}
    result = compare("nDCG@10", "a", a, "b", better)
    assert result.p_randomization < 0.001 and result.stars() == "**"
    diff = np.array([better[k] - a[k] for k in sorted(a)])
    assert result.difference == pytest.approx(diff.mean()) and result.ci95[0] < diff.mean() < result.ci95[1]
    normal_width = 2 * 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))  # the bootstrap agrees with normal theory
    assert result.ci95[1] - result.ci95[0] == pytest.approx(normal_width, rel=0.2)
    keys = sorted(a)
    assert result.p_ttest == pytest.approx(stats.ttest_rel([better[k] for k in keys], [a[k] for k in keys]).pvalue)


def test_hit_rate_tokens_and_regressions_by_hand(tmp_path):
    """Two queries, three documents: hit rate, tokens sent and the worst regression computed by hand."""
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.eval.report import EvalSettings, evaluate

    _write_beir(tmp_path, docs={"d1": "one two three", "d2": "four five", "d3": "six"},
                queries={"q1": "first", "q2": "second"}, qrels=[("q1", "d2", 1), ("q2", "d1", 1)])
    collection = load_collection(str(tmp_path), split="test")
    first = {"q1": [("d1", 3.0), ("d2", 2.0), ("d3", 1.0)], "q2": [("d1", 3.0), ("d2", 2.0), ("d3", 1.0)]}
    report = evaluate(collection, {"fs": first}, [_ConstantReranker({"d1": 0.0, "d2": 2.0, "d3": 1.0})],
                      EvalSettings(depth=3, ks=(3,), top_ns=(1, 2), metrics=("nDCG@10",)))
    # reranked order for both queries: d2, d3, d1 -> q1 gains (hit@1), q2 loses (its d1 falls to rank 3)
    assert report.budget["fs"][1] == {"hit_rate": 0.5, "tokens": 3.0}  # d1 both times: 3 words
    assert report.budget["fs >> const"][1] == {"hit_rate": 0.5, "tokens": 2.0}  # d2: 2 words
    assert report.budget["fs >> const"][2]["tokens"] == 3.0  # d2 + d3
    (worst,) = report.regressions["fs >> const"]
    assert (worst.query_id, worst.rank_before, worst.rank_after, worst.before) == ("q2", 1, 3, 1.0)
    assert worst.after == pytest.approx(0.5)  # 1 / log2(3 + 1)
    (c,) = report.comparisons
    assert (c.wins, c.ties, c.losses) == (1, 0, 1)
    assert report.ceiling["fs"]["nDCG@10@3"] == 1.0 and report.ceiling["fs"]["R@3"] == 1.0
    assert report.systems[1].means["nDCG@10"] == pytest.approx((1.0 + 1 / math.log2(4)) / 2)


def test_metric_names_are_checked():
    from rerankforge.core.errors import DataError
    from rerankforge.eval.metrics import mean, parse_metric, per_query

    assert parse_metric("Hit@3") == ("Hit", 3)
    with pytest.raises(DataError, match="unknown metric 'NDCG10'"):
        parse_metric("NDCG10")
    values = mean(per_query({"q": {"a": 1}}, {"q": [("x", 3.0), ("y", 2.0), ("a", 1.0)]}, ("Hit@2", "Hit@3", "MRR@2")))
    assert values == {"Hit@2": 0.0, "Hit@3": 1.0, "MRR@2": 0.0}


def test_bad_eval_inputs_stop_with_clear_errors(scifact_slice, bm25_run, tmp_path, capsys):
    unknown = tmp_path / "unknown.trec"
    lines = bm25_run.read_text().splitlines()
    qid = lines[0].split()[0]
    unknown.write_text("\n".join(lines[:3] + [f"{qid} Q0 no-such-doc 4 0.5 x"]) + "\n")
    out = tmp_path / "report"
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(unknown), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{unknown}:4: 1 document id(s) not in" in err and "no-such-doc" in err
    train_only = tmp_path / "train.trec"
    train_qid = (scifact_slice / "qrels" / "train.tsv").read_text().splitlines()[1].split("\t")[0]
    train_only.write_text(f"{train_qid} Q0 {lines[0].split()[2]} 1 1.0 x\n")
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(train_only)]) == 2
    assert "no query of the run is judged in" in capsys.readouterr().err
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(bm25_run), "--k", "10,x"]) == 2
    assert "--k: expected positive integers" in capsys.readouterr().err
    assert not out.exists()


class _ConstantReranker:
    """Scores by document id alone: a reranker whose output is known by hand."""

    name = "const"
    combiner = Combiner.reranker_only()
    tokenizer = None
    batch_size = 8
    precision = Precision("fp32", "fixed")

    def __init__(self, scores: dict[str, float]):
        import torch

        self.scores = scores
        self.model = torch.nn.Linear(1, 1)

    def score_timed(self, candidates, queries, doc_text):
        return {q: {d: self.scores[d] for d in docs} for q, docs in candidates.items()}, dict.fromkeys(candidates, 0.01)

    def score(self, pairs):
        raise AssertionError("one first stage: everything is scored in score_timed")


def _write_beir(folder: Path, docs: dict[str, str], queries: dict[str, str], qrels: list[tuple[str, str, int]]):
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                                 for k, v in docs.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                               "".join(f"{q}\t{d}\t{r}\n" for q, d, r in qrels))


def test_run_covering_some_judged_queries_is_reported_both_ways(scifact_slice, bm25_run, tiny_reranker, tmp_path,
                                                                 capsys):
    """A run of 5 of the 20 judged queries: the means over all 20 count 15 zeros, so the numbers over its 5
    (what trec_eval prints for the run) come beside them, with a warning -- never silently only the first."""
    import pytrec_eval

    from rerankforge.data_prep.runs import read_trec
    from rerankforge.eval.report_files import slug

    full = read_trec(bm25_run)
    kept = list(full)[:5]
    partial = tmp_path / "partial.trec"
    partial.write_text("".join(line + "\n" for line in bm25_run.read_text().splitlines() if line.split()[0] in kept))
    out = tmp_path / "report"
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(partial), "--reranker", tiny_reranker,
                        "--depth", "10", "--k", "10", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"warning: {partial} ranks 5 of the 20 judged queries" in captured.err

    qrels = {}
    for line in (scifact_slice / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, doc_id, rel = line.split("\t")
        qrels.setdefault(qid, {})[doc_id] = int(rel)
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["systems"]) == ["partial", "partial >> tiny-reranker0"]
    for name, system in metrics["systems"].items():
        run = read_trec(out / "runs" / f"{slug(name)}.trec")
        per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate({q: dict(h) for q, h in run.items()})
        assert sorted(per_query) == sorted(kept) and system["covered_queries"] == 5
        over_run = sum(v["ndcg_cut_10"] for v in per_query.values()) / 5  # what trec_eval prints
        assert system["metrics_over_covered_queries"]["nDCG@10"] == pytest.approx(over_run, abs=1e-9)
        assert system["metrics"]["nDCG@10"] == pytest.approx(over_run * 5 / 20, abs=1e-9)
        assert f"{over_run:8.4f}" in captured.out and f"{over_run * 5 / 20:8.4f}" in captured.out
    assert "warning: partial ranks 5 of the 20 judged queries" in captured.out
    assert "**Coverage** — partial ranks 5 of the 20 judged queries" in (out / "report.md").read_text()
