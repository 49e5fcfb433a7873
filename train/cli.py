"""`rerankforge train` / `accelerate launch train/run.py`, and `rerankforge push`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from rerankforge.core.commands import add_command, report_errors

TRAIN_HELP = ("Fine-tune a cross-encoder reranker: --config configs/NAME.yaml, any key overridable as --key value "
              "(`rerankforge train --help` lists them).")
PUSH_HELP = ("Upload a trained reranker folder to the Hugging Face Hub, its model card rebuilt for the repo "
             "(--eval_report adds test figures; --dry_run lists the files).")


def train_main(argv: list[str] | None = None) -> int:
    """Parse the config, train, publish if asked. Errors in the input print one line and exit 2; a failed upload
    exits 1 (the trained folder is complete: `rerankforge push` retries it)."""
    argv = sys.argv[1:] if argv is None else argv

    def run() -> int:
        from .config import load_config
        from .dev.dev_choices import train_choosing_on_dev

        config = load_config(argv)
        metrics = train_choosing_on_dev(config)
        if metrics:  # the main process
            print(summary(config.output_dir, metrics))
            if config.push_to_hub:
                from .publish.hub import adapter_left_out, push_folder

                files = push_folder(config.output_dir, config.hub_model_id, private=config.hub_private)
                print(f"uploaded {len(files)} files to https://huggingface.co/{config.hub_model_id}")
                if note := adapter_left_out(config.output_dir):
                    print(note)
        return 0

    return report_errors(run, on_interrupt="rerun the same command to resume from the last checkpoint", argv=argv)


def summary(output_dir: str, metrics: dict) -> str:
    lines = [f"trained {metrics['steps']} steps; reranker saved in {output_dir}"]
    first, reranked = metrics.get("dev_first_stage"), metrics.get("dev_reranked")
    if first and reranked:
        lines.append(f"dev nDCG@10: first stage {first['nDCG@10']:.4f} -> reranked {reranked['nDCG@10']:.4f} "
                     f"(best step {metrics['best_step']})")
    if metrics.get("train_pairs_per_s_median"):
        lines.append(f"throughput: {metrics['train_pairs_per_s_median']:.1f} pairs/s (median)")
    return "\n".join(lines)


@dataclass
class PushArgs:
    folder: str = field(metadata={"help": "Output folder of `rerankforge train`."})
    hub_model_id: str = field(metadata={"help": "Hub repo id, org/name."})
    private: bool = field(default=True, metadata={"help": "Create the repo as private."})
    dry_run: bool = field(default=False, metadata={
        "help": "Only list the files that would be uploaded (the model card is still rebuilt, to be read)."})
    eval_report: str | None = field(default=None, metadata={
        "help": "A `rerankforge eval` output folder (or its metrics.json) with this reranker's results: the card's "
                "model-index and evaluation section get its figures (e.g. the test split) beside the dev ones."})


def add_train_parser(subparsers) -> None:
    """Lists `train` among the commands; `rerankforge train ...` itself goes straight to `train_main`."""
    subparsers.add_parser("train", help=TRAIN_HELP, description=TRAIN_HELP, add_help=False)


def add_push_parser(subparsers) -> None:
    add_command(subparsers, "push", PUSH_HELP, [PushArgs], run_push)


def run_push(args: PushArgs) -> int:
    from .publish.hub import adapter_left_out, push_folder

    files = push_folder(args.folder, args.hub_model_id, private=args.private, dry_run=args.dry_run,
                        eval_report=args.eval_report)
    verb = "would upload" if args.dry_run else "uploaded"
    note = adapter_left_out(args.folder)
    print(json.dumps({"repo": args.hub_model_id, verb.replace(" ", "_"): files, **({"left_out": note} if note else {})},
                     indent=2))
    return 0


def train_with(config: str | None = None, **options) -> dict:
    """`rerankforge.train(config, **options)`: the YAML recipe `config` (a path or a shipped recipe's name),
    its keys overridden by `options`, trained in this process; returns the run's metrics."""
    from pathlib import Path

    from rerankforge.configs import recipe

    from .config import load_config
    from .dev.dev_choices import train_choosing_on_dev

    argv = ["--config", config if Path(config).exists() else str(recipe(config))] if config is not None else []
    for key, value in options.items():
        argv += [f"--{key}", *([str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)])]
    return train_choosing_on_dev(load_config(argv))
