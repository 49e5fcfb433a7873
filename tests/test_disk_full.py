"""A full disk: one line that says so (exit 1), no half-written checkpoint left, earlier outputs intact.

Once, training on a full disk died with `RuntimeError: [enforce fail at inline_container.cc:672]` and left a
10 MB `checkpoints/.tmp-step-20`. The real test trains into a small tmpfs (it needs the right to mount one, so
it is skipped elsewhere); the others simulate the failure where torch reports it."""

from __future__ import annotations

import errno
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from rerankforge.core.commands import report_errors
from rerankforge.core.errors import disk_full, disk_full_error

from test_train import _tiny_args


def test_a_full_disk_anywhere_is_one_line_and_exit_1(capsys):
    def fails():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/run.trec")

    assert report_errors(fails, on_interrupt="stopped") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no space left on device writing /data/out/run.trec;") and "\n" not in err


def test_torchs_failed_write_counts_as_a_full_disk_only_where_the_disk_is_full(tmp_path, monkeypatch):
    import shutil

    failure = RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")
    assert not disk_full(failure, tmp_path)  # this disk has room: some other failure, reported as it is
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10 << 20, 10 << 20, 0))
    assert disk_full(failure, tmp_path) and not disk_full(RuntimeError("other"), tmp_path)
    assert disk_full_error("x").errno == errno.ENOSPC


@contextmanager
def small_tmpfs(folder: Path, size: str):
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_training_onto_a_full_disk_says_so_and_leaves_no_half_checkpoint(tmp_path, mined_slice, scifact_slice,
                                                                         tiny_bi_encoder, tiny_bert, capsys):
    from rerankforge.training.cli import train_main

    with small_tmpfs(tmp_path / "disk", "6m") as disk:
        out = disk / "run"
        code = train_main(_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,
                                     "--max_steps", "6", "--fit_combination", "false"))
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and "Traceback" not in err, err[-3000:]
        assert len(errors) == 1 and errors[0].startswith("error: no space left on device writing "), errors
        assert not list(out.rglob(".tmp-*")), sorted(p.name for p in out.rglob("*"))


def _one_disk_full_line(err: str) -> list[str]:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(errors) == 1, err[-3000:]
    assert errors[0].startswith("error: no space left on device"), errors
    return errors


def test_safetensors_onto_a_full_disk_is_one_line_too(tmp_path, capsys):
    """safetensors raises its own SafetensorError (neither OSError nor RuntimeError) where the disk is full."""
    import torch
    from safetensors.torch import save_file

    from rerankforge.core.errors import writing

    with small_tmpfs(tmp_path / "disk", "64k") as disk:
        def save():
            with writing(disk / "model.safetensors"):
                save_file({"w": torch.zeros(256, 1024)}, str(disk / "model.safetensors"))
            return 0

        assert report_errors(save, on_interrupt="stopped") == 1
        _one_disk_full_line(capsys.readouterr().err)


def test_the_embedding_cache_and_the_index_onto_a_full_disk_say_so(tmp_path, scifact_slice, tiny_bi_encoder,
                                                                  capsys):
    """numpy's short write ("OSError: 9664 requested and 992 written", no errno) and faiss' failed write: one line,
    exit 1, no temporary file; an earlier file on the same disk untouched."""
    from rerankforge.cli.main import main as rerankforge

    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        earlier = disk / "earlier.bin"
        earlier.write_bytes(b"x" * 4096)
        (disk / "filler").write_bytes(b"\0" * (256 * 1024 - 4096 - 24 * 1024))  # about 20 kB stay free
        code = rerankforge(["mine", "--data", str(scifact_slice), "--split", "train", "--retriever", "dense",
                            "--model", tiny_bi_encoder, "--cache_dir", str(disk / "cache"), "--num_negatives", "4",
                            "--output", str(disk / "mined.jsonl"), "--no_show_progress"])
        assert code == 1
        _one_disk_full_line(capsys.readouterr().err)
        code = rerankforge(["index", "--docs", str(scifact_slice / "corpus.jsonl"), "--out", str(disk / "index"),
                            "--model", tiny_bi_encoder, "--chunk_tokens", "64"])
        assert code == 1
        _one_disk_full_line(capsys.readouterr().err)
        left = sorted(p.relative_to(disk).as_posix() for p in disk.rglob("*") if p.is_file())
        assert not [name for name in left if ".tmp" in name or "/." in name or name.startswith(".")], left
        assert earlier.read_bytes() == b"x" * 4096
