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

from rerankforge.data_prep.cli import report_errors
from rerankforge.data_prep.errors import disk_full, disk_full_error

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
    from rerankforge.train.cli import train_main

    with small_tmpfs(tmp_path / "disk", "6m") as disk:
        out = disk / "run"
        code = train_main(_tiny_args(mined_slice, scifact_slice, tiny_bi_encoder, tiny_bert, out,
                                     "--max_steps", "6", "--fit_combination", "false"))
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and "Traceback" not in err, err[-3000:]
        assert len(errors) == 1 and errors[0].startswith("error: no space left on device writing "), errors
        assert not list(out.rglob(".tmp-*")), sorted(p.name for p in out.rglob("*"))
