"""Seconds per training step of the SciFact MiniLM recipe with the model's own dropout vs attention (and hidden)
dropout off.

Trains configs/scifact_minilm_full.yaml (its batch size, negatives, max length and precision as shipped) for
`--warmup` + `--steps` optimizer steps per variant, same seed and so the same batches, in `--rounds` rounds that
alternate the variants (this machine's speed drifts; alternating spreads the drift over all of them), and prints
each variant's median seconds per step and its ratio to the model's own dropout. Seconds per step come from the
loop's own throughput log (`log_steps: 1`: one window per step, evaluation and checkpoints excluded).

Dropout on the attention probabilities keeps PyTorch's scaled-dot-product attention off its fused kernels (the
mask has to be drawn over every batch x head x length x length score); `attention_dropout: 0` turns them on.

Usage: python benchmarks/train_dropout.py [--train-file FILE] [--steps 8] [--warmup 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

VARIANTS = {"model's own (0.1 / 0.1)": {}, "attention 0": {"attention_dropout": "0"},
            "attention 0, hidden 0": {"attention_dropout": "0", "hidden_dropout": "0"}}


def seconds_per_step(args, overrides: dict[str, str], folder: Path) -> list[float]:
    from rerankforge.configs import recipe
    from rerankforge.training.config import load_config
    from rerankforge.training.loop import train

    extra = [item for key, value in overrides.items() for item in (f"--{key}", value)]
    config = load_config([
        "--config", str(recipe("scifact_minilm_full.yaml")), "--train_file", args.train_file, "--data", args.data,
        "--max_steps", str(args.warmup + args.steps), "--log_steps", "1", "--dev_queries", "0", "--eval_steps", "0",
        "--save_steps", "0", "--fit_combination", "false", "--calibrate", "false",
        "--output_dir", str(folder / "run"), *extra])
    metrics = train(config)
    pairs = config.batch_size * (1 + config.num_negatives)
    rates = [h["train/pairs_per_s"] for h in metrics["history"] if "train/pairs_per_s" in h]
    return [pairs / rate for rate in rates[args.warmup:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="scifact", help="BEIR folder or dataset name (its train split)")
    parser.add_argument("--train-file", default="outputs/scifact/mined.r3-30.train.jsonl",
                        help="mined n-tuple file (the recipe's; mine it as configs/scifact_minilm_full.yaml says)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the variants")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1 and --warmup at least 0")
    if not Path(args.train_file).is_file():
        parser.error(f"--train-file {args.train_file} not found: mine it first (configs/scifact_minilm_full.yaml)")

    import torch

    from rerankforge.core.hardware import cpu_capability, use_cpu_threads

    threads = use_cpu_threads()
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, overrides in VARIANTS.items():
                seconds[name] += seconds_per_step(args, overrides, Path(tmp))

    print(f"\nconfigs/scifact_minilm_full.yaml, {args.train_file}; {args.rounds} rounds x {args.steps} timed steps "
          f"after {args.warmup} warm-up; CPU capability {cpu_capability()} (torch dispatch "
          f"{torch.backends.cpu.get_cpu_capability()}), {threads}")
    base = statistics.median(seconds[next(iter(VARIANTS))])
    print(f"{'dropout':26}{'median s/step':>15}{'min':>8}{'max':>8}{'speed-up':>10}")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:26}{median:15.3f}{min(values):8.3f}{max(values):8.3f}{base / median:10.2f}x")


if __name__ == "__main__":
    main()
