"""What a command shows besides its result, and the options every command takes for it.

stdout carries a command's result (tables, summaries, what it wrote); everything else goes to stderr: log
messages from `logging.getLogger(__name__)` in the library (what is happening, notes, warnings) and progress
bars. The library never configures logging; the command lines do, here, from options that every command
accepts, before or after its name (`rerankforge -q eval ...` or `rerankforge eval ... -q`):

    -q / --quiet        warnings and errors only (-qq: errors only)
    -v / --verbose      debug messages too
    --log_level LEVEL   debug, info (the default), warning or error; wins over -q/-v
    --no_progress       no progress bars (ours, bm25s', Hugging Face's)
"""

from __future__ import annotations

import argparse
import logging
import sys

from .progress import set_progress

PACKAGE_LOGGER = "rerankforge"  # every module's logger is a child: rerankforge.data_prep.sources, ...
LOG_LEVELS = ("debug", "info", "warning", "error")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """The options of `configure_output`, listed in `parser`'s help (and accepted by it). Defaults are
    SUPPRESS: nothing lands in a command's namespace unless given (`output_options` reads them)."""
    group = parser.add_argument_group("output (every command)")
    group.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS,
                       help="Less on stderr: warnings and errors only (-qq: errors only). The result still goes to "
                            "stdout.")
    group.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="Debug messages too.")
    group.add_argument("--log_level", "--log-level", choices=LOG_LEVELS, type=str.lower, default=argparse.SUPPRESS,
                       metavar="LEVEL", help=f"Level of rerankforge's log messages on stderr: {', '.join(LOG_LEVELS)} "
                                         "(default info); wins over -q/-v.")
    group.add_argument("--no_progress", "--no-progress", action="store_true", default=argparse.SUPPRESS,
                       help="No progress bars (rerankforge's, bm25s', Hugging Face's): for logs and CI.")


def output_options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The output options found anywhere in `argv`, and the other arguments in their order."""
    parser = argparse.ArgumentParser(prog="rerankforge", add_help=False, allow_abbrev=False, exit_on_error=False)
    add_output_options(parser)
    parser.set_defaults(quiet=0, verbose=0, log_level=None, no_progress=False)
    try:
        return parser.parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. --log_level loud: the command's own parser says so, with its usage
        return parser.parse_known_args([])[0], list(argv)


def configure_output(argv: list[str], timestamps: bool = False) -> None:
    """Set up logging and progress bars for a command from the output options in its `argv`. `timestamps`:
    prefix log lines with time, level and logger (a long-running server)."""
    from .processes import launched_rank

    options, _ = output_options(argv)
    main = launched_rank() == 0  # under a launcher the first process speaks; the others only warn
    configure_logging(log_level(options) if main else max(log_level(options), logging.WARNING), timestamps=timestamps)
    set_progress(main and not options.no_progress)


def log_level(options: argparse.Namespace) -> int:
    if options.log_level:
        return getattr(logging, options.log_level.upper())
    if options.verbose > options.quiet:
        return logging.DEBUG
    return {0: logging.INFO, 1: logging.WARNING}.get(options.quiet, logging.ERROR)


def configure_logging(level: int = logging.INFO, timestamps: bool = False) -> None:
    """rerankforge's messages at `level` and up, other libraries' warnings and up, on stderr. Called again (a
    second command in one process, a test), it replaces what it set up before."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ConsoleHandler)]:
        root.removeHandler(handler)
    handler = ConsoleHandler(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s") if timestamps
                         else ConsoleFormatter())
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))  # other libraries: their warnings (-qq: errors only)
    logging.getLogger(PACKAGE_LOGGER).setLevel(level)


class ConsoleHandler(logging.StreamHandler):
    """A StreamHandler writing to whatever sys.stderr is when a message comes (a test's captured stderr, a
    notebook's), not to the one there was when the handler was made. It shows rerankforge's messages from
    `level` up and other libraries' from warnings up (or `level`, if higher), whatever level a library gave its
    own logger (bm25s sets DEBUG on import)."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__()
        self.ours = level

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == PACKAGE_LOGGER or record.name.startswith(PACKAGE_LOGGER + ".")
        return record.levelno >= (self.ours if ours else max(self.ours, logging.WARNING)) and super().filter(record)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ and setStream assign it; sys.stderr it stays
        pass


class ConsoleFormatter(logging.Formatter):
    """Info as the bare message (it reads like the output it is); other levels prefixed: `warning: ...`."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno == logging.INFO:
            return message
        return f"{record.levelname.lower()}: {message}"
