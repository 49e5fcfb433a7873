"""`rerankforge demo`: the main job on a small default, end to end over the stages that exist.

Now: first stage (BM25 and dense) on the test split, scored; hard negatives mined from the train
split. Training and the reranked report join as those stages land."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.data_prep.cli import add_command, format_summary
from rerankforge.data_prep.models import DEFAULT_BI_ENCODER

DEMO_HELP = "Run the whole pipeline on a small default (SciFact, all-MiniLM-L6-v2) and print the results."


@dataclass
class DemoArgs:
    data: str = field(default="scifact", metadata={
        "help": "BEIR folder or dataset name; its train split is mined, its test split scored."})
    output_dir: str = field(default="outputs/demo", metadata={"help": "Where runs, mined data and reports go."})
    model: str = field(default=DEFAULT_BI_ENCODER, metadata={"help": "Bi-encoder (folder or Hub id)."})
    k: int = field(default=100, metadata={"help": "First-stage depth retrieved per test query."})
    num_negatives: int = field(default=8, metadata={"help": "Negatives mined per (query, positive) pair."})


def add_demo_parser(subparsers) -> None:
    add_command(subparsers, "demo", DEMO_HELP, [DemoArgs], run_demo)


def run_demo(args: DemoArgs) -> int:
    from rerankforge.data_prep.mined_files import rows, summary_path, write_rows
    from rerankforge.data_prep.mining import MiningConfig, mine_negatives
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.runs import write_trec
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.eval.cli import format_table
    from rerankforge.eval.metrics import mean, per_query

    started = time.perf_counter()
    out = Path(args.output_dir)
    mining = MiningConfig(num_negatives=args.num_negatives)
    test = load_collection(args.data, split="test")
    train = load_collection(args.data, split="train")

    print(f"[1/2] first stage on {test.name}/test ({len(test.judged_query_ids())} queries, "
          f"{len(test.corpus)} documents)")
    table = []
    for kind in ("bm25", "dense"):
        retriever = build_retriever(test.corpus, RetrieverConfig(retriever=kind, model=args.model))
        run = retriever.search(test.split_queries(), args.k)
        write_trec(out / f"{kind}.test.trec", run, tag=kind)
        table.append((kind, mean(per_query(test.qrels, run))))

    print(f"[2/2] mining {args.num_negatives} hard negatives per pair on {train.name}/train")
    dense = build_retriever(train.corpus, RetrieverConfig(retriever="dense", model=args.model))
    result = mine_negatives(train, dense, mining)
    mined = out / "mined.train.jsonl"
    write_rows(mined, rows(result.examples, "n-tuple"))
    (summary_path(mined)).write_text(json.dumps(result.summary, indent=2) + "\n")

    metrics = list(table[0][1])
    print()
    print(format_table(table, metrics, title=f"first stage, {test.name}/test"))
    print()
    print(format_summary(result.summary))
    print(f"\noutputs in {out}/ (run files, {mined.name}); took {time.perf_counter() - started:.0f} s")
    return 0
