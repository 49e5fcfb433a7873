"""Precision and CPU threads suit the machine: decisions with the CPU/GPU capability mocked, and every
command (train, eval, serve) applying them."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

from rerankforge.core import hardware
from rerankforge.core.errors import ConfigError
from rerankforge.core.hardware import EmulatedPrecisionWarning, choose_cpu_threads, resolve_precision


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    """Each test warns afresh, sees no override from the shell or conftest, and leaves torch's threads as found."""
    monkeypatch.setattr(hardware, "_warned", set())
    for name in ("RERANKFORGE_CPU_CAPABILITY", "RERANKFORGE_CPU_THREADS", "OMP_NUM_THREADS",
                 "ACCELERATE_MIXED_PRECISION", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def cpu(monkeypatch, features: dict, dispatch: str = "AVX2") -> None:
    """A CPU with these cpuinfo features, on which torch dispatches to `dispatch` kernels."""
    monkeypatch.setattr(hardware, "cpu_features", lambda: features)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: dispatch)


def no_warning():
    return warnings.catch_warnings(record=True)


# --- capability


def test_cpu_capability_names_the_bf16_features_torch_does_not(monkeypatch):
    cpu(monkeypatch, {"avx512_bf16": True, "amx_bf16": True}, "AVX512")
    assert hardware.cpu_capability() == "AMX"
    cpu(monkeypatch, {"avx512_bf16": True}, "AVX512")
    assert hardware.cpu_capability() == "AVX512_BF16"
    cpu(monkeypatch, {"avx512_f": True}, "AVX512")
    assert hardware.cpu_capability() == "AVX512"
    cpu(monkeypatch, {}, "AVX2")
    assert hardware.cpu_capability() == "AVX2"


def test_the_environment_variable_forces_the_no_native_path(monkeypatch):
    cpu(monkeypatch, {"avx512_bf16": True, "amx_bf16": True}, "AVX512")
    monkeypatch.setenv("RERANKFORGE_CPU_CAPABILITY", "avx2")
    assert hardware.cpu_capability() == "AVX2" and not hardware.native_bf16("cpu")
    assert resolve_precision("auto", "cpu").name == "fp32"
    monkeypatch.setenv("RERANKFORGE_CPU_CAPABILITY", "fast")
    with pytest.raises(ConfigError, match="RERANKFORGE_CPU_CAPABILITY: expected one of .*; got 'fast'"):
        hardware.cpu_capability()


def test_the_detection_runs_on_this_machine():
    assert hardware.cpu_capability() in hardware.KNOWN_CPU_CAPABILITIES


# --- precision


def test_auto_is_fp32_on_a_cpu_without_native_bf16(monkeypatch):
    cpu(monkeypatch, {}, "AVX2")
    with no_warning() as caught:
        warnings.simplefilter("always")
        choice = resolve_precision("auto", "cpu")
    assert choice.name == "fp32" and choice.accelerate == "no" and choice.autocast_dtype is None
    assert str(choice) == "fp32 (auto: this CPU (AVX2) has no native bf16)"
    assert not caught


@pytest.mark.parametrize("features, expected", [({"avx512_bf16": True}, "AVX512_BF16"),
                                                ({"avx512_bf16": True, "amx_bf16": True}, "AMX")])
def test_auto_is_bf16_where_the_cpu_has_it(monkeypatch, features, expected):
    cpu(monkeypatch, features, "AVX512")
    choice = resolve_precision("auto", torch.device("cpu"))
    assert choice.name == "bf16" and choice.autocast_dtype is torch.bfloat16 and expected in choice.reason


def test_explicit_bf16_where_emulated_runs_and_warns_once(monkeypatch):
    cpu(monkeypatch, {}, "AVX2")
    with pytest.warns(EmulatedPrecisionWarning, match=r"no native bf16: it is emulated.*10x"):
        assert resolve_precision("bf16", "cpu").name == "bf16"
    with no_warning() as caught:
        warnings.simplefilter("always")
        assert resolve_precision("bf16", "cpu").name == "bf16"
        assert resolve_precision("no", "cpu").name == resolve_precision("fp32", "cpu").name == "fp32"
    assert not caught


def test_explicit_fp16_on_a_cpu_needs_amx(monkeypatch):
    cpu(monkeypatch, {"avx512_bf16": True}, "AVX512")
    with pytest.warns(EmulatedPrecisionWarning, match="no native fp16"):
        assert resolve_precision("fp16", "cpu").name == "fp16"
    cpu(monkeypatch, {"avx512_bf16": True, "amx_bf16": True}, "AVX512")
    with no_warning() as caught:
        warnings.simplefilter("always")
        assert resolve_precision("fp16", "cpu").name == "fp16"
        assert resolve_precision("bf16", "cpu").name == "bf16"
    assert not caught


@pytest.mark.parametrize("bf16, auto", [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda(monkeypatch, bf16, auto):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    assert resolve_precision("auto", "cuda:0").name == auto
    if not bf16:
        with pytest.warns(EmulatedPrecisionWarning, match="this GPU has no native bf16"):
            resolve_precision("bf16", "cuda")
    with no_warning() as caught:
        warnings.simplefilter("always")
        assert resolve_precision("fp16", "cuda").name == "fp16"
    assert not caught


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="precision: expected one of auto, fp32 .*got 'half'"):
        resolve_precision("half", "cpu")


def test_the_reranker_scores_in_the_precision_chosen_for_its_device(monkeypatch, tiny_reranker):
    from rerankforge.reranker.scoring import Reranker

    cpu(monkeypatch, {}, "AVX2")
    assert Reranker.load(tiny_reranker).precision.name == "fp32"
    cpu(monkeypatch, {"avx512_bf16": True}, "AVX512")
    reranker = Reranker.load(tiny_reranker)
    assert reranker.precision.name == "bf16"
    assert Reranker.load(tiny_reranker, precision="fp32").precision.name == "fp32"
    scores = reranker.score([("a query", "a document"), ("another query", "another document")])
    assert scores.dtype == "float32" and len(scores) == 2


# --- threads


def machine(monkeypatch, affinity: int, physical: int | None, quota: float | None = None) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
    monkeypatch.setattr(hardware, "_physical_cores", lambda: physical)
    monkeypatch.setattr(hardware, "cgroup_cpu_limit", lambda: quota)


def test_a_laptop_uses_its_cores_and_processes_share_them(monkeypatch):
    machine(monkeypatch, affinity=16, physical=8)  # 8 cores, 16 hyper-threads
    assert choose_cpu_threads().count == 8
    assert choose_cpu_threads(2).count == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # a launcher's count of processes on this machine wins
    assert choose_cpu_threads(8).count == 2


def test_a_small_box_does_not_oversubscribe(monkeypatch):
    machine(monkeypatch, affinity=64, physical=32, quota=2.0)  # a 2-CPU container on a big host
    assert choose_cpu_threads().count == 2
    assert choose_cpu_threads(2).count == 1
    machine(monkeypatch, affinity=2, physical=2)
    assert choose_cpu_threads(3).count == 1  # never 0


def test_user_settings_win_but_not_accelerate_launch_default(monkeypatch):
    machine(monkeypatch, affinity=8, physical=8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_cpu_threads(2).count == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert choose_cpu_threads().count == 1  # the user's own OMP_NUM_THREADS=1
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # `accelerate launch` wrote OMP_NUM_THREADS=1
    assert choose_cpu_threads().count == 8
    monkeypatch.setenv("RERANKFORGE_CPU_THREADS", "5")
    assert choose_cpu_threads().count == 5
    monkeypatch.setenv("RERANKFORGE_CPU_THREADS", "five")
    with pytest.raises(ConfigError, match="RERANKFORGE_CPU_THREADS: expected a positive integer, got 'five'"):
        choose_cpu_threads()


def test_cgroup_quota_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert hardware.cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert hardware.cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert hardware.cgroup_cpu_limit(tmp_path) == 2.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert hardware.cgroup_cpu_limit(tmp_path) is None
    assert hardware.cgroup_cpu_limit(tmp_path / "none") is None


# --- the commands


def test_train_resolves_precision_and_threads_on_this_machine(monkeypatch, tmp_path, mined_slice, scifact_slice,
                                                              tiny_bi_encoder, tiny_bert, capsys):
    """`rerankforge train` (not only `accelerate launch`): `auto` follows the CPU (AMX forced here), and the
    user's OMP_NUM_THREADS=1 is kept rather than raised to the core count."""
    from rerankforge.training.cli import train_main

    monkeypatch.setenv("RERANKFORGE_CPU_CAPABILITY", "AMX")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    assert train_main(["--train_file", str(mined_slice), "--data", str(scifact_slice), "--model", tiny_bert,
                       "--first_stage_model", tiny_bi_encoder, "--output_dir", str(out), "--dev_queries", "0",
                       "--num_negatives", "3", "--max_length", "64", "--batch_size", "4", "--max_steps", "2",
                       "--eval_steps", "0", "--save_steps", "0", "--log_steps", "1"]) == 0
    printed = capsys.readouterr().err  # log messages, on stderr; stdout holds the result
    assert "precision: bf16 (auto: this CPU (AMX) has native bf16)" in printed
    assert "using 1 CPU thread(s) per process (OMP_NUM_THREADS)" in printed and torch.get_num_threads() == 1
    assert json.loads((out / "metrics.json").read_text())["precision"] == "bf16"
    assert json.loads((out / "train_config.json").read_text())["mixed_precision"] == "auto"


def test_fp16_training_on_the_cpu_is_refused_not_silently_fp32(tmp_path, mined_slice, scifact_slice, tiny_bert,
                                                              capsys):
    from rerankforge.training.cli import train_main

    assert train_main(["--train_file", str(mined_slice), "--data", str(scifact_slice), "--model", tiny_bert,
                       "--output_dir", str(tmp_path / "out"), "--dev_queries", "0",
                       "--mixed_precision", "fp16"]) == 2
    assert "mixed_precision: fp16 trains on GPUs only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_eval_and_serve_apply_the_thread_setting(monkeypatch, scifact_slice, capsys):
    from rerankforge.cli.main import main as rerankforge

    monkeypatch.setenv("RERANKFORGE_CPU_THREADS", "1")
    assert rerankforge(["eval", "--data", str(scifact_slice), "--reranker", "no/such-reranker"]) == 2
    assert "using 1 CPU thread(s) per process (RERANKFORGE_CPU_THREADS)" in capsys.readouterr().err
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert rerankforge(["serve", "--reranker", "no/such-reranker"]) == 2
    assert "using 1 CPU thread(s) per process (RERANKFORGE_CPU_THREADS)" in capsys.readouterr().err
    assert torch.get_num_threads() == 1
