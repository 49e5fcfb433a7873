"""Errors raised on bad user input. CLIs print them as one clear line and exit non-zero."""

from __future__ import annotations


class RerankforgeError(Exception):
    """Base class: a problem the user can fix (bad file, bad option, missing model)."""


class DataError(RerankforgeError):
    """Input data is malformed or inconsistent. The message names the file (and line) or field,
    what was expected and what was found."""


class ModelNotFoundError(RerankforgeError):
    """A model argument is neither a local folder nor a Hub id that can be loaded here."""


class ConfigError(RerankforgeError):
    """An option or config key has an invalid value."""


def located(path: object, line: int | None = None) -> str:
    """'path:line' (or just 'path') for error messages."""
    return f"{path}:{line}" if line is not None else str(path)


def preview(items: list, limit: int = 5) -> str:
    """The first few items of a list for an error message, with a count of the rest."""
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
