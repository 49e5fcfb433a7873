"""`rerankforge demo` end to end on a SciFact slice with tiny models: mine -> train -> eval report."""

from __future__ import annotations

import json

import yaml

from rerankforge.reranker.combiner import Combiner

from rerankforge.cli.main import main as rerankforge


def test_demo_runs_the_whole_pipeline(tmp_path, scifact_slice, tiny_bi_encoder, capsys):
    from rerankforge.cli.demo import DEMO_CONFIG
    from rerankforge.training.warm_start import WARM_START_CONFIG

    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config.update(max_length=64, batch_size=4, num_negatives=3, num_epochs=1, max_steps=4, dev_depth=10,
                  mixed_precision="no", save_steps=2, log_steps=2)
    small = tmp_path / "demo.yaml"
    small.write_text(yaml.safe_dump(config))
    warm = yaml.safe_load(WARM_START_CONFIG.read_text())
    warm.update(max_length=64, num_negatives=3, mixed_precision="no", save_steps=2, log_steps=2)
    (tmp_path / "warm.yaml").write_text(yaml.safe_dump(warm))
    out = tmp_path / "demo"
    assert rerankforge(["demo", "--data", str(scifact_slice), "--model", tiny_bi_encoder, "--config", str(small),
                        "--warm_start", str(tmp_path / "warm.yaml"), "--warm_start_minutes", "0.02", "--output_dir", str(out),
                        "--depth", "10", "--precision", "fp32"]) == 0
    printed, logged = capsys.readouterr()
    assert "[2/5] warm start on the corpus alone" in printed and "precision fp32; stopped by " in printed
    assert "[5/5] evaluating" in printed and "hybrid >> reranker" in printed and "report:" in printed
    assert "stopped by max_steps: 4 updates" in printed  # the labelled training, from the warm start
    assert "precision: fp32 (as configured)" in logged and "CPU thread(s) per process" in logged
    summary = json.loads((out / "mined.train.summary.json").read_text())
    assert summary["queries"] == 40
    trained = json.loads((out / "reranker" / "train_config.json").read_text())
    assert trained["dev_queries"] == 4 and trained["train_file"] == str(out / "mined.train.jsonl")
    assert trained["model"] == str(out / "warm-start" / "reranker")  # fine-tuned from the warm start
    assert json.loads((out / "warm-start" / "reranker" / "train_config.json").read_text())["dev_queries"] == 0
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    names = list(metrics["systems"])
    served = json.loads((out / "reranker" / "rerankforge.json").read_text())["fusion_weights"]
    # each signal alone, the reranker alone on the hybrid candidates, and the served ranking where it is not that
    assert names[:4] == ["bm25", "dense", "hybrid", "hybrid >> reranker"]
    assert names[4:] == ([] if served == {"reranker": 1.0} else ["hybrid >> reranker (served)"])
    if names[4:]:
        assert metrics["systems"][names[4]]["combination"] == Combiner(served).describe()
    assert (out / "report" / "report.md").is_file() and (out / "report" / "plots" / "ndcg_vs_depth.png").is_file()


def test_the_demo_can_start_from_the_bi_encoder(tmp_path, scifact_slice, tiny_bi_encoder, capsys):
    from rerankforge.cli.demo import DEMO_CONFIG

    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config.update(max_length=64, batch_size=4, num_negatives=3, max_steps=2, dev_depth=10, mixed_precision="no")
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "demo"
    assert rerankforge(["demo", "--data", str(scifact_slice), "--model", tiny_bi_encoder, "--config",
                        str(tmp_path / "demo.yaml"), "--warm_start", "none", "--output_dir", str(out), "--depth", "10",
                        "--precision", "fp32"]) == 0
    assert "[4/4] evaluating" in capsys.readouterr().out and not (out / "warm-start").exists()
    assert json.loads((out / "reranker" / "train_config.json").read_text())["model"] == tiny_bi_encoder
    assert rerankforge(["demo", "--data", str(scifact_slice), "--warm_start", str(tmp_path / "nope.yaml"),
                        "--output_dir", str(out)]) == 2
    assert "--warm_start: warm-start config not found" in capsys.readouterr().err


def test_the_demo_ends_with_its_report_on_a_corpus_with_empty_documents(tmp_path, scifact_slice, tiny_bi_encoder,
                                                                          capsys):
    """PDF and HTML extraction leave documents with no text: a judged positive of train and of test among them,
    and one with a title only. The demo trains, reports, and says what was left out."""
    import shutil

    from rerankforge.cli.demo import DEMO_CONFIG

    data = tmp_path / "extracted"
    shutil.copytree(scifact_slice, data)
    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open()]
    judged = {split: [line.split("\t")[1] for line in (data / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]]
              for split in ("train", "test")}
    blank = sorted({judged["train"][0], next(d for d in judged["test"] if d != judged["train"][0])})
    for doc in corpus:
        if doc["_id"] in blank:
            doc.update(title="", text=" \n\u200b")
    corpus[-1]["text"] = ""  # a title, no text
    (data / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config.update(max_length=64, batch_size=4, num_negatives=3, max_steps=2, dev_depth=10, mixed_precision="no")
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(config))
    assert rerankforge(["demo", "--data", str(data), "--model", tiny_bi_encoder, "--config", str(tmp_path / "demo.yaml"),
                        "--warm_start", "none", "--output_dir", str(tmp_path / "demo"), "--depth", "10",
                        "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert "hybrid >> reranker" in printed and "report:" in printed
    for split in ("train", "test"):
        assert f"data ({split}): {data / 'corpus.jsonl'}: 2 documents have neither title nor text and are left out: " \
               f"'{blank[0]}', '{blank[1]}'; " in printed
    assert f"data (test): {data / 'corpus.jsonl'}: 1 documents have no text and use their title: " \
           f"'{corpus[-1]['_id']}'" in printed
