"""Files written whole or not at all: written under a temporary name in the same folder, then renamed."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import writing


def readable_by_all(path: str | os.PathLike) -> None:
    """Give a file the permissions a plain `open(..., "w")` would (temp files start private: 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", temp_name: str | None = None) -> Iterator[Path]:
    """A temporary path beside `path` for the block to write; when the block ends without error it becomes
    `path` (with a plain file's permissions), else it is removed: `path` is never half-written, and a full disk
    is reported as one (`writing`). `suffix` is the temporary name's ending (some writers choose the format by
    it); `temp_name` fixes the name instead, for writers that rerun after a kill and should overwrite their own
    leftover rather than leave one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if temp_name is None:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = path.parent / temp_name
    try:
        with writing(path):
            yield tmp
        readable_by_all(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file whole or not at all (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
