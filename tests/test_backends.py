"""Exported backends: ONNX fp32 and int8 score like torch through the same packer, an export is kept only
when it passes its check (never half-written, even when killed), and a bad or foreign ONNX file is one
clear error."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from rerankforge.core.errors import ModelNotFoundError  # noqa: E402
from rerankforge.reranker import backends  # noqa: E402
from rerankforge.reranker.scoring import Reranker  # noqa: E402
from rerankforge.reranker.export import (STAGING_PREFIX, ExportRefused, Verdict, export_backend,  # noqa: E402
                                         spearman)

from test_packing import _texts  # noqa: E402


def _passes(backend) -> Verdict:
    return Verdict(True, summary="passed")


def _fails(backend) -> Verdict:
    return Verdict(False, {"spearman": 0.5}, "failed: Spearman 0.5000")


def _model_folder(tmp_path: Path, source: str, name: str = "model") -> Path:
    folder = tmp_path / name
    shutil.copytree(source, folder)
    return folder


def _torch(folder) -> Reranker:
    return Reranker.load(str(folder), max_length=64, precision="fp32", max_batch_tokens=300)


def _exported_files(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "onnx").glob("*.onnx")) if (folder / "onnx").is_dir() else []


@pytest.fixture(scope="module")
def tiny_xlmr_folder(tmp_path_factory, tiny_xlmr) -> str:
    """The tiny XLM-R with a single-logit head, saved: a tokenizer without token_type_ids."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerankforge.reranker.folder import new_head_expected

    folder = tmp_path_factory.mktemp("tiny-xlmr-reranker")
    torch.manual_seed(2)
    with new_head_expected():
        AutoModelForSequenceClassification.from_pretrained(tiny_xlmr, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_xlmr).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def exported_bert(tmp_path_factory, tiny_reranker) -> Path:
    """The tiny BERT reranker with both exports beside it."""
    folder = _model_folder(tmp_path_factory.mktemp("exported"), tiny_reranker)
    reranker = _torch(folder)
    for backend in ("onnx", "onnx-int8"):
        export_backend(folder, backend, reranker.model, reranker.tokenizer, _passes)
    return folder


@pytest.fixture(scope="module")
def spread_bert(tmp_path_factory, minilm_path) -> Path:
    """A tiny random BERT reranker whose scores spread (initializer_range 0.1: the default 0.02 gives scores
    equal to 1e-5, which no int8 model could rank), with its int8 export beside it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    folder = tmp_path_factory.mktemp("spread-bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=1, initializer_range=0.1)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    reranker = _torch(folder)
    export_backend(folder, "onnx-int8", reranker.model, reranker.tokenizer, _passes)
    return folder


@pytest.mark.parametrize("family", ["bert", "xlmr"])
def test_onnx_scores_like_torch_through_the_packer_in_input_order(family, tmp_path, tiny_reranker, tiny_xlmr_folder,
                                                                  exported_bert):
    if family == "bert":
        folder = exported_bert
    else:
        folder = _model_folder(tmp_path, tiny_xlmr_folder)
        reranker = _torch(folder)
        export_backend(folder, "onnx", reranker.model, reranker.tokenizer, _passes)
    torch_reranker = _torch(folder)
    onnx = Reranker.load(str(folder), max_length=64, max_batch_tokens=300, backend="onnx")
    assert onnx.model is None and onnx.precision.name == "fp32"
    pairs = _texts(0, 40)  # lengths from a few tokens to past max_length: several packed batches
    expected = torch_reranker.score(pairs)
    np.testing.assert_allclose(onnx.score(pairs), expected, atol=1e-4)
    order = np.random.default_rng(1).permutation(len(pairs))
    np.testing.assert_allclose(onnx.score([pairs[i] for i in order]), expected[order], atol=1e-4)


def test_int8_ranks_like_torch(exported_bert, spread_bert):
    fmt = backends.int8_format()
    assert _exported_files(exported_bert) == sorted(["model.onnx", f"model_qint8_{fmt}.onnx"])
    pairs = _texts(3, 60)
    int8 = Reranker.load(str(spread_bert), max_length=64, backend="onnx-int8")
    assert int8.precision.name == "int8"
    expected = _torch(spread_bert).score(pairs)
    got = int8.score(pairs)
    assert spearman(got, expected) > 0.85  # 0.94 measured; random weights quantise worse than trained ones
    assert not np.allclose(got, expected, atol=1e-6)  # it is quantised, not the fp32 file under another name


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_a_refused_export_tries_every_candidate_and_leaves_the_folder_as_it_was(backend, tmp_path, tiny_reranker):
    from rerankforge.reranker.export import int8_recipes

    folder = _model_folder(tmp_path, tiny_reranker)
    (folder / "onnx").mkdir()
    earlier = folder / "onnx" / ("model.onnx" if backend == "onnx" else f"model_qint8_{backends.int8_format()}.onnx")
    earlier.write_bytes(b"an earlier export")
    reranker = _torch(folder)
    heard = []
    with pytest.raises(ExportRefused, match="no candidate scored like torch.*fused.*: failed: Spearman 0.5000"):
        export_backend(folder, backend, reranker.model, reranker.tokenizer, _fails,
                       on_candidate=lambda name, verdict: heard.append(name))
    recipes = [""] if backend == "onnx" else [  # without a probe, the recipes that need one are skipped
        f"+{r.name}" for r in int8_recipes(backends.int8_format()) if not r.fp32_share]
    assert heard == [f"{graph}{recipe}" for graph in ("fused", "plain") for recipe in recipes]
    assert earlier.read_bytes() == b"an earlier export"
    assert _exported_files(folder) == [earlier.name]
    assert not list(folder.glob(f"{STAGING_PREFIX}*"))
    assert reranker.model.training is False


def test_int8_keeps_the_operators_the_probe_finds_most_sensitive_in_fp32(tmp_path, spread_bert, monkeypatch):
    """The first recipe with an fp32 share that passes keeps exactly that share of the quantisable operators in
    fp32, and they are the ones whose int8 version alone moves the probe's scores most."""
    import math

    import onnx

    from rerankforge.reranker import export
    from rerankforge.reranker.backends import OnnxBackend, model_inputs

    folder = _model_folder(tmp_path, spread_bert)
    shutil.rmtree(folder / "onnx")
    reranker = _torch(folder)
    pairs = _texts(5, 24)

    def probe(backend):
        return Reranker(None, reranker.tokenizer, 64, backend=backend).score(pairs)

    recipes = export.int8_recipes(backends.int8_format())
    plain, wanted = next(r for r in recipes if not r.unsigned_weights), next(r for r in recipes if r.fp32_share == 1 / 4)
    assert not plain.fp32_share and wanted.reduce_range == plain.reduce_range
    made = []  # the recipe of each candidate, in the order they are made

    def quantize(source, target, recipe, kept_fp32=()):
        made.append(recipe.name)
        return real_quantize(source, target, recipe, kept_fp32)

    real_quantize = export.quantize_int8
    monkeypatch.setattr(export, "quantize_int8", quantize)
    kept = export_backend(folder, "onnx-int8", reranker.model, reranker.tokenizer,
                          lambda backend: Verdict(made[-1] == wanted.name), probe=probe)
    assert kept.candidate == f"fused+{wanted.name}"
    monkeypatch.undo()

    export_backend(folder, "onnx", reranker.model, reranker.tokenizer, _passes)  # the same fused fp32 graph
    fused = folder / "onnx" / "model.onnx"
    nodes = export.quantisable_nodes(fused, plain)
    ranking = export.rank_sensitivity(fused, plain, probe, lambda path, name: OnnxBackend.open(
        path, name, model_inputs(reranker.tokenizer), vocab_size=len(reranker.tokenizer)), tmp_path)
    assert sorted(ranking) == sorted(nodes) and len(nodes) == 8  # 2 layers: Attention + 3 MatMul each
    graph = onnx.load(str(kept.path)).graph
    left_fp32 = [n.name for n in graph.node if n.op_type in plain.op_types and n.name in nodes]
    assert sorted(left_fp32) == sorted(ranking[:math.ceil(len(nodes) / 4)])


def test_a_failure_between_steps_leaves_no_model(tmp_path, tiny_reranker, monkeypatch):
    from rerankforge.reranker import export

    folder = _model_folder(tmp_path, tiny_reranker)
    reranker = _torch(folder)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "quantize_int8", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_backend(folder, "onnx-int8", reranker.model, reranker.tokenizer, _passes)
    assert _exported_files(folder) == []
    assert not list(folder.glob(f"{STAGING_PREFIX}*"))


def test_a_killed_export_leaves_no_model_and_the_next_one_cleans_up(tmp_path, tiny_reranker):
    folder = _model_folder(tmp_path, tiny_reranker)
    marker = tmp_path / "judging"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from rerankforge.reranker.export import export_backend
        from rerankforge.reranker.scoring import Reranker

        def judge(backend):  # the candidate is staged: say so, then wait to be killed
            Path({str(marker)!r}).write_text("x")
            time.sleep(600)

        reranker = Reranker.load({str(folder)!r}, precision="fp32")
        export_backend({str(folder)!r}, "onnx", reranker.model, reranker.tokenizer, judge)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "RERANKFORGE_CPU_THREADS": "1"})
    try:
        while not marker.exists():
            assert process.poll() is None, "the export process ended before it was killed"
            try:
                process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        staged = [p for stage in folder.glob(f"{STAGING_PREFIX}*") for p in stage.iterdir()]
        assert staged  # killed with a candidate written and not yet checked
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert _exported_files(folder) == []
    reranker = _torch(folder)
    export_backend(folder, "onnx", reranker.model, reranker.tokenizer, _passes)
    assert _exported_files(folder) == ["model.onnx"]
    assert not list(folder.glob(f"{STAGING_PREFIX}*"))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_onnx_file_is_one_clear_error(damage, tmp_path, exported_bert):
    folder = _model_folder(tmp_path, exported_bert)
    path = folder / "onnx" / "model.onnx"
    data = path.read_bytes()
    path.write_bytes(b"not a model at all" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ModelNotFoundError, match=rf"{path}: not a readable ONNX model \(.*\); re-export it"):
        Reranker.load(str(folder), backend="onnx")


def test_a_missing_export_says_how_to_make_it(tmp_path, tiny_reranker):
    folder = _model_folder(tmp_path, tiny_reranker)
    with pytest.raises(ModelNotFoundError, match="model.onnx: no such file; export it first: rerankforge export"):
        Reranker.load(str(folder), backend="onnx")


def test_an_export_of_other_weights_is_refused(tmp_path, exported_bert):
    import torch
    from transformers import AutoModelForSequenceClassification

    folder = _model_folder(tmp_path, exported_bert)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(folder)  # retrained since the export: same shapes, other weights
    with pytest.raises(ModelNotFoundError, match="exported from other weights than the ones beside it"):
        Reranker.load(str(folder), backend="onnx")


def test_an_export_of_another_model_family_names_the_inputs(tmp_path, tiny_reranker, tiny_xlmr_folder):
    xlmr = _model_folder(tmp_path, tiny_xlmr_folder, "xlmr")
    reranker = _torch(xlmr)
    export_backend(xlmr, "onnx", reranker.model, reranker.tokenizer, _passes)
    bert = _model_folder(tmp_path, tiny_reranker, "bert")
    shutil.copytree(xlmr / "onnx", bert / "onnx")
    with pytest.raises(ModelNotFoundError, match=r"expected inputs input_ids, attention_mask, token_type_ids \(what "
                                                  r"the tokenizer beside it gives\), got input_ids, attention_mask"):
        Reranker.load(str(bert), backend="onnx")


def test_an_export_with_a_smaller_vocabulary_or_two_labels_is_refused(tmp_path, tiny_reranker, exported_bert):
    """Files without a fingerprint (exported elsewhere) are still checked: they must run on the tokenizer's
    highest token id and give one logit per pair."""
    import onnx
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig

    from rerankforge.reranker.export import export_fp32

    small = AutoModelForSequenceClassification.from_config(BertConfig(
        vocab_size=500, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        num_labels=1))
    folder = _model_folder(tmp_path, tiny_reranker)
    (folder / "onnx").mkdir()
    export_fp32(small.eval(), backends.MODEL_INPUTS, folder / "onnx" / "model.onnx")
    with pytest.raises(ModelNotFoundError, match="does not run on this tokenizer's inputs .*exported from another model"):
        Reranker.load(str(folder), backend="onnx")

    torch.manual_seed(0)
    two = AutoModelForSequenceClassification.from_pretrained(tiny_reranker, num_labels=2, ignore_mismatched_sizes=True)
    export_fp32(two.eval(), backends.MODEL_INPUTS, folder / "onnx" / "model.onnx")
    assert not onnx.load(str(folder / "onnx" / "model.onnx")).metadata_props
    with pytest.raises(ModelNotFoundError, match=r"expected output 'logits' as floats of shape \(batch, 1\)"):
        Reranker.load(str(folder), backend="onnx")


def test_int8_format_follows_the_cpu(monkeypatch):
    from rerankforge.core import hardware

    monkeypatch.delenv("RERANKFORGE_CPU_CAPABILITY")  # the suite forces AVX2 (conftest.py); here the CPU decides
    for features, fmt in (({"avx2": True, "avx512_f": True, "avx512_bw": True, "avx512_vnni": True}, "avx512_vnni"),
                          ({"avx2": True, "avx512_f": True, "avx512_bw": True}, "avx512"),
                          ({"avx2": True}, "avx2")):
        monkeypatch.setattr(hardware, "cpu_features", lambda features=features: features)
        assert backends.int8_format() == fmt
        assert backends.backend_file("m", "onnx-int8") == Path("m/onnx") / f"model_qint8_{fmt}.onnx"


def test_unknown_backend_is_a_config_error(tiny_reranker):
    from rerankforge.core.errors import ConfigError

    with pytest.raises(ConfigError, match="backend: expected one of auto, torch, onnx, onnx-int8, got 'tensorrt'"):
        Reranker.load(tiny_reranker, backend="tensorrt")


# --- the command line

def _export(argv: list[str]) -> int:
    from rerankforge.cli.main import main

    return main(["export", *argv])


def test_export_cli_keeps_a_checked_export_or_refuses_with_exit_2(tmp_path, tiny_reranker, scifact_slice,
                                                                   tiny_bi_encoder, capsys):
    folder = _model_folder(tmp_path, tiny_reranker)
    check = ["--model", str(folder), "--data", str(scifact_slice), "--split", "test", "--dev_queries", "6",
             "--depth", "5", "--first_stage_model", tiny_bi_encoder]
    assert _export([*check, "--min_spearman", "1.01"]) == 2
    err = capsys.readouterr().err
    assert "error: onnx/model.onnx: refused" in err and "Spearman 1.0000 (need >= 1.01" in err
    assert _exported_files(folder) == []
    assert _export(check) == 0
    out = capsys.readouterr().out
    assert "fused: passed: Spearman 1.0000" in out and "dev nDCG@10" in out
    assert _exported_files(folder) == ["model.onnx"]
    from rerankforge.reranker.checked_paths import choose_path, read_checked_paths, this_cpu

    assert read_checked_paths(folder)[this_cpu()]["onnx"]["passed"] is True
    assert _export([*check, "--min_spearman", "1.01"]) == 2  # a stricter check refuses the file kept above:
    assert read_checked_paths(folder)[this_cpu()]["onnx"]["passed"] is False  # auto stops trusting it
    assert choose_path(folder).backend == "torch" and _exported_files(folder) == ["model.onnx"]


def test_export_cli_without_onnxruntime_says_what_to_install(tmp_path, tiny_reranker, monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    assert _export(["--model", tiny_reranker]) == 2
    assert "error: the onnx backends need onnxruntime: pip install 'rerankforge[onnx]'" in capsys.readouterr().err


def test_export_cli_needs_a_dev_split(tmp_path, tiny_reranker, capsys):
    folder = _model_folder(tmp_path, tiny_reranker)
    assert _export(["--model", str(folder)]) == 2
    assert "no train_config.json (not trained by rerankforge), so no dev split of its own; expected --data" in \
        capsys.readouterr().err
    assert _export(["--model", str(tmp_path / "nowhere")]) == 2
    assert "expected a local reranker folder" in capsys.readouterr().err


def test_export_cli_finds_the_train_file_from_the_folder_training_ran_in(tmp_path, tiny_reranker):
    """train_config.json keeps the paths training was given, relative to where it ran."""
    from rerankforge.training.dev.dev_split import DevSplitArgs, dev_split
    from rerankforge.training.groups import split_dev
    from rerankforge.data_prep.training_files import read_training_rows

    run_folder = tmp_path / "project"
    folder = _model_folder(run_folder / "outputs", tiny_reranker, "reranker")
    rows = [{"query_id": str(q), "query": f"q{q}", "positive": "p", "negatives": ["n"]} for q in range(10)]
    (run_folder / "outputs" / "mined.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "train_config.json").write_text(json.dumps({
        "train_file": "outputs/mined.jsonl", "output_dir": "outputs/reranker", "data": "scifact", "split": "train",
        "dev_queries": 3, "dev_depth": 7, "seed": 5}))
    config, query_ids, where = dev_split(folder, DevSplitArgs())
    assert query_ids == split_dev(read_training_rows(run_folder / "outputs" / "mined.jsonl"), 3, 5)[1]
    assert (config.data, config.split, config.dev_depth) == ("scifact", "train", 7)
    assert "its dev split" in where


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_the_eval_cost_table_names_the_backend_that_scored(backend, exported_bert):
    from rerankforge.eval.report import _score_all

    reranker = Reranker.load(str(exported_bert), backend=backend)
    candidates = {"dense": {"q1": ["d1", "d2", "d3"], "q2": ["d2"]}}
    scores, latency = _score_all(reranker, candidates, {"q1": "a query", "q2": "another query"},
                                 lambda doc_id: f"the text of {doc_id}")
    assert (latency.backend, latency.device, latency.queries) == (backend, "cpu", 2)
    assert latency.precision == ("int8" if backend == "onnx-int8" else "fp32")
    assert {q: sorted(s) for q, s in scores.items()} == {"q1": ["d1", "d2", "d3"], "q2": ["d2"]}


# --- backend auto: the fastest path the export check passed on this kind of CPU

def _on_cpu(monkeypatch, capability: str, fmt: str) -> None:
    from rerankforge.reranker import checked_paths

    monkeypatch.setattr(checked_paths, "cpu_capability", lambda: capability)
    monkeypatch.setattr(checked_paths, "int8_format", lambda: fmt)


def _record(folder, capability_fmt, monkeypatch, **rates) -> None:
    """Entries as `rerankforge export` writes them on a CPU of `capability_fmt`: key -> (passed, pairs/s)."""
    from rerankforge.reranker.checked_paths import record_checked_path

    _on_cpu(monkeypatch, *capability_fmt)
    files = {"onnx": "onnx/model.onnx", "onnx-int8": f"onnx/model_qint8_{capability_fmt[1]}.onnx"}
    for key, (passed, rate) in rates.items():
        key = key.replace("_", "-").replace("torch-", "torch@")
        entry = {"passed": passed, "pairs_per_s": rate}
        entry.update({"precision": key.split("@")[1]} if key.startswith("torch@") else {"file": files[key]})
        record_checked_path(folder, key, entry)


VNNI, AVX2 = ("AVX512_BF16", "avx512_vnni"), ("AVX2", "avx2")


def test_auto_is_torch_where_nothing_was_checked(tmp_path, tiny_reranker, monkeypatch):
    from rerankforge.reranker.checked_paths import choose_path

    _on_cpu(monkeypatch, *VNNI)
    choice = choose_path(_model_folder(tmp_path, tiny_reranker))
    assert (choice.backend, choice.precision) == ("torch", "auto") and "run `rerankforge export` here" in choice.reason


def test_auto_picks_the_fastest_path_that_passed_on_this_kind_of_cpu(tmp_path, exported_bert, monkeypatch):
    from rerankforge.reranker.checked_paths import choose_path

    folder = _model_folder(tmp_path, str(exported_bert))
    exported = next((folder / "onnx").glob("model_qint8_*.onnx"))
    for name in ("model_qint8_avx2.onnx", "model_qint8_avx512_vnni.onnx"):  # both CPUs' int8 files, as if exported on each
        if not (folder / "onnx" / name).exists():
            shutil.copy(exported, folder / "onnx" / name)
    _record(folder, VNNI, monkeypatch, torch_fp32=(True, 50.0), torch_bf16=(True, 90.0), onnx=(True, 55.0),
            onnx_int8=(True, 150.0))
    _record(folder, AVX2, monkeypatch, torch_fp32=(True, 29.0), onnx=(True, 31.0), onnx_int8=(False, 40.0))
    _on_cpu(monkeypatch, *VNNI)
    assert choose_path(folder).backend == "onnx-int8"
    _on_cpu(monkeypatch, *AVX2)  # the AVX2 CPU's own entries: its int8 failed there
    choice = choose_path(folder)
    assert (choice.backend, choice.precision) == ("onnx", "auto") and "onnx 1.07x, torch@fp32 1.00x" in choice.reason
    _on_cpu(monkeypatch, "AVX512", "avx512")  # a kind of CPU nothing was measured on
    assert (choose_path(folder).backend, choose_path(folder).precision) == ("torch", "auto")


def test_auto_compares_each_export_runs_ratio_to_torch_not_raw_rates(tmp_path, exported_bert, monkeypatch):
    """The onnx export ran while the machine was busy (torch 18, onnx 37 pairs/s: 2.0x), the int8 one on a quiet
    machine (torch 37, bf16 94: 2.5x). bf16 is the faster path though its raw rate came from another run."""
    from rerankforge.reranker.checked_paths import choose_path, record_checked_path

    folder = _model_folder(tmp_path, str(exported_bert))
    _on_cpu(monkeypatch, *VNNI)
    record_checked_path(folder, "onnx", {"passed": True, "pairs_per_s": 36.7, "speedup": 2.02, "file": "onnx/model.onnx"})
    record_checked_path(folder, "torch@bf16", {"passed": True, "pairs_per_s": 34.0, "speedup": 2.53, "precision": "bf16"})
    record_checked_path(folder, "torch@fp32", {"passed": True, "pairs_per_s": 13.4, "speedup": 1.0, "precision": "fp32"})
    choice = choose_path(folder)
    assert (choice.backend, choice.precision) == ("torch", "bf16") and "torch@bf16 2.53x, onnx 2.02x" in choice.reason


def test_auto_skips_a_path_that_failed_one_whose_file_is_gone_and_weights_trained_since(tmp_path, exported_bert,
                                                                                        monkeypatch):
    from rerankforge.reranker.checked_paths import choose_path

    folder = _model_folder(tmp_path, str(exported_bert))
    fmt = next((folder / "onnx").glob("model_qint8_*.onnx")).stem.removeprefix("model_qint8_")
    here = ("AVX512_BF16", fmt)
    _record(folder, here, monkeypatch, torch_fp32=(True, 50.0), torch_bf16=(False, 90.0), onnx_int8=(True, 70.0))
    assert choose_path(folder).backend == "onnx-int8"
    assert (choose_path(folder, "bf16").backend, choose_path(folder, "fp32").backend) == ("onnx-int8", "onnx-int8")
    _record(folder, here, monkeypatch, torch_bf16=(True, 90.0))
    choice = choose_path(folder)
    assert (choice.backend, choice.precision) == ("torch", "bf16")
    assert choose_path(folder, "fp32").backend == "onnx-int8"  # an explicit fp32 is not bf16's speed
    (folder / "onnx" / f"model_qint8_{fmt}.onnx").unlink()
    assert choose_path(folder, "fp32").precision == "fp32" and choose_path(folder, "fp32").backend == "torch"
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"retrained")
    assert choose_path(folder).backend == "torch" and "to these weights" in choose_path(folder).reason


def test_reranker_load_auto_scores_with_the_chosen_path(tmp_path, exported_bert, monkeypatch):
    folder = _model_folder(tmp_path, str(exported_bert))
    fmt = next((folder / "onnx").glob("model_qint8_*.onnx")).stem.removeprefix("model_qint8_")
    _record(folder, ("AVX512_BF16", fmt), monkeypatch, torch_fp32=(True, 10.0), onnx_int8=(True, 30.0))
    reranker = Reranker.load(str(folder), backend="auto")
    assert reranker.backend.name == "onnx-int8"
    assert np.allclose(reranker.score([("a query", "a document")]),
                       Reranker.load(str(folder), backend="onnx-int8").score([("a query", "a document")]))


def test_an_unreadable_record_means_torch_with_a_warning(tmp_path, exported_bert, monkeypatch, caplog):
    from rerankforge.reranker.checked_paths import choose_path

    folder = _model_folder(tmp_path, str(exported_bert))
    (folder / "onnx" / "checked_paths.json").write_bytes(b"\xff{not json")
    _on_cpu(monkeypatch, *VNNI)
    assert choose_path(folder).backend == "torch"
    assert "checked_paths.json: not readable" in caplog.text


def test_the_forced_avx2_path_names_the_avx2_int8_file(monkeypatch):
    monkeypatch.setenv("RERANKFORGE_CPU_CAPABILITY", "AVX2")
    assert backends.int8_format() == "avx2"


def test_export_cli_records_what_it_checked_for_backend_auto(tmp_path, tiny_reranker, scifact_slice, tiny_bi_encoder):
    from rerankforge.reranker.checked_paths import choose_path, read_checked_paths

    folder = _model_folder(tmp_path, tiny_reranker)
    check = ["--model", str(folder), "--data", str(scifact_slice), "--split", "test", "--dev_queries", "6",
             "--depth", "5", "--first_stage_model", tiny_bi_encoder]
    assert _export(check) == 0
    assert _export([*check, "--backend", "onnx-int8", "--max_ndcg_loss", "1", "--min_spearman", "-1"]) == 0  # a tiny random model
    kinds = read_checked_paths(folder)
    assert list(kinds) == ["AVX2, int8 avx2"]  # the suite forces the AVX2 path (conftest.py)
    paths = kinds["AVX2, int8 avx2"]
    assert sorted(paths) == ["onnx", "onnx-int8", "torch@fp32"]
    assert paths["onnx"]["file"] == "onnx/model.onnx" and paths["onnx-int8"]["file"] == "onnx/model_qint8_avx2.onnx"
    assert all(entry["passed"] and entry["pairs_per_s"] > 0 for entry in paths.values())
    assert paths["onnx"]["figures"]["ndcg@10_bound"] == 0.0 or paths["onnx"]["figures"]["queries_changed"] > 0
    assert paths["torch@fp32"]["speedup"] == 1.0 and all(paths[key]["speedup"] > 0 for key in ("onnx", "onnx-int8"))
    fastest = max(paths, key=lambda key: paths[key]["speedup"])  # each run's ratio to torch fp32, not raw rates
    assert choose_path(folder).backend == ("torch" if fastest == "torch@fp32" else fastest)
