"""Data-parallel stages (core/processes.py): under `accelerate launch` the processes share corpus encoding, search
and pair scoring and write what one process writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rerankforge.core.processes import Processes
from rerankforge.data_prep.embeddings import SHARD_SIZE, shard_layout

from conftest import REPO, launch_two_processes
from launched_commands import differences


def test_shares_are_even_and_gather_puts_the_items_back_in_order(monkeypatch):
    items = list(range(11))
    teams = [Processes(rank, 3) for rank in range(3)]
    parts = [team.share(items) for team in teams]
    assert sorted(map(len, parts)) == [3, 4, 4] and sorted(x for p in parts for x in p) == items
    monkeypatch.setattr(Processes, "_all", lambda self, value: [t.share(items) for t in teams])
    assert teams[1].gather(parts[1]) == items
    dicts = [{f"q{i}": i for i in part} for part in parts]
    monkeypatch.setattr(Processes, "_all", lambda self, value: dicts)
    keys = [f"q{i}" for i in items]
    assert list(teams[0].gather_dict(dicts[0], keys)) == keys


@pytest.mark.parametrize("count", [1, 7, 300, SHARD_SIZE * 8 + 5, SHARD_SIZE * 20])
def test_encoding_shards_cover_every_text_once_and_cost_the_same(count):
    texts = ["x" * (i % 97) for i in range(count)]
    shards = shard_layout(texts)
    rows = np.concatenate(shards)
    assert sorted(rows.tolist()) == list(range(count))
    assert len(shards) == count or len(shards) % 8 == 0  # 1, 2, 4 or 8 processes share them evenly
    assert max(map(len, shards)) - min(map(len, shards)) <= 1 and max(map(len, shards)) <= SHARD_SIZE
    for shard in shards:  # longest first within a shard: batches of similar length
        lengths = [len(texts[i]) for i in shard]
        assert lengths == sorted(lengths, reverse=True)


def test_a_command_that_runs_in_one_process_refuses_a_launcher(monkeypatch, capsys):
    from rerankforge.cli.main import main as rerankforge

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert rerankforge(["env"]) == 2
    assert "a launcher started 2; expected it without `accelerate launch`" in capsys.readouterr().err


def _commands(out: Path, scifact_slice, tiny_bi_encoder, tiny_reranker, mined_slice) -> list[list[str]]:
    dense = ["--retriever", "dense", "--model", tiny_bi_encoder]
    return [
        ["mine", "--data", str(scifact_slice), "--split", "train", *dense, "--num_negatives", "4", "--relative_margin",
         "none", "--output", str(out / "mined.jsonl")],
        ["retrieve", "--data", str(scifact_slice), "--split", "test", *dense, "--k", "20",
         "--output", str(out / "dense.trec")],
        ["eval", "--data", str(scifact_slice), "--split", "test", *dense, "--reranker", tiny_reranker, "--depth", "10",
         "--k", "10", "--output", str(out / "report")],
        ["index", "--docs", str(scifact_slice), "--out", str(out / "index"), "--model", tiny_bi_encoder],
        ["score-teacher", "--input", str(mined_slice), "--output", str(out / "teacher.jsonl"), "--teacher",
         tiny_reranker],
        ["calibrate", "--model", str(out / "reranker"), "--data", str(scifact_slice), "--split", "test",
         "--dev_queries", "10", "--depth", "10", "--first_stage_model", tiny_bi_encoder],
    ]


def _run(out: Path, commands, two: bool, tiny_reranker) -> subprocess.CompletedProcess:
    shutil.copytree(tiny_reranker, out / "reranker")
    env = {"RERANKFORGE_CACHE": str(out / "cache"), "OMP_NUM_THREADS": "1"}
    script = [str(REPO / "tests" / "launched_commands.py"), json.dumps(commands)]
    if two:
        return launch_two_processes(script[1:], timeout=400, env=env, program=script[:1])
    return subprocess.run([sys.executable, *script], capture_output=True, text=True, timeout=400,
                          env={**os.environ, **env})


def test_two_processes_write_what_one_writes(tmp_path, scifact_slice, tiny_bi_encoder, tiny_reranker, mined_slice):
    """mine, retrieve, eval, index, score-teacher and calibrate as two gloo CPU processes vs one: the same files, the
    embedding cache written once (no shard left), and the second process silent."""
    outputs = {}
    for name, two in (("one", False), ("two", True)):
        out = tmp_path / name
        out.mkdir()
        done = _run(out, _commands(out, scifact_slice, tiny_bi_encoder, tiny_reranker, mined_slice), two,
                    tiny_reranker)
        assert done.returncode == 0, done.stderr[-4000:]
        outputs[name] = (out, done)
    one, two = outputs["one"][0], outputs["two"][0]
    for file in ("mined.jsonl", "mined.summary.json", "dense.trec", "teacher.jsonl", "reranker/rerankforge.json",
                 "index/manifest.json", "index/chunks.jsonl", "index/embeddings.npy",
                 "report/metrics.json", *(f"report/runs/{p.name}" for p in sorted((one / "report" / "runs").iterdir()))):
        # the tiny random reranker scores every pair within 1e-4 of the others (Platt slope ~1e4), so the padding
        # of other batches (scores differ by 1e-8) moves its calibration by ~1e-4: that file gets 1e-3
        differ = differences(one, two, file, rel=1e-3 if file.endswith("rerankforge.json") else 1e-5)
        assert not differ, f"{file}: {differ}"
    cache = [p for p in (two / "cache").rglob("*.npy")]
    assert cache and all(p.name == "embeddings.npy" for p in cache), cache
    stdout = outputs["two"][1].stdout
    assert stdout.count("wrote the top-20 of 20 queries") == 1 and stdout.count("saved in ") == 1
