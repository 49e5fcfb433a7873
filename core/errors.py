"""Errors a user can act on. CLIs print them as one clear line and exit non-zero: 2 where the input is wrong
(a bad file, option or model: fix it and rerun), 1 where valid input met a failure at run time (an upload or an
endpoint that failed: retry later). Anything else is a bug: a traceback, exit code 1."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


class RerankforgeError(Exception):
    """Base class: a problem the user can fix (bad file, bad option, missing model)."""

    exit_code = 2  # of the command that stops on it


class DataError(RerankforgeError):
    """Input data is malformed or inconsistent. The message names the file (and line) or field,
    what was expected and what was found."""


class ModelNotFoundError(RerankforgeError):
    """A model argument is neither a local folder nor a Hub id that can be loaded here."""


class ConfigError(RerankforgeError):
    """An option or config key has an invalid value."""


class OperationError(RerankforgeError):
    """The input was valid, but the work could not be done: a Hub upload, an LLM endpoint that failed or answered
    nonsense. The message says what failed and what to do (retry, check the network or token)."""

    exit_code = 1


DISK_FULL_ERRNOS = frozenset({28, 122})  # ENOSPC, EDQUOT (a quota) on Linux; macOS's ENOSPC is 28 too
TORCH_WRITE_FAILURES = ("file write failed", "PytorchStreamWriter failed", "enforce fail at inline_container")
"""What torch says where a write ran out of space: its C++ writer loses the errno."""
ERRNO_LESS_WRITE_FAILURES = (*TORCH_WRITE_FAILURES,
                             "requested and",  # numpy's short write: "OSError: 9664 requested and 992 written"
                             "ret == (size)", "ret == (n)", "fwrite")  # faiss' FileIOWriter
"""What libraries that lose the errno say where a write failed; a full disk where the folder has no room left."""
NO_SPACE_MESSAGES = ("No space left on device", "os error 28", "os error 122")
"""A full disk in the message of an error that is not an OSError (safetensors' SafetensorError, faiss' wrapping)."""


def disk_full(error: BaseException, folder: object = None) -> bool:
    """True when `error` is a write that ran out of disk space (or quota): an OSError with ENOSPC/EDQUOT, or
    any error whose message says so, or a write that lost its errno (torch, numpy, faiss) where `folder`'s file
    system has (almost) no room left."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return True
    if any(s in str(error) for s in NO_SPACE_MESSAGES):
        return True
    if any(s in str(error) for s in ERRNO_LESS_WRITE_FAILURES) and folder:
        import shutil

        try:
            return shutil.disk_usage(folder).free < 64 << 20
        except OSError:
            return False
    return False


@contextmanager
def writing(path: object):
    """Around a write by a library that may lose the errno (numpy, faiss, torch, safetensors): where it failed
    because `path`'s disk is full, `disk_full_error(path)` instead, which the CLIs report in one line."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 -- whatever the library raises; re-raised unless the disk is full
        if disk_full(error, Path(path).parent):
            raise disk_full_error(path) from None
        raise


def disk_full_error(where: object) -> OSError:
    """The one error a full disk raises, whatever failed first: `[Errno 28] No space left on device: WHERE`."""
    import errno

    return OSError(errno.ENOSPC, "No space left on device", str(where))


def located(path: object, line: int | None = None) -> str:
    """'path:line' (or just 'path') for error messages."""
    return f"{path}:{line}" if line is not None else str(path)


def preview(items: list, limit: int = 5) -> str:
    """The first few items of a list for an error message, with a count of the rest."""
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
