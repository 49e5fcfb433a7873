"""The umbrella command line: `rerankforge <command>`.

It sits above the stages, at the top of the import graph, because it gathers the commands of every stage
(nothing imports it; the `rerankforge` entry point and `python -m rerankforge` run `main`).

Conventions every command follows: the result on stdout, log messages and progress bars on stderr (-q, -v,
--log_level, --no_progress: data_prep/console.py); exit code 0 on success, 2 for wrong input (a bad option,
file or model: the one-line error says what was expected and what was got), 1 for a failure at run time (an
upload, an endpoint; or a bug, with a traceback), 130 on Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from rerankforge.core.commands import add_subcommands, run_cli
from rerankforge.core.console import add_output_options, output_options
from rerankforge.data_prep.cli import add_generate_queries_parser, add_mine_parser, add_retrieve_parser
from rerankforge.eval.cli import add_eval_parser
from rerankforge.cli.calibrate import add_calibrate_parser
from rerankforge.training.cli import add_push_parser, add_train_parser, train_main
from rerankforge.cli.export import add_export_parser
from rerankforge.training.teachers.score_teacher import add_score_teacher_parser
from rerankforge.training.warm_start import add_warm_start_parser

from rerankforge.serve.service import add_index_parser, serve_main
from rerankforge.inspector.command import add_inspect_parser

from .demo import add_demo_parser
from .env import add_env_parser, rerankforge_version


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerankforge",
        description="Train domain-specific rerankers: mine hard negatives, retrieve, train, evaluate, serve. "
                    "`rerankforge COMMAND --help` documents each command.")
    parser.add_argument("--version", action="version", version=f"rerankforge {rerankforge_version()}")
    add_output_options(parser)
    subparsers = add_subcommands(parser)
    add_demo_parser(subparsers)
    add_retrieve_parser(subparsers)
    add_mine_parser(subparsers)
    add_generate_queries_parser(subparsers)
    add_score_teacher_parser(subparsers)
    add_warm_start_parser(subparsers)
    add_train_parser(subparsers)
    add_push_parser(subparsers)
    add_eval_parser(subparsers)
    add_export_parser(subparsers)
    add_calibrate_parser(subparsers)
    add_index_parser(subparsers)
    subparsers.add_parser("serve", help="Serve a reranker over HTTP: Cohere- and TEI-compatible rerank, /search and "
                                        "/ask over an index (`rerankforge serve --help` lists every key).")
    add_inspect_parser(subparsers)
    add_env_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `rerankforge ARGV...` (default: the command line); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _, others = output_options(argv)  # `rerankforge -q train ...`: the command follows the output options
    command = others[0] if others else None
    if command in ("train", "serve"):  # their own parsers: YAML values become the defaults of the command line
        at = argv.index(command)
        return (train_main if command == "train" else serve_main)(argv[:at] + argv[at + 1:])
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
