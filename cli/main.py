"""The umbrella command line: `rerankforge <command>`.

It sits above the stages, at the top of the import graph, because it gathers the commands of every stage
(nothing imports it; the `rerankforge` entry point runs `main`)."""

from __future__ import annotations

import argparse
import sys

from rerankforge.data_prep.cli import (add_generate_queries_parser, add_mine_parser, add_retrieve_parser,
                                       add_subcommands, run_cli)
from rerankforge.eval.cli import add_eval_parser
from rerankforge.train.cli import add_push_parser, add_train_parser, train_main
from rerankforge.train.calibrate_cli import add_calibrate_parser
from rerankforge.train.export_check import add_export_parser
from rerankforge.train.score_teacher import add_score_teacher_parser

from rerankforge.serve.service import add_index_parser, serve_main

from .demo import add_demo_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerankforge",
        description="Train domain-specific rerankers: mine hard negatives, retrieve, train, evaluate, serve. "
                    "`rerankforge COMMAND --help` documents each command.")
    subparsers = add_subcommands(parser)
    add_demo_parser(subparsers)
    add_retrieve_parser(subparsers)
    add_mine_parser(subparsers)
    add_generate_queries_parser(subparsers)
    add_score_teacher_parser(subparsers)
    add_train_parser(subparsers)
    add_push_parser(subparsers)
    add_eval_parser(subparsers)
    add_export_parser(subparsers)
    add_calibrate_parser(subparsers)
    add_index_parser(subparsers)
    subparsers.add_parser("serve", help="Serve a reranker over HTTP: Cohere- and TEI-compatible rerank, /search and "
                                        "/ask over an index (`rerankforge serve --help` lists every key).")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # its own parser: YAML values become the defaults of the command line
        return train_main(argv[1:])
    if argv[:1] == ["serve"]:  # likewise
        return serve_main(argv[1:])
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
