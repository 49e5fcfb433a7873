"""Content fingerprints of model folders: the keys under which caches keep what a model computed.

A key made of file names, sizes and modification times goes stale when weights are replaced by others of the
same size with the time kept (`cp -p`, `rsync -a`, an archive unpacked): the cache then hands back the old
model's embeddings or scores. So keys hash the bytes. Hashing a file costs a read of it (about 0.1 s for
all-MiniLM-L6-v2's 90 MB); within a process each file is hashed once, remembered under its inode, size and
change time (`st_ctime`, which every write and every copy changes and no tool can set back)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

_known: dict[tuple, str] = {}


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key not in _known:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _known[key] = digest.hexdigest()
    return _known[key]


def files_fingerprint(folder: Path, files: Iterable[Path]) -> str:
    """One digest of `files` (paths inside `folder`): each one's path relative to the folder and its bytes."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\x00" + file_digest(path).encode())
    return digest.hexdigest()


def folder_fingerprint(folder: str | os.PathLike, skip_parts: Iterable[str] = (".cache",)) -> str:
    """The contents of every file under `folder`, but those under a directory named in `skip_parts`."""
    folder, skip = Path(folder), set(skip_parts)
    return files_fingerprint(folder, (p for p in folder.rglob("*") if p.is_file() and not skip & set(p.parts)))
