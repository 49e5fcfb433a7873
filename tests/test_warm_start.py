"""The warm start without labels: pseudo-queries from the corpus, the hybrid first stage distilled."""

from __future__ import annotations

import json

import pytest
import yaml

from rerankforge.core.errors import ConfigError
from rerankforge.data_prep.collection import Document
from rerankforge.data_prep.pseudo_queries import pseudo_queries

from rerankforge.cli.main import main as rerankforge

LONG = ("Vitamin D deficiency is common in elderly patients admitted to hospital. We measured serum levels in "
        "four hundred patients. Low levels were associated with longer stays and more falls after discharge. "
        "Supplementation reduced the rate of falls by a third over one year of follow up.")


def test_a_title_is_the_query_and_the_text_the_positive():
    corpus = {"d1": Document(title="Vitamin D and falls in elderly inpatients", text=LONG)}
    [query] = pseudo_queries(corpus, 10)
    assert (query.query_id, query.doc_id, query.from_title) == ("pseudo-d1", "d1", True)
    assert query.query == "Vitamin D and falls in elderly inpatients" and query.positive == " ".join(LONG.split())


def test_a_sentence_is_cut_out_of_its_passage():
    corpus = {f"d{i}": Document(title="", text=LONG) for i in range(5)}
    made = pseudo_queries(corpus, 10, source="sentence", seed=3)
    assert len(made) == 5 and not any(q.from_title for q in made)
    for query in made:
        assert query.query in LONG and query.query not in query.positive  # never a substring of its positive
        assert 4 <= len(query.query.split()) <= 32 and len(query.positive.split()) >= 12
    assert made == pseudo_queries(corpus, 10, source="sentence", seed=3)  # deterministic in the seed


def test_unpunctuated_passages_give_a_span_and_short_ones_nothing():
    words = " ".join(f"word{i}" for i in range(40))
    corpus = {"long": Document(title="", text=words), "short": Document(title="", text="too short to cut")}
    [query] = pseudo_queries(corpus, 10)
    assert query.doc_id == "long" and 6 <= len(query.query.split()) <= 14
    assert query.query not in query.positive and len(query.positive.split()) == 40 - len(query.query.split())
    assert pseudo_queries({"short": corpus["short"]}, 10, source="title") == []


def test_bad_warm_start_arguments_are_named(tmp_path, scifact_slice, capsys):
    assert rerankforge(["warm-start", "--data", str(scifact_slice), "--output_dir", str(tmp_path),
                        "--num_queries", "3"]) == 2
    assert "--num_queries: expected at least 10 pseudo-queries, got 3" in capsys.readouterr().err
    assert rerankforge(["warm-start", "--data", str(scifact_slice), "--output_dir", str(tmp_path),
                        "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "--config: training config not found" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--max_rank"):
        from rerankforge.training.warm_start import WarmStartArgs, warm_start

        warm_start(WarmStartArgs(data=str(scifact_slice), output_dir=str(tmp_path), max_rank=1))


def _small_config(tmp_path, **changes) -> str:
    from rerankforge.training.warm_start import WARM_START_CONFIG

    config = yaml.safe_load(WARM_START_CONFIG.read_text())
    config.update(mixed_precision="no", log_steps=5, save_steps=10, **changes)
    config = {key: value for key, value in config.items() if value is not None}
    path = tmp_path / "warm.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_warm_start_learns_the_first_stage_on_held_out_queries(tmp_path, scifact_slice, minilm_path):
    """all-MiniLM-L6-v2 with a new head, warm-started on the slice's corpus alone (no label read), reranking the
    hybrid top-10 of the slice's held-out test queries: far above where it started (the new head ranks at random)
    and within reach of the first stage it learned from. (Matching that first stage is the aim of issue 24 and not
    reached yet: 40 updates here give 0.83 against the hybrid's 0.92; docs/RESULTS.md has the full-size figures.)"""
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.data_prep.first_stage import FirstStage
    from rerankforge.eval.report import EvalSettings, evaluate
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.training.warm_start import GROUPS_FILE, SETTINGS_FILE, WarmStartArgs, warm_start

    out = tmp_path / "warm"
    config = _small_config(tmp_path, max_minutes=None, max_steps=40, batch_size=8, max_length=96, num_negatives=5)
    args = WarmStartArgs(data=str(scifact_slice), output_dir=str(out), model=minilm_path,
                         first_stage_model=minilm_path, config=config, num_queries=300, max_rank=15)
    folder = warm_start(args)
    rows = [json.loads(line) for line in (out / GROUPS_FILE).read_text().splitlines()]
    assert len(rows) >= 250 and all(row["query_id"].startswith("pseudo-") for row in rows)
    assert all(len(row["negative_scores"]) == 5 for row in rows)  # the hybrid's scores, distilled
    assert json.loads((out / SETTINGS_FILE).read_text())["num_queries"] == 300

    test = load_collection(str(scifact_slice), split="test")
    dense = build_retriever(test.corpus, RetrieverConfig(retriever="dense", model=minilm_path))
    stage = FirstStage({"dense": dense, "bm25": build_retriever(test.corpus, RetrieverConfig(retriever="bm25"))})
    settings = EvalSettings(depth=10, ks=(10,))
    first = stage.search(test.split_queries(), ["hybrid"], 10)
    from rerankforge.training.config import load_config
    from rerankforge.training.model import load_model

    start, tokenizer = load_model(load_config(["--config", config, "--train_file", config]), minilm_path)
    rerankers = [Reranker.load(folder, precision="fp32"), Reranker(start.eval(), tokenizer, 96, 16, name="start")]
    report = evaluate(test, first, rerankers, settings, rerank=["hybrid"])
    means = {system.name: system.means["nDCG@10"] for system in report.systems}
    warm, cold, hybrid = means["hybrid >> reranker"], means["hybrid >> start"], means["hybrid"]
    assert warm >= cold + 0.1 and warm >= hybrid - 0.15, means

    # Cached: a rerun finds the groups made and the training done.
    stamp = (out / GROUPS_FILE).stat().st_mtime_ns
    assert warm_start(args) == folder and (out / GROUPS_FILE).stat().st_mtime_ns == stamp
