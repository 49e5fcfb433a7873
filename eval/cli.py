"""`rerankforge eval`: score TREC run files against a split's relevance labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.data_prep.cli import add_command

from .metrics import DEFAULT_METRICS, MEASURES, mean, per_query

EVAL_HELP = "Score TREC run files against a split's relevance labels (nDCG, MRR, MAP, recall)."


@dataclass
class EvalArgs:
    data: str = field(metadata={"help": "A BEIR folder or a dataset name (as for `rerankforge mine`)."})
    run: list[str] = field(metadata={"help": "One or more TREC run files to score."})
    split: str = field(default="test", metadata={"help": "Qrels split to score against."})
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS),
                               metadata={"help": f"Metrics, from: {', '.join(MEASURES)}."})


def add_eval_parser(subparsers) -> None:
    add_command(subparsers, "eval", EVAL_HELP, [EvalArgs], run_eval)


def run_eval(args: EvalArgs) -> int:
    from rerankforge.data_prep.runs import read_trec
    from rerankforge.data_prep.sources import load_collection

    collection = load_collection(args.data, split=args.split)
    rows = []
    for path in args.run:
        values = mean(per_query(collection.qrels, read_trec(path), tuple(args.metrics)))
        rows.append((Path(path).name, values))
    print(format_table(rows, args.metrics, title=f"{collection.name}/{args.split} "
                                                  f"({len(collection.judged_query_ids())} judged queries)"))
    return 0


def format_table(rows: list[tuple[str, dict[str, float]]], metrics: list[str], title: str) -> str:
    width = max(len(name) for name, _ in rows)
    lines = [title, f"{'run':<{width}}  " + "  ".join(f"{m:>8}" for m in metrics)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{values[m]:8.4f}" for m in metrics) for name, values in rows]
    return "\n".join(lines)
