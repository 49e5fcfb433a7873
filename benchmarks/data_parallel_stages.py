"""The stages around training as 1 process vs N under `accelerate launch` (issue 31): wall time of each command and
whether the N-process outputs equal the 1-process ones (numbers to 1e-5).

    python benchmarks/data_parallel_stages.py --data scifact --reranker RERANKER --out /tmp/dp [--processes 2]

Each command runs as a user runs it -- `python -m rerankforge CMD ...`, or `accelerate launch --config_file
configs/accelerate/cpu_2proc.yaml -m rerankforge CMD ...` (on a machine with GPUs: `--num_processes N` on them) --
so each time includes starting Python and loading the models. Each setting gets a fresh cache: `mine` encodes the
corpus (the cost that sharing saves most), and `retrieve`, `eval` and `calibrate` then read that cache as a
user's second command does. `score-teacher` scores the 1-process run's mined file in both settings.
Prints a table and the differences; --json writes both."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def commands(data: str, reranker: str, out: Path, mined: Path, depth: int) -> dict[str, list[str]]:
    return {
        "mine": ["mine", "--data", data, "--split", "train", "--retriever", "dense", "--output", str(out / "mined.jsonl")],
        "retrieve": ["retrieve", "--data", data, "--split", "test", "--retriever", "dense", "--k", "100",
                     "--output", str(out / "dense.trec")],
        "eval": ["eval", "--data", data, "--split", "test", "--retriever", "dense", "--reranker", reranker,
                 "--depth", str(depth), "--k", str(depth), "--output", str(out / "report")],
        "score-teacher": ["score-teacher", "--input", str(mined), "--output", str(out / "teacher.jsonl"),
                          "--teacher", reranker],
        "calibrate": ["calibrate", "--model", str(out / "reranker")],
    }


OUTPUTS = {"mine": ["mined.jsonl", "mined.summary.json"], "retrieve": ["dense.trec"],
           "eval": ["report/metrics.json"], "score-teacher": ["teacher.jsonl"], "calibrate": ["reranker/rerankforge.json"]}


def run(argv: list[str], processes: int, cache: Path) -> float:
    env = {**os.environ, "RERANKFORGE_CACHE": str(cache)}
    if processes == 1:
        launcher = [sys.executable, "-m", "rerankforge"]
    else:
        from conftest import free_port

        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", str(free_port()),
                    "--num_processes", str(processes),
                    *(["--config_file", str(ROOT / "configs/accelerate/cpu_2proc.yaml")] if processes == 2 else
                      ["--multi_gpu"]), "-m", "rerankforge"]
    started = time.perf_counter()
    done = subprocess.run([*launcher, *argv, "--no_progress"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(argv[:1])} with {processes} process(es) failed:\n{done.stderr[-4000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--reranker", required=True, help="A `rerankforge train` folder (calibrate refits a copy).")
    parser.add_argument("--out", required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from launched_commands import differences

    from rerankforge.core.hardware import cpu_capability, usable_cores

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    settings = {1: out / "one", args.processes: out / f"p{args.processes}"}
    seconds: dict[str, dict[int, float]] = {}
    for count, folder in settings.items():
        folder.mkdir(parents=True)
        shutil.copytree(args.reranker, folder / "reranker")
        for name, argv in commands(args.data, args.reranker, folder, settings[1] / "mined.jsonl", args.depth).items():
            seconds.setdefault(name, {})[count] = run(argv, count, folder / "cache")
            print(f"{name} x{count}: {seconds[name][count]:.1f} s", flush=True)
    one, many = settings[1], settings[args.processes]
    table = {name: {"one_s": round(times[1], 1), f"{args.processes}_s": round(times[args.processes], 1),
                    "speedup": round(times[1] / times[args.processes], 2),
                    "differences": [d for file in OUTPUTS[name] for d in differences(one, many, file)]}
             for name, times in seconds.items()}
    print(f"\n{usable_cores()} usable cores, CPU {cpu_capability()}; {args.data}, 1 vs {args.processes} processes")
    print(f"{'command':<14} {'1 process':>10} {f'{args.processes} processes':>12} {'speedup':>8}  same outputs")
    for name, row in table.items():
        print(f"{name:<14} {row['one_s']:>9.1f}s {row[f'{args.processes}_s']:>11.1f}s {row['speedup']:>7.2f}x  "
              f"{'yes' if not row['differences'] else 'NO: ' + '; '.join(row['differences'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_capability(), "cores": usable_cores(), "data": args.data,
                                               "processes": args.processes, "commands": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
