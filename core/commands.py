"""The command-line framework every command uses: typed dataclasses become options (transformers'
HfArgumentParser, so every option is documented once, where it is defined; `--num-negatives` and
`--num_negatives` both work), help texts are prose, and user errors become one line and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import os
import sys
import typing
from typing import Callable

from .errors import ConfigError, RerankforgeError, disk_full
from .processes import launched_count, sharing


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
        handler, types, shares_work = namespace._handler
        values = [_dataclass_from(namespace, t) for t in types]
        if launched_count() == 1:
            return handler(*values)
        if not shares_work:
            raise ConfigError(f"{parser.prog}: runs in one process, and a launcher started {launched_count()}; "
                              f"expected it without `accelerate launch` / torchrun (mine, retrieve, index, eval, "
                              f"score-teacher, calibrate and train share the work of several)")
        with sharing() as team:  # joined before any model loads, so each process gets its own GPU
            if team.is_main:
                return handler(*values)
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # the first process speaks
                return handler(*values)

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


def add_command(subparsers, name: str, help_text: str, types: list[type], handler: Callable,
                shares_work: bool = False) -> None:
    """Register command `name`, its options made from the fields of the dataclasses `types`. `shares_work`: under
    a launcher every process runs it, sharing its loops (core/processes.py); else a launcher is refused."""
    parser = subparsers.add_parser(name, dataclass_types=types, help=help_text, description=help_text)
    finish_parser(parser, types, handler, shares_work)


def finish_parser(parser: argparse.ArgumentParser, types: list[type], handler: Callable,
                  shares_work: bool = False) -> None:
    """Let optional fields take `none` on the command line, and remember what to call."""
    accept_none(parser, types)
    parser.set_defaults(_handler=(handler, types, shares_work))


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
