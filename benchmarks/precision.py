"""Seconds per training step of the shipped demo recipe: precision `auto` (the default) vs fp32.

Trains configs/demo_scifact.yaml (MiniLM, its batch size, negatives and max length as shipped) for
`--warmup` + `--steps` optimizer steps with `mixed_precision: auto` and again with `mixed_precision: "no"`
(fp32), same seed and so the same batches, and prints the median seconds per step after the warm-up
steps side by side with the ratio auto / fp32. On a machine without native bf16, auto must resolve to
fp32 and the ratio stay within noise (the target is <= 1.15); on one with AVX512-BF16/AMX (or a bf16 GPU)
auto trains in bf16 and the ratio shows its gain. `--force-no-native` measures the no-native path on a
bf16 machine (it sets RERANKFORGE_CPU_CAPABILITY=AVX2); `--explicit-bf16` adds a run with
`mixed_precision: bf16`, to show what emulated bf16 costs where it is not native.

Seconds per step come from the loop's own throughput log (`log_steps: 1`: one window per step, evaluation
and checkpoints excluded): pairs per step / pairs per second. The training file is --train-file when
given, else the demo's (outputs/demo/mined.train.jsonl) when a demo has run, else one mined here from
SciFact train with BM25 and the demo's mining settings -- BM25 negatives are other abstracts of the same
corpus, and a step's cost depends on their lengths (truncated to max_length), not on how hard they are.

Usage: python benchmarks/precision.py [--data scifact] [--train-file FILE] [--steps 20] [--warmup 3] \
           [--force-no-native] [--explicit-bf16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

DEMO_MINED = Path("outputs/demo/mined.train.jsonl")


def training_file(args, folder: Path, num_negatives: int) -> Path:
    if args.train_file:
        return Path(args.train_file)
    if DEMO_MINED.is_file():
        return DEMO_MINED
    from rerankforge.data_prep.training_files.writing import rows, write_rows
    from rerankforge.data_prep.mining import MiningConfig, mine_negatives
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.sources import load_collection

    collection = load_collection(args.data, split="train")
    bm25 = build_retriever(collection.corpus, RetrieverConfig(retriever="bm25", show_progress=False))
    mining = MiningConfig(num_negatives=num_negatives, min_rank=3, max_rank=30, sampling="random", seed=13)
    path = folder / "mined.bm25.train.jsonl"
    write_rows(path, rows(mine_negatives(collection, bm25, mining).examples, "n-tuple"))
    return path


def demo_value(key: str):
    import yaml

    from rerankforge.configs import recipe

    return yaml.safe_load(recipe("demo_scifact.yaml").read_text())[key]


def seconds_per_step(args, train_file: Path, precision: str, folder: Path) -> tuple[list[float], str]:
    """Seconds of each step after the warm-up, and the precision `precision` resolved to."""
    from rerankforge.configs import recipe
    from rerankforge.training.config import load_config
    from rerankforge.training.loop import train

    config = load_config([
        "--config", str(recipe("demo_scifact.yaml")), "--train_file", str(train_file), "--data", args.data,
        "--mixed_precision", precision, "--max_steps", str(args.warmup + args.steps), "--log_steps", "1",
        "--dev_queries", "0", "--eval_steps", "0", "--save_steps", "0", "--fit_combination", "false",
        "--output_dir", str(folder / precision)])
    metrics = train(config)
    pairs = config.batch_size * (1 + config.num_negatives)  # every batch is full but perhaps an epoch's last
    rates = [h["train/pairs_per_s"] for h in metrics["history"] if "train/pairs_per_s" in h]
    return [pairs / rate for rate in rates[args.warmup:]], metrics["precision"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="scifact", help="BEIR folder or dataset name (its train split)")
    parser.add_argument("--train-file", default=None, help="mined n-tuple file (default: see above)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--force-no-native", action="store_true",
                        help="measure the no-native path on a bf16 machine (RERANKFORGE_CPU_CAPABILITY=AVX2)")
    parser.add_argument("--explicit-bf16", action="store_true", help="also time mixed_precision: bf16")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.force_no_native:
        os.environ["RERANKFORGE_CPU_CAPABILITY"] = "AVX2"

    import torch

    from rerankforge.core.hardware import CPU_CAPABILITY_ENV, cpu_capability, use_cpu_threads

    threads = use_cpu_threads()
    variants = ["auto", "no"] + (["bf16"] if args.explicit_bf16 else [])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        train_file = training_file(args, Path(tmp), demo_value("num_negatives"))
        for precision in variants:
            results[precision] = seconds_per_step(args, train_file, precision, Path(tmp))

    forced = f", forced by {CPU_CAPABILITY_ENV}" if os.environ.get(CPU_CAPABILITY_ENV) else ""
    print(f"\nconfigs/demo_scifact.yaml, {train_file}; {args.steps} timed steps after {args.warmup} warm-up; "
          f"CPU capability {cpu_capability()}{forced} (torch dispatch {torch.backends.cpu.get_cpu_capability()}), "
          f"{threads}")
    fp32 = statistics.median(results["no"][0])
    print(f"{'mixed_precision':18}{'ran in':>8}{'median s/step':>15}{'min':>8}{'max':>8}{'ratio to no':>13}")
    for precision, (seconds, resolved) in results.items():
        median = statistics.median(seconds)
        print(f"{precision:18}{resolved:>8}{median:15.3f}{min(seconds):8.3f}{max(seconds):8.3f}{median / fp32:13.3f}")


if __name__ == "__main__":
    main()
