"""Training: config checks, losses, groups, and real (tiny) training runs through accelerate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rerankforge.core.errors import ConfigError, DataError
from rerankforge.reranker.combiner import Combiner
from rerankforge.training import losses
from rerankforge.training.config import TrainConfig, load_config
from rerankforge.training.groups import LengthGroupedBatches, build_groups, split_dev
from rerankforge.data_prep.training_files import read_training_rows
from conftest import launch_two_processes

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- configs

def test_command_line_overrides_yaml(tmp_path, mined_slice):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(f"train_file: {mined_slice}\nmax_steps: 5\nlora: false\nlearning_rate: 1.0e-4\n")
    config = load_config(["--config", str(yaml_file), "--max_steps", "20", "--lora", "true",
                          "--lora_target_modules", "query", "value", "--pos_weight", "none"])
    assert (config.max_steps, config.lora, config.lora_target_modules) == (20, True, ["query", "value"])
    assert config.learning_rate == 1e-4 and config.pos_weight is None


@pytest.mark.parametrize("text, expected", [
    ("learning_rte: 1e-4", "unknown config key 'learning_rte'; did you mean 'learning_rate'?"),
    ("max_steps: many", "max_steps expects an integer, got 'many'"),
    ("lora: maybe", "lora expects true or false, got 'maybe'"),
    ("loss: hinge", "loss must be one of listwise, bce, ranknet, margin, margin_mse, listwise_kl; got 'hinge'"),
    ("lora_target_modules: query", "lora_target_modules expects a non-empty list of strings"),
    ("batch_size: 0", "batch_size must be at least 1, got 0"),
    ("- a list", "expected a mapping of config keys, got list"),
])
def test_bad_yaml_is_named(tmp_path, mined_slice, text, expected):
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text(f"train_file: {mined_slice}\n{text}\n" if ":" in text.split()[0] else text + "\n")
    with pytest.raises(ConfigError) as error:
        load_config(["--config", str(yaml_file)])
    assert expected in str(error.value)


def test_unknown_command_line_key_suggests(mined_slice):
    with pytest.raises(ConfigError, match="unknown config key 'max_step'; did you mean 'max_steps'"):
        load_config(["--train_file", str(mined_slice), "--max_step", "3"])


def test_missing_data_file():
    with pytest.raises(ConfigError, match="train_file: no such file: nowhere.jsonl"):
        load_config(["--train_file", "nowhere.jsonl"])


def test_bad_configs_stop_before_any_model_loads(tmp_path, mined_slice, tiny_bert, monkeypatch):
    """Unknown LoRA target module: found from the model's config alone, no weights read."""
    import transformers

    from rerankforge.training.cli import train_main

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", no_load)
    args = ["--train_file", str(mined_slice), "--model", tiny_bert, "--output_dir", str(tmp_path / "out")]
    assert train_main([*args, "--lora", "true", "--lora_target_modules", "query", "qkv_proj"]) == 2
    assert train_main([*args, "--num_negatives", "0"]) == 2
    assert not (tmp_path / "out").exists()


def test_lora_target_error_names_the_modules(tiny_bert, mined_slice, capsys):
    from rerankforge.training.cli import train_main

    assert train_main(["--train_file", str(mined_slice), "--model", tiny_bert, "--lora", "true",
                       "--lora_target_modules", "qkv_proj"]) == 2
    err = capsys.readouterr().err
    assert "lora_target_modules: ['qkv_proj'] not in model" in err and "query" in err and "classifier" in err


# ---------------------------------------------------------------- losses

def test_losses_match_hand_computed_values():
    scores = torch.tensor([[2.0, 1.0, 0.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    expected_ce = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))
    assert losses.listwise_softmax(scores, mask).item() == pytest.approx(expected_ce, rel=1e-6)
    ranknet = (math.log1p(math.exp(-1)) + math.log1p(math.exp(-2))) / 2
    assert losses.ranknet(scores, mask).item() == pytest.approx(ranknet, rel=1e-6)
    assert losses.margin_ranking(scores, mask, margin=1.5).item() == pytest.approx((0.5 + 0.0) / 2)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    bce = (-2 * math.log(sig(2)) - math.log(1 - sig(1)) - math.log(1 - sig(0))) / 4
    assert losses.binary_cross_entropy(scores, mask, pos_weight=2.0).item() == pytest.approx(bce, rel=1e-6)
    teacher = torch.tensor([[3.0, 1.0, 1.0]])
    assert losses.margin_mse(scores, mask, teacher).item() == pytest.approx(((1 - 2) ** 2 + (2 - 2) ** 2) / 2)
    assert losses.listwise_kl(scores, mask, scores).item() == pytest.approx(0.0, abs=1e-6)


def test_masked_entries_do_not_count():
    scores = torch.tensor([[2.0, 1.0, 50.0]])
    mask = torch.tensor([[True, True, False]])
    two = torch.tensor([[2.0, 1.0]])
    full = torch.ones(1, 2, dtype=torch.bool)
    assert losses.listwise_softmax(scores, mask).item() == pytest.approx(losses.listwise_softmax(two, full).item())
    assert losses.ranknet(scores, mask).item() == pytest.approx(losses.ranknet(two, full).item())
    smoothed = losses.listwise_softmax(scores, mask, label_smoothing=0.2).item()
    assert smoothed == pytest.approx(losses.listwise_softmax(two, full, label_smoothing=0.2).item())


def test_label_smoothing_spreads_the_target_over_the_real_documents(mined_slice):
    scores = torch.tensor([[2.0, 1.0, 0.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    log_p = torch.log_softmax(scores[0], dim=0).tolist()
    target = [0.7 + 0.1, 0.1, 0.1]  # e = 0.3 over 3 documents
    expected = -sum(t * lp for t, lp in zip(target, log_p))
    assert losses.listwise_softmax(scores, mask, label_smoothing=0.3).item() == pytest.approx(expected, rel=1e-6)
    # torch's own label smoothing gives the same where no entry is masked
    torch_ce = torch.nn.functional.cross_entropy(scores, torch.tensor([0]), label_smoothing=0.3).item()
    assert losses.listwise_softmax(scores, mask, label_smoothing=0.3).item() == pytest.approx(torch_ce, rel=1e-6)
    with pytest.raises(ConfigError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        load_config(["--train_file", str(mined_slice), "--label_smoothing", "1.0"])
    with pytest.raises(ConfigError, match="label_smoothing softens the listwise loss's target; expected loss"):
        load_config(["--train_file", str(mined_slice), "--label_smoothing", "0.1", "--loss", "bce"])


# ---------------------------------------------------------------- groups

def test_dev_queries_never_in_training(mined_slice):
    rows = read_training_rows(mined_slice)
    train_rows, dev_ids = split_dev(rows, dev_queries=8, seed=3)
    assert len(dev_ids) == 8 and not {r["query_id"] for r in train_rows} & set(dev_ids)
    assert len(train_rows) + sum(r["query_id"] in dev_ids for r in rows) == len(rows)
    assert split_dev(rows, 8, seed=3)[1] == dev_ids


def test_short_groups_are_filled_with_other_queries_negatives(mined_slice):
    rows = sorted(read_training_rows(mined_slice), key=lambda r: -len(r["negatives"]))
    rows[0] = {**rows[0], "negatives": rows[0]["negatives"][:1], "negative_scores": rows[0]["negative_scores"][:1]}
    config = TrainConfig(train_file=str(mined_slice), num_negatives=4)
    groups = build_groups(rows, config)
    assert all(len(g.docs) == 5 for g in groups) and groups[0].real == [True] * 5
    distil = build_groups(rows, TrainConfig(train_file=str(mined_slice), num_negatives=4, loss="margin_mse"))
    assert distil[0].real == [True, True, False, False, False] and len(distil[0].teacher) == 5


def test_training_pairs_are_tokenised_as_the_reranker_scores_them(tiny_bert, mined_slice):
    """Training and scoring see the same tokens: the query whole, the document cut (never longest_first,
    which would cut a long query too), batches padded by the same collate."""
    from transformers import AutoTokenizer

    from rerankforge.reranker.packing import PairEncoder
    from rerankforge.training.groups import Collator, TokenizedGroups

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    config = TrainConfig(train_file=str(mined_slice), num_negatives=3, max_length=128)
    groups = build_groups(read_training_rows(mined_slice)[:4], config)
    groups[0].query = " ".join(["protein"] * 80)  # longest_first would cut it to 62 tokens
    encoder = PairEncoder(tokenizer, config.max_length)
    dataset = TokenizedGroups(groups, encoder)
    pairs = [(g.query, d) for g in groups for d in g.docs]
    assert dataset.features == PairEncoder(tokenizer, config.max_length).encode(pairs)
    first = dataset[0]["pairs"][0]
    assert tokenizer.decode(first.input_ids).count("protein") == 80 and len(first.input_ids) == 128
    batch = Collator(encoder)([dataset[0], dataset[1]])
    assert batch["inputs"]["input_ids"].shape[0] == 2 * 4 and batch["group_size"] == 4
    assert batch["inputs"]["attention_mask"].sum(1).tolist() == [len(p.input_ids) for i in (0, 1)
                                                                  for p in dataset[i]["pairs"]]


def test_too_few_training_queries_is_said_plainly_before_any_model_loads(tmp_path, mined_slice, tiny_bert, capsys,
                                                                         monkeypatch):
    from rerankforge.training import model as model_module
    from rerankforge.training.cli import train_main

    rows = read_training_rows(mined_slice)
    few = tmp_path / "few.jsonl"
    keep = list(dict.fromkeys(str(r["query_id"]) for r in rows))[:12]
    few.write_text("".join(json.dumps(r) + "\n" for r in rows if str(r["query_id"]) in keep))
    monkeypatch.setattr(model_module, "load_model", lambda *a: pytest.fail("a model loaded"))
    out = tmp_path / "out"
    assert train_main(["--train_file", str(few), "--model", tiny_bert, "--dev_queries", "4", "--output_dir",
                       str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "8 judged training queries (after holding out 4 for dev), fewer than min_train_queries=10" in err
    assert "serve the first stage" in err and "min_train_queries: 0" in err and not out.exists()


def test_mined_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query_id": "1", "query": "q", "positive": "p", "negatives": []}\n{"query": "q"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: expected fields .* missing query_id, positive, negatives"):
        read_training_rows(bad)


def test_length_grouped_batches_cover_everything_once_and_are_seeded():
    lengths = [5, 100, 7, 90, 3, 60, 61, 8, 9, 10, 11]
    sampler = LengthGroupedBatches(lengths, batch_size=3, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths))) and len(batches) == len(sampler)
    assert batches == list(LengthGroupedBatches(lengths, 3, seed=1))
    sampler.epoch = 1
    assert list(sampler) != batches


# ---------------------------------------------------------------- training runs

def _tiny_args(mined: Path, data: Path, bi_encoder: str, model: str, out: Path, *extra: str) -> list[str]:
    return ["--train_file", str(mined), "--data", str(data), "--first_stage_model", bi_encoder, "--model", model,
            "--output_dir", str(out), "--dev_queries", "8", "--dev_depth", "10", "--num_negatives", "3",
            "--max_length", "96", "--batch_size", "4", "--eval_batch_size", "16", "--learning_rate", "1e-3",
            "--eval_steps", "3", "--save_steps", "3", "--log_steps", "1", "--small_data_queries", "0", *extra]


def _scores(folder: Path, pairs):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), device="cpu").predict(pairs, activation_fn=torch.nn.Identity())


PAIRS = [("what lowers blood pressure", "Exercise lowers blood pressure in adults."),
         ("what lowers blood pressure", "Protein folding in yeast."),
         ("gene expression", "Transcription factors regulate gene expression.")]


@pytest.mark.parametrize("encoder", ["tiny_bert", "tiny_xlmr"])
def test_training_writes_a_crossencoder_folder(encoder, request, tmp_path, mined_slice, scifact_slice,
                                               tiny_bi_encoder, capsys):
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.training.cli import train_main

    out = tmp_path / "out"
    model = request.getfixturevalue(encoder)
    assert train_main(_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, model, out, "--max_steps", "6")) == 0
    assert {"config.json", "model.safetensors", "README.md", "metrics.json", "train_config.json"} <= {
        p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["dev_reranked"]["nDCG@10"] >= 0
    printed, logged = capsys.readouterr()
    assert "trained 6 steps" in printed
    settings = json.loads((out / "rerankforge.json").read_text())
    if "calibration" in metrics:  # fitted on dev, saved with the model, read back by the scorer
        assert settings["calibration_scale"] == metrics["calibration"]["scale"] > 0
        assert Reranker.load(str(out)).calibration.bias == settings["calibration_bias"]
    else:  # a 6-step tiny model may rank dev backwards: then it is not fitted, and the run says why
        assert "calibration: not fitted" in logged and "calibration_scale" not in settings
    ours = Reranker.load(str(out)).score(PAIRS)
    assert _scores(out, PAIRS) == pytest.approx(ours, abs=1e-4)
    card = (out / "README.md").read_text()
    assert "| first stage (hybrid) |" in card
    assert "base_model" not in card.split("\n---\n")[0] and model not in card  # a local base: named, never a path


def test_lora_adapter_and_merged_model_score_like_the_trained_model(tmp_path, mined_slice, scifact_slice,
                                                                    tiny_bi_encoder, tiny_bert):
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.training.config import load_config
    from rerankforge.training.loop import train

    out = tmp_path / "lora"
    config = load_config(_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out, "--max_steps", "4",
                                     "--lora", "true", "--lora_r", "4", "--keep_best", "false"))
    train(config)
    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == tiny_bert
    merged = Reranker.load(str(out)).score(PAIRS)
    from_adapter = Reranker.load(str(adapter)).score(PAIRS)
    assert from_adapter == pytest.approx(merged, abs=1e-4)
    assert _scores(out, PAIRS) == pytest.approx(merged, abs=1e-4)


def test_kill_and_resume_gives_the_same_model(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert,
                                              monkeypatch):
    from safetensors.torch import load_file

    from rerankforge.training import loop
    from rerankforge.training.config import load_config

    args = lambda out: _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,  # noqa: E731
                                  "--max_steps", "9", "--num_epochs", "3", "--keep_best", "false")
    loop.train(load_config(args(tmp_path / "straight")))

    real_save = loop.save_checkpoint

    def save_then_die(accelerator, output_dir, state):
        real_save(accelerator, output_dir, state)
        if state.step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        loop.train(load_config(args(tmp_path / "killed")))
    assert (tmp_path / "killed" / "checkpoints" / "step-6").is_dir()
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    metrics = loop.train(load_config(args(tmp_path / "killed")))
    assert metrics["steps"] == 9
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "killed" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.allclose(straight[name], resumed[name], atol=1e-5), name


def _killed_after_saving(monkeypatch, loop, config, at_step: int | None = None):
    """Train with `config` until the checkpoint of `at_step` (None: the first) is saved, then die as a kill would;
    returns the real `save_checkpoint`, for the rerun."""
    real_save = loop.save_checkpoint

    def save_then_die(accelerator, output_dir, state):
        real_save(accelerator, output_dir, state)
        if at_step is None or state.step == at_step:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        loop.train(config)
    return real_save


def test_killed_after_its_last_checkpoint_the_rerun_records_each_evaluation_once(tmp_path, mined_slice,
                                                                                  scifact_slice, tiny_bi_encoder,
                                                                                  tiny_bert, monkeypatch):
    """Found by benchmarks/kill_anywhere.py: a run killed after the checkpoint of its last step (which holds that
    step's dev evaluation) evaluated it again on the rerun, and metrics.json listed the final row twice; a
    half-deleted older checkpoint and a killed save's staging folder stayed; the logged loss after a resume
    averaged only the batches since it."""
    from rerankforge.training import loop
    from rerankforge.training.config import load_config

    args = lambda out: _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,  # noqa: E731
                                  "--max_steps", "6", "--fit_combination", "false")
    straight = loop.train(load_config(args(tmp_path / "straight")))
    real_save = _killed_after_saving(monkeypatch, loop, load_config(args(tmp_path / "killed")), at_step=6)
    killed = tmp_path / "killed"
    # what a kill at other moments leaves: an older checkpoint half-deleted, a final save's staging folder
    (killed / "checkpoints" / "step-3").mkdir()
    (killed / "checkpoints" / "step-3" / "optimizer.bin").write_bytes(b"half")
    (killed / ".staging-x1").mkdir()
    (killed / ".staging-x1" / "config.json").write_text("{}")
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    resumed = loop.train(load_config(args(killed)))
    dev_steps = lambda m: [h["step"] for h in m["history"] if "dev/nDCG@10" in h]  # noqa: E731
    assert dev_steps(resumed) == dev_steps(straight) == [3, 6]
    assert resumed["best_step"] == straight["best_step"]
    losses = lambda m: [h["train/loss"] for h in m["history"] if "train/loss" in h]  # noqa: E731
    assert losses(resumed) == pytest.approx(losses(straight), abs=1e-6)  # the loss window resumes too
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["step-6"]
    assert not list(killed.glob(".staging-*"))


def test_resume_keeps_the_best_weights_of_its_checkpoint(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                          tiny_bert, monkeypatch):
    """Best weights kept after the last checkpoint (the run then died) must not leak into the resumed run:
    the checkpoint carries the kept-best weights that go with its best dev score."""
    from safetensors.torch import load_file, save_file

    from rerankforge.training import checkpoints, loop
    from rerankforge.training.config import load_config
    from rerankforge.training.dev.dev_eval import DevSet

    # Every evaluation scores the same (above the first stage), so the best is always the first one (step 3).
    monkeypatch.setattr(DevSet, "first_stage", lambda self: {"nDCG@10": 0.4, "MRR@10": 0.4})
    monkeypatch.setattr(DevSet, "evaluate", lambda self, reranker: {"nDCG@10": 0.5, "MRR@10": 0.5})
    args = lambda out: _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,  # noqa: E731
                                  "--max_steps", "9", "--num_epochs", "3", "--save_steps", "6",
                                  "--fit_combination", "false")
    assert loop.train(load_config(args(tmp_path / "straight")))["best_step"] == 3

    real_save = loop.save_checkpoint

    def save_then_die(accelerator, output_dir, state):
        real_save(accelerator, output_dir, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        loop.train(load_config(args(tmp_path / "killed")))
    killed = tmp_path / "killed"
    kept = killed / checkpoints.BEST / checkpoints.BEST_WEIGHTS
    in_checkpoint = killed / "checkpoints" / "step-6" / checkpoints.BEST_WEIGHTS
    assert in_checkpoint.read_bytes() == kept.read_bytes()
    # As if a later evaluation had kept other weights before the process died.
    save_file({name: torch.zeros_like(t) for name, t in load_file(kept).items()}, str(kept))
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    assert loop.train(load_config(args(killed)))["best_step"] == 3
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(killed / "model.safetensors")
    for name in straight:
        assert torch.allclose(straight[name], resumed[name], atol=1e-5), name


@pytest.mark.parametrize("dev_figures, steps, best_step", [
    ([0.3, 0.35, 0.6, 0.5, 0.5, 0.5], 10, 6),  # waits below the first stage, then keeps step 6, stops 2 later
    ([0.3] * 6, 12, 12),  # never above the first stage: no early stop, and the planned run's end is kept
])
def test_keep_best_and_early_stopping_wait_for_a_checkpoint_above_the_first_stage(
        dev_figures, steps, best_step, tmp_path, mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert,
        monkeypatch):
    """On a small dev split, checkpoints that don't beat the first stage are noise to choose among: they are
    neither kept as the best nor counted towards early stopping."""
    from rerankforge.training import loop
    from rerankforge.training.config import load_config
    from rerankforge.training.dev.dev_eval import DevSet

    figures = iter({"nDCG@10": v, "MRR@10": v} for v in dev_figures)
    monkeypatch.setattr(DevSet, "first_stage", lambda self: {"nDCG@10": 0.4, "MRR@10": 0.4})
    monkeypatch.setattr(DevSet, "evaluate", lambda self, scores: next(figures))
    out = tmp_path / "out"
    metrics = loop.train(load_config(_tiny_args(
        mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out, "--max_steps", "12", "--num_epochs", "9",
        "--eval_steps", "2", "--save_steps", "0", "--early_stopping_patience", "2", "--fit_combination", "false",
        "--calibrate", "false")))
    assert (metrics["steps"], metrics["best_step"]) == (steps, best_step)
    assert metrics["dev_reranked"]["nDCG@10"] == dev_figures[best_step // 2 - 1]


def test_wandb_offline_run_holds_the_metrics(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert,
                                             monkeypatch):
    from rerankforge.training.cli import train_main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # W&B's own environment is honoured (WANDB_DIR, WANDB_RUN_GROUP, ...); config keys override it.
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_RUN_GROUP", "sweep-7")
    monkeypatch.setenv("WANDB_TAGS", "scifact-slice")
    out = tmp_path / "wb"
    assert train_main(_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out, "--max_steps", "3",
                                 "--report_to", "wandb", "--run_name", "offline-test")) == 0
    assert not (out / "wandb").exists()
    runs = list((tmp_path / "wandb-home" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    assert b"sweep-7" in runs[0].read_bytes() and b"scifact-slice" in runs[0].read_bytes()
    # The offline run log is protobuf records (wandb reads it with its Go core); the history items hold the
    # metric names and their JSON values as plain bytes.
    log = runs[0].read_bytes()
    for key in ("train/loss", "train/lr", "train/pairs_per_s", "train/tokens_per_s", "dev/nDCG@10", "learning_rate"):
        assert key.encode() in log, key
    best = json.loads((out / "metrics.json").read_text())["dev_reranked"]["nDCG@10"]
    assert json.dumps(best).encode() in log


def test_hub_dry_run_and_patched_upload(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert,
                                        monkeypatch, capsys):
    import huggingface_hub

    from rerankforge.cli.main import main as rerankforge
    from rerankforge.training.cli import train_main

    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(
        ("create", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    out = tmp_path / "hub"
    assert train_main(_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out, "--max_steps", "3",
                                 "--lora", "true", "--push_to_hub", "true", "--hub_model_id", "me/scifact")) == 0
    create, upload = calls
    assert create[1] == "me/scifact" and create[2]["private"] is True
    uploaded = upload[1]["allow_patterns"]
    assert {"model.safetensors", "README.md", "config.json", "config_sentence_transformers.json", "modules.json",
            "sentence_bert_config.json"} <= set(uploaded)
    assert not any(f.startswith("checkpoints") for f in uploaded)
    # The adapter's base is the local tiny model, a path of this machine: the adapter stays home, and says why.
    assert not any(f.startswith("adapter/") for f in uploaded) and "adapter/ not uploaded" in capsys.readouterr().out
    (out / "config_sentence_transformers.json").unlink()  # as in a folder trained by an earlier version
    assert rerankforge(["push", "--folder", str(out), "--hub_model_id", "me/scifact", "--dry_run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["would_upload"] == uploaded and len(calls) == 2 and tiny_bert in printed["left_out"]


@pytest.mark.slow
def test_two_process_run_shares_the_data_saves_once_and_keeps_the_schedule(tmp_path, mined_slice, scifact_slice,
                                                                          tiny_bi_encoder, tiny_bert):
    """Two gloo CPU processes with gradient accumulation: each takes every other batch, only the main process
    saves, and the learning rate follows one process's schedule over as many optimizer steps (a prepared
    scheduler steps once per process on each update, so it must be built that many times longer)."""
    from rerankforge.training.loop import train

    schedule = ["--batch_size", "2", "--gradient_accumulation_steps", "2", "--warmup_ratio", "0.5",
                "--eval_steps", "0", "--save_steps", "0"]
    out = tmp_path / "ddp"
    args = _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out, "--num_epochs", "1", *schedule)
    result = launch_two_processes(args)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    groups = len(split_dev(read_training_rows(mined_slice), 8, 42)[0])
    # Each process gets every other batch of 2 groups and updates once every 2 of its batches.
    steps = math.ceil(math.ceil(math.ceil(groups / 2) / 2) / 2)
    assert metrics["steps"] == steps >= 3
    assert result.stdout.count("trained ") == 1  # only the main process saves and reports

    one = train(load_config(_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, tmp_path / "one",
                                       "--max_steps", str(steps), "--fit_combination", "false", *schedule)))
    lr = lambda m: {h["step"]: h["train/lr"] for h in m["history"] if "train/lr" in h}  # noqa: E731
    assert list(lr(metrics)) == list(lr(one)) == list(range(1, steps + 1))
    assert list(lr(metrics).values()) == pytest.approx(list(lr(one).values()), rel=1e-9, abs=1e-12)
    # The one-process schedule itself: linear warmup to the peak over half the steps, then down to 0 at the end.
    warmup = int(0.5 * steps)
    assert lr(one)[warmup] == pytest.approx(1e-3) and lr(one)[steps] == 0 < lr(one)[steps - 1]


class _WritesAMarker:
    """What a crafted checkpoint file can hold: unpickling it runs code (here: it creates `marker`)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_resume_refuses_checkpoint_files_that_would_run_code(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                             tiny_bert, capsys):
    """A checkpoint folder from someone else must not run code on resume: the training state is JSON, and a
    pickle anywhere in the checkpoint (accelerate's own files included) must load with weights_only=True.
    A checkpoint of the old format (the state in custom_checkpoint_0.pkl) is refused with what to do."""
    import shutil

    from rerankforge.training.cli import train_main

    args = lambda out: _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,  # noqa: E731
                                  "--max_steps", "3", "--fit_combination", "false")
    assert train_main(args(tmp_path / "done")) == 0
    checkpoint = Path("checkpoints") / "step-3"
    saved = {p.name for p in (tmp_path / "done" / checkpoint).iterdir()}
    assert {"train_state.json", "model.safetensors", "random_states_0.pkl"} <= saved
    assert not any(name.startswith("custom_checkpoint") for name in saved)

    marker = tmp_path / "code-ran"
    cases = [("custom_checkpoint_0.pkl", "custom_checkpoint_0.pkl: a checkpoint in an old, unsafe format"),
             ("random_states_0.pkl", "random_states_0.pkl: expected a torch file of tensors and plain values"),
             ("optimizer.bin", "optimizer.bin: expected a torch file of tensors and plain values")]
    for name, expected in cases:
        out = tmp_path / name
        shutil.copytree(tmp_path / "done", out)
        torch.save(_WritesAMarker(marker), out / checkpoint / name)
        capsys.readouterr()
        assert train_main(args(out)) == 2, name
        err = capsys.readouterr().err
        assert expected in err and "\n" not in err.strip(), err
        assert not marker.exists(), f"unpickling {name} ran code"
        if name.startswith("custom_checkpoint"):
            assert f"Delete {out / 'checkpoints'} to start the training over" in err

    out = tmp_path / "bad-state"
    shutil.copytree(tmp_path / "done", out)
    state = json.loads((out / checkpoint / "train_state.json").read_text())
    assert state["step"] == 3 and state["history"]
    (out / checkpoint / "train_state.json").write_text(json.dumps({**state, "step": "3"}))
    assert train_main(args(out)) == 2
    assert "train_state.json: step expects a whole number >= 0, got '3'" in capsys.readouterr().err
    for change, expected in (({"step": 1_000_000_000}, "step expects 3 (the step its checkpoint was saved at), "
                                                       "got 1000000000"),
                             ({"best_step": 7}, "best_step expects a step at most 3, got 7")):
        (out / checkpoint / "train_state.json").write_text(json.dumps({**state, **change}))
        assert train_main(args(out)) == 2
        err = capsys.readouterr().err
        assert expected in err and "\n" not in err.strip(), err


def test_lora_save_and_reload_keep_the_scores(tmp_path, tiny_bert):
    """Scores of the in-memory LoRA model before saving == the saved adapter's == the merged model's."""
    from rerankforge.reranker.folder import RerankerSettings, save_reranker
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.training.model import load_model

    config = TrainConfig(train_file="x", model=tiny_bert, lora=True, lora_r=4)
    model, tokenizer = load_model(config, tiny_bert)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:  # LoRA A/B and the scoring head: make the adapter matter
                param.add_(torch.randn_like(param) * 0.5)
    before = Reranker(model, tokenizer, max_length=64).score(PAIRS)
    from rerankforge.core.lexical import BM25Statistics

    lexical = {"reranker": 0.4, "bm25": 0.6}
    statistics = BM25Statistics(1.2, 0.75, 10, 5.0, "porter", "en", {"bone": 3})
    save_reranker(model, tokenizer, tmp_path / "out", base_model=tiny_bert,
                  settings=RerankerSettings(max_length=64, fusion_weights=lexical, request_fusion_weights=lexical),
                  bm25=statistics)
    adapter = Reranker.load(str(tmp_path / "out" / "adapter"))  # carries the merged model's settings
    assert (adapter.max_length, adapter.combiner) == (64, Combiner(lexical))
    assert adapter.bm25 == statistics and adapter.request_combiner == Combiner(lexical)
    assert adapter.score(PAIRS) == pytest.approx(before, abs=1e-4)
    assert Reranker.load(str(tmp_path / "out"), max_length=64).score(PAIRS) == pytest.approx(before, abs=1e-4)
    assert _scores(tmp_path / "out", PAIRS) == pytest.approx(before, abs=1e-4)
    # saved again with a request ranking that needs no statistics: the earlier file goes, in both folders
    save_reranker(model, tokenizer, tmp_path / "out", base_model=tiny_bert, settings=RerankerSettings(max_length=64))
    assert not list((tmp_path / "out").rglob("bm25_statistics.json"))


def test_trained_model_carries_its_dev_fitted_served_ranking(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                             tiny_bert, capsys):
    from rerankforge.cli.main import main as rerankforge
    from rerankforge.reranker.scoring import Reranker

    out = tmp_path / "fw"
    assert rerankforge(["train", *_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,
                                             "--max_steps", "3")]) == 0
    logged = capsys.readouterr().err
    settings = json.loads((out / "rerankforge.json").read_text())
    combination = json.loads((out / "metrics.json").read_text())["combination"]
    assert settings["fusion_weights"] == combination["weights"] and settings["max_length"] == 96
    assert set(combination["dev_nDCG@10_alone"]) == {"reranker", "dense", "bm25", "first_stage"}  # hybrid dev
    assert set(settings["request_fusion_weights"]) <= {"reranker", "position", "bm25"} and combination["folds"] >= 2
    # the corpus's BM25 statistics go with the model exactly where the request ranking weighs BM25
    assert (out / "bm25_statistics.json").is_file() == ("bm25" in settings["request_fusion_weights"])
    assert Reranker.load(str(out)).request_combiner == Combiner(settings["request_fusion_weights"])
    assert settings["fusion_first_stage"] == combination["first_stage"] == "hybrid"
    assert combination["message"] in logged and "p = " in combination["message"]
    served = Reranker.load(str(out)).combiner
    assert served == Combiner(settings["fusion_weights"]) and served.chosen_on == settings["fusion_chosen_on"]
    # eval reranks a first-stage run with it: the reranker alone, and the served ranking, same candidates
    run_file = tmp_path / "bm25.trec"
    assert rerankforge(["retrieve", "--data", str(scifact_slice), "--retriever", "bm25", "--output", str(run_file)]) == 0
    capsys.readouterr()
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(run_file), "--reranker", str(out),
                        "--model", tiny_bi_encoder, "--depth", "20", "--output", str(tmp_path / "reranked")]) == 0
    table = capsys.readouterr().out
    assert "\nbm25 >> fw " in table
    assert ("bm25 >> fw (served)" in table) == (not served.is_reranker_only)
    assert (tmp_path / "reranked" / "runs" / "bm25__fw.trec").is_file()


def test_eval_with_missing_reranker_fails_before_work(scifact_slice, tmp_path, capsys):
    from rerankforge.cli.main import main as rerankforge

    run_file = tmp_path / "bm25.trec"
    assert rerankforge(["retrieve", "--data", str(scifact_slice), "--retriever", "bm25", "--output", str(run_file)]) == 0
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(run_file), "--reranker",
                        str(tmp_path / "no-such-model")]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_head_learning_rate_applies_to_the_scoring_head_only(tiny_bert):
    from rerankforge.training.loop import _param_groups
    from rerankforge.training.model import load_model

    config = TrainConfig(train_file="x", model=tiny_bert, learning_rate=1e-4, head_learning_rate=1e-2)
    model, _ = load_model(config, tiny_bert)
    groups = _param_groups(model, config)
    head = {id(p) for name, p in model.named_parameters() if name.startswith("classifier.")}
    for group in groups:
        ids = {id(p) for p in group["params"]}
        assert group["lr"] == (1e-2 if ids <= head else 1e-4) and (ids <= head or not ids & head)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))



def test_dropout_overrides_reach_the_modules_and_not_the_saved_config(tiny_bert, tiny_xlmr):
    from transformers import AutoConfig

    from rerankforge.training.model import load_model

    for folder in (tiny_bert, tiny_xlmr):
        own = AutoConfig.from_pretrained(folder)
        assert own.attention_probs_dropout_prob > 0 and own.hidden_dropout_prob > 0
        config = TrainConfig(train_file="x", model=folder, attention_dropout=0.0, hidden_dropout=0.05)
        model, _ = load_model(config, folder)
        assert {m.dropout.p for name, m in model.named_modules() if name.endswith("attention.self")} == {0.0}
        hidden = {m.p for name, m in model.named_modules()
                  if isinstance(m, torch.nn.Dropout) and name.endswith("output.dropout")}
        assert hidden == {0.05}
        # Whoever trains the saved model next gets the model's own dropout back.
        assert model.config.attention_probs_dropout_prob == own.attention_probs_dropout_prob
        assert model.config.hidden_dropout_prob == own.hidden_dropout_prob


def test_dropout_override_errors_name_the_key(tiny_bert):
    from rerankforge.training.model import load_model

    with pytest.raises(ConfigError, match=r"attention_dropout: expected a probability in \[0, 1\), got 1.5"):
        load_model(TrainConfig(train_file="x", model=tiny_bert, attention_dropout=1.5), tiny_bert)


def test_wandb_settings_come_from_config_then_environment_then_defaults(tmp_path):
    from rerankforge.training.tracking import wandb_settings

    out = str(tmp_path / "run-a")
    bare = wandb_settings(TrainConfig(train_file="x", output_dir=out), {})
    assert bare == {"project": "rerankforge", "init_kwargs": {"name": "run-a", "entity": None, "group": None,
                                                             "tags": None, "dir": out}}
    environ = {"WANDB_PROJECT": "env-project", "WANDB_ENTITY": "env-team", "WANDB_RUN_GROUP": "sweep-1",
               "WANDB_TAGS": "scifact, minilm", "WANDB_DIR": str(tmp_path / "wb"), "WANDB_NAME": "env-name"}
    from_env = wandb_settings(TrainConfig(train_file="x", output_dir=out), environ)
    assert from_env == {"project": "env-project", "init_kwargs": {
        "name": "env-name", "entity": "env-team", "group": "sweep-1", "tags": ["scifact", "minilm"],
        "dir": str(tmp_path / "wb")}}
    pinned = wandb_settings(TrainConfig(train_file="x", output_dir=out, project="p", run_name="n", wandb_entity="e",
                                        run_group="g", tags=["t"], tracker_dir=str(tmp_path / "d")), environ)
    assert pinned == {"project": "p", "init_kwargs": {"name": "n", "entity": "e", "group": "g", "tags": ["t"],
                                                      "dir": str(tmp_path / "d")}}


# ---------------------------------------------------------------- choices made on dev (small data)

def test_small_data_plans_the_learning_rate_and_the_updates_on_dev(mined_slice):
    from rerankforge.training.dev.dev_choices import plan_dev_choices

    base = ["--train_file", str(mined_slice), "--dev_queries", "8", "--learning_rate", "1e-4", "--max_steps", "30",
            "--eval_steps", "0"]
    config, plan = plan_dev_choices(load_config(base))
    assert plan.small_data and plan.train_queries < 300
    assert plan.learning_rates == pytest.approx([5e-5, 1e-4, 2e-4]) and plan.search_steps == 10
    assert (config.eval_steps, config.early_stopping_patience, config.keep_best) == (3, 3, True)
    assert "small data:" in plan.notes[0] and "chosen on dev among 5e-05, 0.0001, 0.0002" in plan.notes[1]
    # enough queries (by the threshold): the configured values stay
    config, plan = plan_dev_choices(load_config(base + ["--small_data_queries", "10"]))
    assert not plan.small_data and not plan.learning_rates and (config.eval_steps, config.learning_rate) == (0, 1e-4)
    # an explicit search, with its own trial length; one candidate is simply the rate
    config, plan = plan_dev_choices(load_config(base + ["--small_data_queries", "0", "--learning_rate_search", "3e-4",
                                                        "1e-4", "--search_steps", "4"]))
    assert plan.learning_rates == [1e-4, 3e-4] and plan.search_steps == 4 and config.eval_steps == 0
    config, plan = plan_dev_choices(load_config(base + ["--learning_rate_search", "3e-4"]))
    assert not plan.learning_rates and config.learning_rate == 3e-4
    with pytest.raises(ConfigError, match="learning_rate_search chooses on the dev split; expected dev_queries > 0"):
        plan_dev_choices(load_config(base + ["--dev_queries", "0", "--learning_rate_search", "1e-4", "2e-4"]))
    with pytest.raises(ConfigError, match=r"learning_rate_search: expected learning rates in \(0, 1\), got \[2.0\]"):
        load_config(base + ["--learning_rate_search", "2"])


def test_learning_rate_chosen_on_dev_by_trials_and_reported(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                            tiny_bert, capsys):
    from rerankforge.training.cli import train_main

    out = tmp_path / "out"
    args = _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out, "--max_steps", "6",
                      "--save_steps", "0")
    args[args.index("--small_data_queries") + 1] = "300"  # the default: the slice's 32 training queries are few
    assert train_main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    chosen = metrics["chosen_on_dev"]
    trials = chosen["learning_rate"]["dev_nDCG@10"]
    assert chosen["small_data"] and set(trials) == {"0.0005", "0.001", "0.002"}
    best = max(trials, key=lambda lr: (trials[lr], -float(lr)))
    assert chosen["learning_rate"]["learning_rate"] == pytest.approx(float(best)) and chosen["learning_rate"][
        "trial_steps"] == 2
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["learning_rate"] == pytest.approx(float(best)) and saved["eval_steps"] == 1
    assert not (out / "lr-search").exists()
    card = (out / "README.md").read_text()
    assert f"Learning rate {float(best):g}, chosen on dev among 0.0005, 0.001, 0.002" in card
    assert "Small data (" in card
    logged = capsys.readouterr().err
    assert "small data:" in logged and "learning rate chosen on dev:" in logged


# ---------------------------------------------------------------- time budget, starting points

def test_schedule_matches_transformers_and_replans():
    from transformers import get_scheduler

    from rerankforge.training.schedule import Schedule, TimeBudget

    for kind, theirs in (("linear", "linear"), ("cosine", "cosine"), ("constant", "constant_with_warmup")):
        for ticks in (1, 2):
            ours = Schedule(kind, 40, 0.1, ticks)
            optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
            reference = get_scheduler(theirs, optimizer, num_warmup_steps=4 * ticks, num_training_steps=40 * ticks)
            factors = [reference.lr_lambdas[0](t) for t in range(40 * ticks + 1)]
            assert [ours(t) for t in range(40 * ticks + 1)] == pytest.approx(factors), (kind, ticks)
    schedule = Schedule("linear", 100, 0.1)
    schedule.plan(20)
    assert (schedule.updates, schedule.warmup, schedule(20)) == (20, 2, 0.0)
    budget = TimeBudget(1.0, cap=1000)  # 60 s
    assert budget.planned_updates(0, 0.0) == 1000
    assert budget.planned_updates(10, 6.0) == 100  # 0.6 s an update: 54 s left hold 90 more
    assert budget.planned_updates(10, 59.9) == 10  # less than an update left: stop now
    assert TimeBudget(1.0, cap=50).planned_updates(10, 6.0) == 50  # never past the configured length
    assert budget.exhausted(60.0) and not budget.exhausted(59.9)


def test_time_budget_stops_within_one_update_and_the_run_resumes(tmp_path, mined_slice, scifact_slice,
                                                                 tiny_bi_encoder, tiny_bert, monkeypatch):
    """max_minutes ends the run after the update that reaches it (each update here takes >= 60 ms), warmup and
    decay planned over the budget; a rerun with a larger budget goes on from where it stopped."""
    import time as clock

    from rerankforge.training import loop

    real_loss = loop.compute_loss

    def slow_loss(*args, **kwargs):
        clock.sleep(0.06)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(loop, "compute_loss", slow_loss)
    out = tmp_path / "budget"
    args = lambda minutes: _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,  # noqa: E731
                                      "--max_steps", "100000", "--max_minutes", str(minutes), "--eval_steps", "0",
                                      "--save_steps", "1000", "--fit_combination", "false", "--calibrate", "false")
    first = loop.train(load_config(args(0.05)))  # 3 s
    per_update = 60 * first["train_minutes"] / first["steps"]
    assert 5 <= first["steps"] < 100000 and per_update >= 0.06
    assert abs(60 * first["train_minutes"] - 3.0) <= per_update + 0.02
    assert first["stopped_by"].startswith(f"max_minutes: {first['steps']} updates")
    lr = [h["train/lr"] for h in first["history"] if "train/lr" in h]
    assert lr[0] < max(lr) <= 1e-3 * (1 + 1e-6) and lr[-1] < 0.4 * max(lr)  # warmed up, then decayed
    assert (out / "checkpoints" / f"step-{first['steps']}").is_dir()  # saved where the budget stopped it

    again = loop.train(load_config(args(0.05)))  # spent: nothing more to do
    assert again["steps"] == first["steps"]
    longer = loop.train(load_config(args(0.1)))
    assert longer["steps"] > first["steps"] and abs(60 * longer["train_minutes"] - 6.0) <= per_update + 0.05
    updates = lambda metrics: [h for h in metrics["history"] if "train/loss" in h]  # noqa: E731
    assert updates(longer)[: len(updates(first))] == updates(first)  # the same run, continued


def test_a_crossencoder_start_keeps_its_head_and_scores(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                       tiny_reranker, caplog):
    """`model:` a reranker folder: training starts from its scores (no fresh head), and goes on from them."""
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.training.loop import train
    from rerankforge.training.model import load_model

    out = tmp_path / "from-reranker"
    config = load_config(_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_reranker, out,
                                    "--max_steps", "2", "--learning_rate", "1e-4"))
    with caplog.at_level("WARNING"):
        model, tokenizer = load_model(config, tiny_reranker)
    assert "newly initialized" not in caplog.text
    before = Reranker(model.eval(), tokenizer, config.max_length, 16).score(PAIRS)
    assert before == pytest.approx(list(_scores(Path(tiny_reranker), PAIRS)), abs=1e-5)
    train(config)
    after = _scores(out, PAIRS)
    assert after == pytest.approx(before, abs=0.05) and after != pytest.approx(before, abs=1e-7)  # moved, a little


def test_a_fixed_dev_split_holds_out_exactly_those_queries(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                           tiny_bert):
    from rerankforge.training.groups import split_dev
    from rerankforge.data_prep.training_files import read_training_rows
    from rerankforge.training.loop import check_inputs

    rows = read_training_rows(mined_slice)
    ids = sorted({str(row["query_id"]) for row in rows})
    kept, dev = split_dev(rows, 3, 0, ids[:3])
    assert dev == ids[:3] and not {str(row["query_id"]) for row in kept} & set(dev)
    assert len(kept) == sum(str(row["query_id"]) not in dev for row in rows)
    with pytest.raises(ConfigError, match=r"dev_query_ids: 1 of the 2 ids are not queries of the training file"):
        split_dev(rows, 2, 0, [ids[0], "no such query"])
    base = _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, tmp_path / "fixed")
    config = load_config([*base, "--dev_queries", "2", "--dev_query_ids", ids[5], ids[7]])
    assert check_inputs(config)[2] == sorted([ids[5], ids[7]])  # what training holds out
    with pytest.raises(ConfigError, match="dev_query_ids: 2 distinct ids, but dev_queries is 8"):
        load_config([*base, "--dev_query_ids", ids[5], ids[7]])


def test_small_data_under_a_time_budget_is_evaluated_by_the_clock(tmp_path, mined_slice, scifact_slice,
                                                                  tiny_bi_encoder, tiny_bert):
    from rerankforge.training.dev.dev_choices import plan_dev_choices

    args = _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, tmp_path / "small",
                      "--small_data_queries", "300", "--max_minutes", "2", "--num_epochs", "50")
    config, plan = plan_dev_choices(load_config(args))
    assert plan.small_data and (config.eval_steps, config.eval_minutes) == (0, 0.2)
    assert "dev evaluation every 0.2 minutes of the 2-minute budget" in plan.notes[0]
    assert "trials of 0.666667 minutes" in plan.notes[1]


def test_a_resumed_run_logs_the_loss_a_straight_run_logs(tmp_path, mined_slice, scifact_slice, tiny_bi_encoder,
                                                         tiny_bert, monkeypatch):
    """Killed mid-window (a checkpoint at step 3, losses logged every 4 updates), the rerun's step-4 loss is the
    mean over steps 1-4, as without the kill (it was the mean over step 4 alone)."""
    from rerankforge.training import loop
    from rerankforge.training.config import load_config

    args = lambda out: _tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,  # noqa: E731
                                  "--max_steps", "4", "--log_steps", "4", "--fit_combination", "false")
    straight = loop.train(load_config(args(tmp_path / "straight")))
    real_save = _killed_after_saving(monkeypatch, loop, load_config(args(tmp_path / "killed")))
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    resumed = loop.train(load_config(args(tmp_path / "killed")))
    losses = lambda m: [h["train/loss"] for h in m["history"] if "train/loss" in h]  # noqa: E731
    assert len(losses(straight)) == 1 and losses(resumed) == pytest.approx(losses(straight), abs=1e-6)


def test_every_loss_of_the_registry_computes_a_finite_loss_and_is_described():
    """config validation, the loop and the card read the one registry (train/losses.py)."""
    import typing

    import torch

    from rerankforge.training.config import TrainConfig
    from rerankforge.training.losses import LOSSES, compute_loss

    assert typing.get_args(typing.get_type_hints(TrainConfig)["loss"]) == tuple(LOSSES)
    scores, teacher = torch.randn(4, 5), torch.randn(4, 5)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[0, 3:] = False
    for name, loss in LOSSES.items():
        config = TrainConfig(train_file="x.jsonl", loss=name)
        value = compute_loss(config, scores, mask, teacher if loss.distills else None)
        assert value.ndim == 0 and torch.isfinite(value), name
        assert loss.description and name in TrainConfig.__dataclass_fields__["loss"].metadata["help"]
