"""`rerankforge mine` (also the `mine-negatives` script) and `rerankforge retrieve`.

Arguments come from typed dataclasses through transformers' HfArgumentParser, so every option is
documented once, where it is defined; `--num-negatives` and `--num_negatives` both work."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from rerankforge.core.commands import add_command, dataclass_parser, finish_parser, run_cli

from .mine import MineArgs, mine_to_file
from .mining import MiningConfig
from .retrieval import RetrieverConfig


@dataclass
class RetrieveArgs:
    """Input and output of `retrieve`."""

    data: str = field(metadata={"help": "A BEIR folder or a dataset name (see `rerankforge mine --help`)."})
    output: str = field(metadata={"help": "TREC run file to write (qid Q0 docid rank score tag)."})
    split: str = field(default="test", metadata={"help": "Qrels split whose judged queries are searched."})
    k: int = field(default=100, metadata={"help": "Documents retrieved per query."})
    tag: str | None = field(default=None, metadata={"help": "Run tag in the last column (default: the retriever)."})


MINE_HELP = "Mine hard negatives for every judged (query, positive) pair of a split."
RETRIEVE_HELP = "Run a first-stage retriever over a split's queries and write a TREC run file."


def add_mine_parser(subparsers) -> None:
    add_command(subparsers, "mine", MINE_HELP, [MineArgs, RetrieverConfig, MiningConfig], run_mine,
                shares_work=True)


def add_generate_queries_parser(subparsers) -> None:
    from .query_generation import GenerateQueriesArgs

    add_command(subparsers, "generate-queries", GENERATE_HELP, [GenerateQueriesArgs], run_generate_queries)


GENERATE_HELP = ("Write synthetic queries for a corpus with an LLM (local causal LM or OpenAI-compatible endpoint), "
                 "filter out empty, too short/long, copied and duplicate ones, and save a BEIR folder whose train "
                 "split `mine-negatives`, `score-teacher` and `train` take (the GPL recipe, no labels needed).")


def run_generate_queries(args) -> int:
    from .query_generation import generate_queries

    summary = generate_queries(args)
    dropped = ", ".join(f"{reason} {count}" for reason, count in summary["dropped"].items())
    print(f"{summary['kept']} of {summary['passages']} generated queries kept (dropped: {dropped}); "
          f"{summary['generated_now']} generated now in {summary['seconds']} s with {summary['generator']} "
          f"{summary['model']}")
    print(f"wrote {args.output} (corpus.jsonl, queries.jsonl, qrels/train.tsv, generation.summary.json); next: "
          f"rerankforge mine --data {args.output} --split train ...")
    return 0


def add_retrieve_parser(subparsers) -> None:
    add_command(subparsers, "retrieve", RETRIEVE_HELP, [RetrieveArgs, RetrieverConfig], run_retrieve,
                shares_work=True)


def run_mine(args: MineArgs, retriever_config: RetrieverConfig, mining: MiningConfig) -> int:
    from .training_files.writing import summary_path

    summary = mine_to_file(args, retriever_config, mining)
    if summary is None:  # not the first of the processes a launcher started (core/processes.py)
        return 0
    print(format_summary(summary))
    dropped = summary["output"].get("examples_dropped_short_of_negatives", 0)
    if dropped:
        print(f"left out {dropped} examples with fewer than {mining.num_negatives} negatives (an n-tuple file has a "
              f"fixed number of negative columns); --format triplet or labeled-pair keeps them")
    print(f"wrote {summary['output']['rows']} rows to {summary['output']['path']} ({args.layout} layout; summary: "
          f"{summary_path(summary['output']['path'])})")
    return 0


def run_retrieve(args: RetrieveArgs, retriever_config: RetrieverConfig) -> int:
    from rerankforge.core.outputs import check_output_file
    from rerankforge.core.processes import processes
    from .retrieval import build_retriever
    from .runs import write_trec
    from .sources import load_collection

    output = check_output_file(args.output, "--output")
    collection = load_collection(args.data, split=args.split)
    retriever = build_retriever(collection.corpus, retriever_config)
    queries = collection.split_queries()
    team = processes()  # under a launcher, each process searches a share of the queries
    part = {q: queries[q] for q in team.share(list(queries))}
    run = team.gather_dict(retriever.search(part, args.k) if part else {}, list(queries))
    if not team.is_main:
        return 0
    write_trec(output, run, tag=args.tag or retriever.name)
    print(f"wrote the top-{args.k} of {len(run)} queries ({collection.name}/{args.split}, {retriever.name}) "
          f"to {args.output}")
    return 0


def format_summary(summary: dict) -> str:
    negatives = summary["negatives_per_example"]
    recall = "  ".join(f"R{k}={v:.3f}" for k, v in summary["positive_recall"].items())
    dropped = ", ".join(f"{k}={v}" for k, v in summary["candidates_dropped"].items() if v)
    return "\n".join([
        f"mined {summary['dataset']}/{summary['split']} with {summary['retriever']}: "
        f"{summary['queries']} queries, {summary['examples']} (query, positive) examples",
        f"negatives per example: mean {negatives['mean']} (target {negatives['target']}, "
        f"min {negatives['min']}); {summary['examples_short_of_negatives']} examples short",
        f"candidates dropped: {dropped or 'none'} "
        f"({summary['likely_false_negatives_dropped']} as likely false negatives)",
        f"first-stage rank of the positives: {recall}  (what reranking can at most recover)",
    ])


def mine_negatives_main(argv: list[str] | None = None) -> int:
    """The `mine-negatives` console script: `rerankforge mine` under its own name."""
    types = [MineArgs, RetrieverConfig, MiningConfig]
    parser = dataclass_parser(types, prog="mine-negatives", description=MINE_HELP)
    finish_parser(parser, types, run_mine, shares_work=True)
    return run_cli(parser, sys.argv[1:] if argv is None else argv)
