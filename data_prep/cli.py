"""`rerankforge mine` (also the `mine-negatives` script) and `rerankforge retrieve`.

Arguments come from typed dataclasses through transformers' HfArgumentParser, so every option is
documented once, where it is defined; `--num-negatives` and `--num_negatives` both work."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import typing
from dataclasses import dataclass, field
from typing import Callable, Literal

from .errors import RerankforgeError, disk_full
from .mining import MiningConfig
from .retrieval import RetrieverConfig


@dataclass
class MineArgs:
    """Input and output of `mine`."""

    data: str = field(metadata={"help": "A BEIR folder, a pairs .jsonl/.csv file, hf:NAME for a Hugging Face "
                                        "dataset, or a dataset name looked up in $RERANKFORGE_DATA, the cache, "
                                        "then downloaded (e.g. scifact)."})
    output: str = field(metadata={"help": "Output file: .jsonl or .parquet. A summary lands beside it as "
                                          "NAME.summary.json."})
    split: str = field(default="train", metadata={"help": "Qrels split whose judged queries are mined."})
    format: Literal["n-tuple", "triplet", "labeled-pair"] = field(
        default="n-tuple", metadata={"help": "n-tuple: a row per (query, positive) with all negatives; triplet: "
                                             "a row per negative; labeled-pair: a row per (query, doc, 0/1 label)."})
    layout: Literal["rerankforge", "sentence-transformers"] = field(
        default="rerankforge", metadata={
            "help": "rerankforge: ids, texts and first-stage scores in every row (what `rerankforge train` reads "
                    "best). sentence-transformers: the columns sentence_transformers.util.mine_hard_negatives "
                    "writes, ready for its CrossEncoderTrainer (n-tuple: query, positive, negative_1..n, rows short "
                    "of n negatives dropped; triplet: query, positive, negative; labeled-pair: query, positive, "
                    "label). `rerankforge train` reads both."})
    output_scores: bool = field(
        default=False, metadata={
            "help": "sentence-transformers layout: add the first-stage scores as mine_hard_negatives' "
                    "output_scores does (n-tuple, triplet: a `scores` list, positive first; labeled-pair: `score` "
                    "replaces `label`). The rerankforge layout always has them."})


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
    add_command(subparsers, "mine", MINE_HELP, [MineArgs, RetrieverConfig, MiningConfig], run_mine)


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
    add_command(subparsers, "retrieve", RETRIEVE_HELP, [RetrieveArgs, RetrieverConfig], run_retrieve)


def run_mine(args: MineArgs, retriever_config: RetrieverConfig, mining: MiningConfig) -> int:
    from .mined_files import summary_path

    summary = mine_to_file(args, retriever_config, mining)
    print(format_summary(summary))
    dropped = summary["output"].get("examples_dropped_short_of_negatives", 0)
    if dropped:
        print(f"left out {dropped} examples with fewer than {mining.num_negatives} negatives (an n-tuple file has a "
              f"fixed number of negative columns); --format triplet or labeled-pair keeps them")
    print(f"wrote {summary['output']['rows']} rows to {summary['output']['path']} ({args.layout} layout; summary: "
          f"{summary_path(summary['output']['path'])})")
    return 0


def mine_to_file(args: MineArgs, retriever_config: RetrieverConfig, mining: MiningConfig) -> dict:
    """What `mine` does, printing nothing: the file and its summary written; returns the summary."""
    from .mined_files import (check_output_path, rows, sentence_transformers_rows, short_of_negatives, summary_path,
                              write_rows)
    from .retrieval import build_retriever
    from .sources import load_collection
    from .mining import mine_negatives

    output = check_output_path(args.output, args.format)
    collection = load_collection(args.data, split=args.split)
    retriever = build_retriever(collection.corpus, retriever_config)
    result = mine_negatives(collection, retriever, mining)
    dropped = 0
    if args.layout == "sentence-transformers":
        records = sentence_transformers_rows(result.examples, args.format, mining.num_negatives, args.output_scores)
        dropped = short_of_negatives(result.examples, mining.num_negatives) if args.format == "n-tuple" else 0
    else:
        records = rows(result.examples, args.format)
    count = write_rows(output, records)
    result.summary["output"] = {"path": str(output), "format": args.format, "layout": args.layout, "rows": count}
    if args.layout == "sentence-transformers":
        result.summary["output"].update(output_scores=args.output_scores, examples_dropped_short_of_negatives=dropped)
    _write_json(summary_path(output), result.summary)
    return result.summary


def run_retrieve(args: RetrieveArgs, retriever_config: RetrieverConfig) -> int:
    from .outputs import check_output_file
    from .retrieval import build_retriever
    from .runs import write_trec
    from .sources import load_collection

    output = check_output_file(args.output, "--output")
    collection = load_collection(args.data, split=args.split)
    retriever = build_retriever(collection.corpus, retriever_config)
    run = retriever.search(collection.split_queries(), args.k)
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
    _finish(parser, types, run_mine)
    return run_cli(parser, sys.argv[1:] if argv is None else argv)


def add_subcommands(parser: argparse.ArgumentParser):
    """The subparsers object that `add_*_parser` functions register their commands with."""
    parser.formatter_class = ProseHelpFormatter  # it lists the commands' help texts
    return parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=dataclass_parser)


class ProseHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help texts are prose, so a `%` in one is a percent sign. argparse reads every help text as a
    %-format string: an unescaped "~30% slower" made `--help` print a dict instead of the help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "%" in action.help:
            action = copy.copy(action)
            action.help = action.help.replace("%", "%%")
        return super()._get_help_string(action)


def dataclass_parser(dataclass_types=None, **kwargs) -> argparse.ArgumentParser:
    """transformers' HfArgumentParser (options from dataclass fields) with help texts taken as prose.
    Every command line of the project builds its parser here, so every one takes the output options
    (-q, -v, --log_level, --no_progress: see console.py)."""
    from transformers import HfArgumentParser

    from .console import add_output_options

    parser = HfArgumentParser(dataclass_types, formatter_class=ProseHelpFormatter, **kwargs)
    add_output_options(parser)
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Parse, run the chosen command, and turn user errors into one line on stderr + exit code 2 (1 for a failure
    at run time: see `report_errors`)."""

    def run() -> int:
        namespace = parser.parse_args(argv)
        if not hasattr(namespace, "_handler"):
            parser.print_help()
            return 2
        handler, types = namespace._handler
        return handler(*(_dataclass_from(namespace, t) for t in types))

    return report_errors(run, on_interrupt="rerun the same command to continue from the cache", argv=argv)


def report_errors(action: Callable[[], int], on_interrupt: str, argv: list[str] | None = None,
                  timestamps: bool = False) -> int:
    """Run a command with logging and progress bars set up from the output options in `argv` (console.py).
    Exit codes: 0 done; 2 wrong input (a RerankforgeError: `error: ...` on stderr, one line; argparse's usage
    errors are 2 too); 1 valid input but a failure at run time (an OperationError: an upload, an endpoint;
    or a bug: a traceback); 130 Ctrl-C, with a hint on how to continue."""
    from .console import configure_output

    configure_output(argv or [], timestamps=timestamps)
    try:
        return action()
    except RerankforgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"interrupted: {on_interrupt}", file=sys.stderr)
        return 130
    except Exception as error:  # a full disk, whatever the writing library raised (safetensors: its own class)
        if not disk_full(error):
            raise
        filename = getattr(error, "filename", None)
        where = f" writing {filename}" if filename else ""
        print(f"error: no space left on device{where}; free some space and rerun (outputs already written are "
              f"intact; a training run resumes from its last checkpoint)", file=sys.stderr)
        return 1


def add_command(subparsers, name: str, help_text: str, types: list[type], handler: Callable) -> None:
    """Register command `name`, its options made from the fields of the dataclasses `types`."""
    parser = subparsers.add_parser(name, dataclass_types=types, help=help_text, description=help_text)
    _finish(parser, types, handler)


def _finish(parser: argparse.ArgumentParser, types: list[type], handler: Callable) -> None:
    """Let optional fields take `none` on the command line, and remember what to call."""
    accept_none(parser, types)
    parser.set_defaults(_handler=(handler, types))


def accept_none(parser: argparse.ArgumentParser, types: list[type]) -> None:
    """Options of fields typed `X | None` accept `none` (HfArgumentParser only takes X's values)."""
    # From the annotations: HfArgumentParser rewrites the fields' own `type` while building options.
    optional = {name for t in types for name, hint in typing.get_type_hints(t).items()
                if type(None) in typing.get_args(hint)}
    for action in parser._actions:
        if action.dest in optional and action.type not in (None, str) and action.nargs is None:
            action.type = _none_or(action.type)
            action.help = (action.help or "") + " `none` disables it."


def _none_or(convert: Callable) -> Callable:
    def parse(text: str):
        return None if text.lower() in {"none", "null"} else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")  # argparse names it in its errors
    return parse


def _dataclass_from(namespace: argparse.Namespace, dataclass_type: type):
    return dataclass_type(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(dataclass_type)})


def _write_json(path, payload: dict) -> None:
    from .runs import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
