"""Distillation: a student with the first layers of a trained reranker, trained on the teacher's scores."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml
import torch

from rerankforge.core.errors import ConfigError
from rerankforge.training import losses
from rerankforge.training.config import TrainConfig, load_config
from rerankforge.training.publish.hub import files_to_upload
from rerankforge.training.teachers.teacher import CACHE_FILE
from conftest import launch_two_processes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tiny_bert) -> str:
    """A tiny 3-layer random reranker without dropout, so a student identical to it scores exactly as it does."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    folder = tmp_path_factory.mktemp("tiny-teacher")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(2)
    model = AutoModelForSequenceClassification.from_config(config)
    with torch.no_grad():  # a head with some spread, so scores that belong to other pairs look different
        model.classifier.weight.normal_(0, 1.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _distill_args(mined: Path, data: Path, bi_encoder: str, teacher: str, out: Path, *extra: str) -> list[str]:
    return ["--train_file", str(mined), "--data", str(data), "--first_stage_model", bi_encoder, "--model", teacher,
            "--teacher", teacher, "--loss", "margin_mse", "--output_dir", str(out), "--dev_queries", "8",
            "--dev_depth", "10", "--num_negatives", "3", "--max_length", "96", "--batch_size", "4",
            "--eval_batch_size", "16", "--learning_rate", "1e-3", "--log_steps", "1", "--small_data_queries", "0", *extra]


def _first_loss(metrics: dict) -> float:
    return next(h["train/loss"] for h in metrics["history"] if "train/loss" in h)


# ---------------------------------------------------------------- the student

def test_student_keeps_the_teachers_first_layers_and_head(tiny_teacher, mined_slice):
    from rerankforge.training.model import load_model

    config = TrainConfig(train_file=str(mined_slice), model=tiny_teacher, student_layers=2)
    student, _ = load_model(config, tiny_teacher)
    teacher, _ = load_model(TrainConfig(train_file=str(mined_slice), model=tiny_teacher), tiny_teacher)
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    assert len(teacher.bert.encoder.layer) == 3
    ours, theirs = student.state_dict(), teacher.state_dict()
    assert set(ours) == {k for k in theirs if ".layer.2." not in k}
    for name, value in ours.items():  # embeddings, layers 0-1, pooler and scoring head: copied exactly
        assert torch.equal(value, theirs[name]), name


def test_student_keeps_chosen_layers_and_reads_back_as_a_plain_smaller_model(tiny_teacher, mined_slice, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from rerankforge.training.model import load_model

    config = load_config(["--train_file", str(mined_slice), "--model", tiny_teacher, "--student_layer_ids", "0", "2"])
    assert config.student_layers == 2 and config.student_layer_ids == [0, 2]
    student, tokenizer = load_model(config, tiny_teacher)
    teacher, _ = load_model(TrainConfig(train_file=str(mined_slice), model=tiny_teacher), tiny_teacher)
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    ours, theirs = student.state_dict(), teacher.state_dict()
    for name, value in ours.items():  # student layer 1 is the teacher's layer 2; the rest copied as named
        source = name.replace(".layer.1.", ".layer.2.")
        assert torch.equal(value, theirs[source]), name
    student.save_pretrained(tmp_path / "s")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "s").eval()
    batch = tokenizer(["a query"], ["a document about it"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, student.eval()(**batch).logits)


@pytest.mark.parametrize("extra, expected", [
    (["--student_layers", "0"], "student_layers must be at least 1, got 0"),
    (["--student_layers", "4"], "student_layers must be between 1 and the 3 layers of model .*, got 4"),
    (["--student_layer_ids", "0", "3"], r"student_layer_ids: model .* has layers 0 to 2, got \[0, 3\]"),
    (["--teacher", "no/such-folder/"], "teacher: model folder not found: no/such-folder/"),
])
def test_bad_student_or_teacher_stops_before_any_model_loads(extra, expected, tiny_teacher, mined_slice, tmp_path,
                                                             capsys, monkeypatch):
    from rerankforge.training import model as model_module
    from rerankforge.training.cli import train_main

    monkeypatch.setattr(model_module, "load_model", lambda *a: pytest.fail("a model loaded"))
    args = ["--train_file", str(mined_slice), "--model", tiny_teacher, "--teacher", tiny_teacher, "--loss",
            "listwise_kl", "--dev_queries", "8", "--output_dir", str(tmp_path / "out"), *extra]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(expected, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, expected", [
    (["--teacher", "T", "--loss", "listwise"], "teacher: distillation needs loss margin_mse or listwise_kl, got loss listwise"),
    (["--loss", "listwise", "--label_loss_weight", "0.5"], "label_loss_weight mixes .* got loss listwise"),
    (["--loss", "listwise_kl", "--label_loss_weight", "1.5"], r"label_loss_weight must be in \[0, 1\], got 1.5"),
    (["--loss", "listwise_kl", "--distill_temperature", "0"], "distill_temperature must be positive, got 0"),
    (["--student_layer_ids", "2", "1"], r"student_layer_ids: expected distinct layer numbers .* got \[2, 1\]"),
    (["--student_layer_ids", "0", "1", "--student_layers", "3"], r"student_layers \(3\) and student_layer_ids"),
])
def test_distillation_config_errors_name_the_key(args, expected, mined_slice):
    with pytest.raises(ConfigError, match=expected):
        load_config(["--train_file", str(mined_slice), *args])


# ---------------------------------------------------------------- losses

def test_distillation_losses_match_hand_computed_values():
    mask = torch.ones(1, 3, dtype=torch.bool)
    student, teacher = torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 1.0, 3.0]])
    # margin-MSE: student margins (1, 2), teacher margins (0, -2): ((1 - 0)^2 + (2 + 2)^2) / 2
    assert losses.margin_mse(student, mask, teacher).item() == pytest.approx(8.5)
    # The masked third document drops out: only the first margin counts.
    partial = torch.tensor([[True, True, False]])
    assert losses.margin_mse(student, partial, teacher).item() == pytest.approx(1.0)

    def softmax(values, t):
        exps = [math.exp(v / t) for v in values]
        return [e / sum(exps) for e in exps]

    for t in (1.0, 2.0):
        p, q = softmax([1.0, 1.0, 3.0], t), softmax([2.0, 1.0, 0.0], t)
        kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) * t * t
        assert losses.listwise_kl(student, mask, teacher, t).item() == pytest.approx(kl, rel=1e-5)
        assert losses.listwise_kl(teacher, mask, teacher, t).item() == pytest.approx(0.0, abs=1e-6)


def test_label_loss_weight_mixes_the_listwise_label_loss_in(mined_slice):
    scores, teacher = torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 1.0, 3.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    config = TrainConfig(train_file=str(mined_slice), loss="listwise_kl", label_loss_weight=0.25,
                         distill_temperature=2.0)
    kl = losses.listwise_kl(scores, mask, teacher, 2.0).item()
    ce = losses.listwise_softmax(scores, mask).item()
    assert losses.compute_loss(config, scores, mask, teacher).item() == pytest.approx(0.75 * kl + 0.25 * ce)


# ---------------------------------------------------------------- teacher scores

def test_teacher_scores_cache_is_reused_and_invalidated_when_the_train_file_or_teacher_changes(
        tmp_path, mined_slice, tiny_teacher, monkeypatch):
    from rerankforge.training.teachers import teacher as teacher_module
    from rerankforge.training.groups import build_groups
    from rerankforge.data_prep.training_files import read_training_rows

    mined, teacher = tmp_path / "mined.jsonl", tmp_path / "teacher"
    mined.write_text(Path(mined_slice).read_text())
    shutil.copytree(tiny_teacher, teacher)
    config = TrainConfig(train_file=str(mined), model=str(teacher), teacher=str(teacher), loss="margin_mse",
                         num_negatives=3, max_length=64, output_dir=str(tmp_path / "out"))
    scored = []
    real_score = teacher_module.score_pairs
    monkeypatch.setattr(teacher_module, "score_pairs", lambda pairs, *a, **k: scored.append(len(pairs))
                        or real_score(pairs, *a, **k))

    def attach():
        groups = build_groups(read_training_rows(mined), config)
        return groups, teacher_module.attach_teacher_scores(groups, config, str(teacher), "cpu", "fp32", False)

    groups, source = attach()
    assert source == "scored" and len(scored) == 1 and (tmp_path / "out" / CACHE_FILE).is_file()
    again, source = attach()
    assert source == "cached" and len(scored) == 1
    assert [g.teacher for g in again] == [g.teacher for g in groups]
    # Each group's scores are the teacher's scores of its own pairs.
    from rerankforge.reranker.scoring import Reranker

    direct = Reranker.load(str(teacher), max_length=64).score([(groups[5].query, d) for d in groups[5].docs])
    assert groups[5].teacher == pytest.approx(direct.tolist(), abs=1e-5)

    # What scoring never reads (an ONNX export beside the weights, checkpoints, a rewritten card) keeps the cache.
    (teacher / "onnx").mkdir()
    (teacher / "onnx" / "model.onnx").write_bytes(b"onnx")
    (teacher / "README.md").write_text("a new card\n")
    assert attach()[1] == "cached" and len(scored) == 1

    rows = [json.loads(line) for line in mined.read_text().splitlines()]
    rows[0]["positive"] = "A document that was not in the file before."
    mined.write_text("".join(json.dumps(r) + "\n" for r in rows))
    changed, source = attach()
    assert source == "scored" and len(scored) == 2
    assert changed[0].teacher[0] != groups[0].teacher[0] and changed[0].teacher[1:] == groups[0].teacher[1:]

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    with torch.no_grad():
        model.classifier.bias += 1.0
    model.save_pretrained(teacher)  # retrained teacher, same file names
    shifted, source = attach()
    assert source == "scored" and len(scored) == 3
    assert shifted[0].teacher == pytest.approx([s + 1.0 for s in changed[0].teacher], abs=1e-4)


# ---------------------------------------------------------------- training runs

def test_distilled_student_is_a_crossencoder_folder_with_fewer_layers(tmp_path, mined_slice, scifact_slice,
                                                                     tiny_bi_encoder, tiny_teacher, capsys):
    """Through the real loop: a 2-layer student of the 3-layer teacher, saved as a plain reranker folder. Its
    first loss is that of a student whose scores are the teacher's minus one layer -- not zero; a student
    identical to the teacher starts at zero loss only if every group met its own teacher scores."""
    from sentence_transformers import CrossEncoder

    from rerankforge.training.cli import train_main

    out = tmp_path / "student"
    args = _distill_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_teacher, out, "--student_layers", "2",
                         "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2")
    assert train_main(args) == 0
    assert "scores of the" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    scores = CrossEncoder(str(out), device="cpu").predict([("q", "a document"), ("q", "another")])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    card = (out / "README.md").read_text()
    assert f"Distilled from the local trained reranker `{Path(tiny_teacher).name}`" in card
    assert "first 2 transformer layers" in card and tiny_teacher not in card  # no path of this machine
    assert "margin-MSE" in card
    assert json.loads((out / "rerankforge.json").read_text())["fusion_weight"] >= 0
    assert (out / CACHE_FILE).is_file() and CACHE_FILE not in files_to_upload(out)

    same = tmp_path / "same"
    assert train_main(_distill_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_teacher, same,
                                    "--max_steps", "1", "--eval_steps", "0", "--save_steps", "0")) == 0
    assert _first_loss(json.loads((same / "metrics.json").read_text())) == pytest.approx(0.0, abs=1e-8)


def test_dev_queries_the_teacher_trained_on_are_refused(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                        tiny_teacher, capsys):
    """A teacher trained here (train_config.json beside it) with another dev split: some of the student's dev
    queries were its training queries, which would flatter the student's dev scores."""
    from rerankforge.training.cli import train_main

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    (teacher / "train_config.json").write_text(json.dumps({"train_file": str(mined_slice), "dev_queries": 8,
                                                           "seed": 1}))
    args = _distill_args(mined_slice, scifact_slice, tiny_bi_encoder, str(teacher), tmp_path / "out", "--max_steps", "1")
    assert train_main(args) == 2
    assert "dev_queries/seed: " in capsys.readouterr().err and not (tmp_path / "out").exists()
    (teacher / "train_config.json").write_text(json.dumps({"train_file": str(mined_slice), "dev_queries": 8,
                                                           "seed": 42}))
    from rerankforge.training.groups import split_dev
    from rerankforge.data_prep.training_files import read_training_rows
    from rerankforge.training.teachers.teacher import check_teacher

    config = load_config(args)
    assert check_teacher(config, str(teacher), split_dev(read_training_rows(mined_slice), 8, 42)[1]) is None


@pytest.mark.slow
def test_two_processes_each_get_the_teacher_scores_of_their_own_groups(tmp_path, mined_slice, scifact_slice,
                                                                       tiny_bi_encoder, tiny_teacher):
    """Two gloo CPU processes, a student identical to the teacher: its first loss is zero only if the groups
    each process draws from accelerate's dataloader came with their own teacher scores."""
    out = tmp_path / "ddp"
    args = _distill_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_teacher, out, "--max_steps", "1",
                         "--eval_steps", "0", "--save_steps", "0", "--fit_combination", "false")
    result = launch_two_processes(args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("scores of the") == 1  # logged by the main process only
    assert _first_loss(json.loads((out / "metrics.json").read_text())) == pytest.approx(0.0, abs=1e-8)


def test_the_distillation_recipe_is_paired_with_its_teachers(mined_slice):
    """configs/scifact_minilm_distill_l3.yaml distils the reranker of configs/scifact_minilm_full.yaml, from its
    own layers, with its dev split (so the dev queries are unseen by teacher and student alike)."""
    def recipe(name):
        return load_config(["--config", str(REPO / "configs" / name), "--train_file", str(mined_slice)])

    student, teacher = recipe("scifact_minilm_distill_l3.yaml"), recipe("scifact_minilm_full.yaml")
    assert student.teacher == student.model == teacher.output_dir and student.student_layers == 3
    assert student.loss in ("margin_mse", "listwise_kl")
    for key in ("data", "split", "dev_queries", "seed", "first_stage_model", "dev_depth"):
        assert getattr(student, key) == getattr(teacher, key), key
    original = [yaml.safe_load((REPO / "configs" / n).read_text())["train_file"]
                for n in ("scifact_minilm_distill_l3.yaml", "scifact_minilm_full.yaml")]
    assert original[0] == original[1]
