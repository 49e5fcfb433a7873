"""One entry point for every kind of data source the tools accept (`--data` on the command line).

A source is a `datasets.Dataset`, `hf:NAME[:CONFIG]`, a BEIR folder, a pairs file, or the name of
a BEIR dataset. Names are looked up in $RERANKFORGE_DATA, then in the cache, and finally downloaded
from the BEIR mirror into the cache, so `--data scifact` works on a fresh machine (unless offline mode
is on: HF_HUB_OFFLINE, HF_DATASETS_OFFLINE or TRANSFORMERS_OFFLINE). A download is
unpacked in a temp folder and renamed into place, so a killed download never leaves a half dataset
that later runs would take as complete.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from rerankforge.core.cache import cache_root
from rerankforge.core.errors import DataError
from rerankforge.core.offline import offline_mode
from rerankforge.core.progress import progress_bar
from .beir import load_beir
from .collection import Collection
from .pairs import load_pairs_csv, load_pairs_hf, load_pairs_jsonl

logger = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
DOWNLOAD_TIMEOUT_S = 60
ACCEPTED_KINDS = (
    "a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), a pairs file (.jsonl, .json, .jsonl.gz, .csv), "
    "hf:NAME[:CONFIG], or a BEIR dataset name"
)
_NAME = re.compile(r"[A-Za-z0-9._-]+")
_PAIRS_JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz")


def load_collection(source: Any, split: str = "test") -> Collection:
    """Load `source` as a Collection, choosing the loader from what `source` is.

    An existing file or folder wins over a dataset name of the same spelling; a string that looks
    like a path but does not exist is an error rather than a (doomed) download attempt."""
    if not isinstance(source, (str, os.PathLike)):
        return load_pairs_hf(source, split=split)
    text = os.fspath(source)
    if text.startswith("hf:"):
        name, _, config = text.removeprefix("hf:").partition(":")
        if not name:
            raise DataError(f"expected hf:NAME or hf:NAME:CONFIG, got {text!r}")
        return load_pairs_hf(name, split=split, config=config or None)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_beir(path, split)
    if path.is_file():
        return _load_pairs_file(path, split)
    if _looks_like_path(text):
        raise DataError(f"no such file or folder: {text} (expected {ACCEPTED_KINDS})")
    return load_beir(resolve_dataset_dir(text), split)


def resolve_dataset_dir(name: str) -> Path:
    """The folder of BEIR dataset `name`: $RERANKFORGE_DATA/<name> if it holds a corpus, else the
    cached copy, else a fresh download into the cache -- which offline mode refuses, saying where it looked."""
    if not _NAME.fullmatch(name) or name in {".", ".."}:
        raise DataError(
            f"invalid dataset name {name!r}: expected letters, digits, '.', '_' and '-' only "
            "(or pass the path of a folder or file)"
        )
    data_root = os.environ.get("RERANKFORGE_DATA")
    if data_root:
        candidate = Path(data_root).expanduser() / name
        if (candidate / "corpus.jsonl").is_file() or (candidate / "corpus.jsonl.gz").is_file():
            return candidate
    cached = cache_root() / "datasets" / name
    if cached.is_dir():
        return cached
    offline = offline_mode()
    if offline:
        raise DataError(_not_found_message(name, BEIR_URL.format(name=name), data_root,
                                           f"was not tried: offline mode is on ({offline})"))
    return _download(name, cached, data_root)


def _looks_like_path(text: str) -> bool:
    """Path separators, a leading '.' or '~', or a data-file extension: meant as a path, not a name."""
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return (
        any(sep in text for sep in separators)
        or text.startswith((".", "~"))
        or text.lower().endswith((*_PAIRS_JSONL_SUFFIXES, ".csv", ".gz", ".tsv", ".zip"))
    )


def _load_pairs_file(path: Path, split: str) -> Collection:
    name = path.name.lower()
    if name.endswith(_PAIRS_JSONL_SUFFIXES):
        return load_pairs_jsonl(path, split)
    if name.endswith(".csv"):
        return load_pairs_csv(path, split)
    raise DataError(f"{path}: unsupported file type; expected {ACCEPTED_KINDS}")


def _download(name: str, dest: Path, data_root: str | None) -> Path:
    """Download and unpack the BEIR zip of `name` into `dest`, atomically.

    Everything happens in a hidden temp folder beside `dest`, removed on any failure; the final
    `os.replace` either installs the complete dataset or nothing."""
    url = BEIR_URL.format(name=name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{name}.", suffix=".partial"))
    try:
        archive = work / f"{name}.zip"
        try:
            _fetch(url, archive)
        except (OSError, http.client.HTTPException) as e:
            raise DataError(_not_found_message(name, url, data_root, f"failed: {_reason(e)}")) from e
        unpacked = _unpack(archive, name, work, url)
        try:
            os.replace(unpacked, dest)
        except OSError:
            if not dest.is_dir():  # else another process installed it first: use theirs
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _fetch(url: str, target: Path) -> None:
    """Stream `url` to `target`, with a progress bar when the server says the size."""
    logger.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, target.open("wb") as out:
        size = response.headers.get("Content-Length")
        total = int(size) if size and size.isdigit() else None
        with progress_bar(total=total, unit="B", unit_scale=True, desc=target.name, disable=total is None) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def _unpack(archive: Path, name: str, work: Path, url: str) -> Path:
    """Extract the zip in `work`; it must hold a top folder `name/` with a corpus."""
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(work)
    except zipfile.BadZipFile as e:
        raise DataError(f"download from {url} is not a valid zip archive ({e})") from e
    unpacked = work / name
    if not (unpacked / "corpus.jsonl").is_file():
        raise DataError(
            f"archive from {url} lacks {name}/corpus.jsonl; expected a top folder {name}/ with "
            "corpus.jsonl, queries.jsonl and qrels/"
        )
    return unpacked


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _not_found_message(name: str, url: str, data_root: str | None, download: str) -> str:
    data = f"$RERANKFORGE_DATA ({data_root})" if data_root else "$RERANKFORGE_DATA (unset)"
    return (
        f"dataset {name!r} not found: not in {data}, not in the cache folder {cache_root() / 'datasets'}, "
        f"and the download from {url} {download}. To fix: pass a folder in BEIR layout with "
        f"--data PATH, or set RERANKFORGE_DATA to a folder that holds {name}/corpus.jsonl"
    )
