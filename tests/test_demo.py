"""`rerankforge demo` end to end on a SciFact slice with tiny models: mine -> train -> eval report."""

from __future__ import annotations

import json

import yaml

from rerankforge.reranker.combiner import Combiner

from rerankforge.cli.main import main as rerankforge


def test_demo_runs_the_whole_pipeline(tmp_path, scifact_slice, tiny_bi_encoder, capsys):
    from rerankforge.cli.demo import DEMO_CONFIG

    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config.update(max_length=64, batch_size=4, num_negatives=3, num_epochs=1, max_steps=4, dev_depth=10,
                  mixed_precision="no", save_steps=2, log_steps=2)
    small = tmp_path / "demo.yaml"
    small.write_text(yaml.safe_dump(config))
    out = tmp_path / "demo"
    assert rerankforge(["demo", "--data", str(scifact_slice), "--model", tiny_bi_encoder, "--config", str(small),
                        "--output_dir", str(out), "--depth", "10", "--precision", "fp32"]) == 0
    printed, logged = capsys.readouterr()
    assert "[4/4] evaluating" in printed and "hybrid >> reranker" in printed and "report:" in printed
    assert "precision: fp32 (as configured)" in logged and "CPU thread(s) per process" in logged
    summary = json.loads((out / "mined.train.summary.json").read_text())
    assert summary["queries"] == 40
    trained = json.loads((out / "reranker" / "train_config.json").read_text())
    assert trained["dev_queries"] == 4 and trained["train_file"] == str(out / "mined.train.jsonl")
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    names = list(metrics["systems"])
    served = json.loads((out / "reranker" / "rerankforge.json").read_text())["fusion_weights"]
    # each signal alone, the reranker alone on the hybrid candidates, and the served ranking where it is not that
    assert names[:4] == ["bm25", "dense", "hybrid", "hybrid >> reranker"]
    assert names[4:] == ([] if served == {"reranker": 1.0} else ["hybrid >> reranker (served)"])
    if names[4:]:
        assert metrics["systems"][names[4]]["combination"] == Combiner(served).describe()
    assert (out / "report" / "report.md").is_file() and (out / "report" / "plots" / "ndcg_vs_depth.png").is_file()
