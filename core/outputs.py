"""Where commands write: output paths checked before any work is done.

A command that takes minutes (encoding a corpus, training, reranking) must not find out at the end
that its output path is a folder, sits under a file, or cannot be written: every command checks its
outputs here first, and a bad one costs one line (a `ConfigError`, exit code 2), not a traceback after
all the work."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """`path` can be written as a file: not a folder or other non-file, its folders (made if missing)
    under no file, and writable. `option` names the setting in the error (`--output`, `output_dir`)."""
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{option}: expected a file path, got an empty one")
    if text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
        raise ConfigError(f"{option} {text}: expected a file name, got a folder path")
    file = Path(text).expanduser()
    if file.is_dir():
        raise ConfigError(f"{option} {file}: is a folder; expected a file path")
    if file.exists() and not file.is_file():
        # os.replace over a device or pipe (e.g. /dev/null, as root) would replace the node itself
        raise ConfigError(f"{option} {file}: is not a regular file; expected a file path to (over)write")
    _check_writable_folder(file.parent, option, file)
    return file


def check_output_folder(path: str | os.PathLike, option: str) -> Path:
    """`path` can be used as a folder to write in: an existing folder, or a new one whose nearest
    existing parent is a writable folder (not a file)."""
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{option}: expected a folder path, got an empty one")
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder}: is a file; expected a folder (existing or to be made)")
    _check_writable_folder(folder, option, folder)
    return folder


def _check_writable_folder(folder: Path, option: str, path: Path) -> None:
    """The nearest existing one of `folder` and its parents must be a folder we may write in (the rest
    are made when writing)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, so it cannot hold {path.relative_to(existing)}; "
                          "expected a path under folders only")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: cannot write in {existing} (permission denied)")
