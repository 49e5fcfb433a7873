"""What `rerankforge export` measured of each scoring path it checked, and `auto`'s choice from it.

A path is a backend at a precision: torch in fp32, torch in bf16 where the CPU has it natively, the fused ONNX
fp32 file, the int8 file made for this CPU's instruction set. `rerankforge export` judges each against torch fp32
on the dev split (cli/export.py: Spearman, and the 95% bound of the nDCG@10 loss) and times it there; what it
found is kept in `onnx/checked_paths.json`, per kind of CPU (torch's capability and the int8 format), one
entry per path, with the fingerprint of the weights it was measured on:

    {"AVX512_BF16, int8 avx512_vnni": {
        "onnx-int8": {"passed": true, "pairs_per_s": 149.8, "file": "onnx/model_qint8_avx512_vnni.onnx",
                      "fingerprint": "...", "figures": {...}},
        "torch@bf16": {...}, "torch@fp32": {...}, "onnx": {...}},
     "AVX2, int8 avx2": {...}}

`backend="auto"` (eval's and serve's default) scores with the fastest path that passed on a CPU of this kind, from
weights that are still the folder's; where nothing was measured here (no export yet, a folder exported on another
kind of CPU, weights trained since) it is torch at precision `auto`, as before exports existed."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rerankforge.core.hardware import cpu_capability

from .backends import ONNX_DIR, int8_format, weights_fingerprint

logger = logging.getLogger(__name__)

CHECKED_PATHS = "checked_paths.json"


@dataclass(frozen=True)
class Choice:
    """A path to score with: the backend, the torch precision where it is torch, and why it was chosen."""

    backend: str
    precision: str
    reason: str


def path_key(backend: str, precision: str = "fp32") -> str:
    """The entry's name: `torch@bf16`, `torch@fp32`, `onnx`, `onnx-int8`."""
    return f"torch@{precision}" if backend == "torch" else backend


def this_cpu() -> str:
    """The kind of CPU an entry applies to: torch's CPU capability (RERANKFORGE_CPU_CAPABILITY honoured) and the
    int8 format (VNNI or not), e.g. `AVX512_BF16, int8 avx512_vnni`."""
    return f"{cpu_capability()}, int8 {int8_format()}"


def read_checked_paths(folder: str | os.PathLike) -> dict[str, dict[str, dict]]:
    """The folder's entries, CPU kind -> path -> entry; {} where none were written. An unreadable file is ignored
    with a warning: it only speeds scoring up, and torch still scores right without it."""
    path = Path(folder) / ONNX_DIR / CHECKED_PATHS
    if not path.is_file():
        return {}
    try:
        kinds = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(kinds, dict) or not all(isinstance(paths, dict) and all(isinstance(e, dict) for e in
                                                                                  paths.values())
                                                  for paths in kinds.values()):
            raise ValueError("expected an object of CPU kinds, each an object of path entries")
        return kinds
    except (ValueError, UnicodeDecodeError) as error:
        logger.warning(f"{path}: not readable ({error}); backend auto scores with torch (re-export to rewrite it)")
        return {}


def record_checked_path(folder: str | os.PathLike, key: str, entry: dict) -> None:
    """Add (or replace) this CPU kind's entry `key`, written atomically beside the exported files."""
    from rerankforge.core.files import atomic_write_text

    kinds = read_checked_paths(folder)
    kinds.setdefault(this_cpu(), {})[key] = {**entry, "fingerprint": weights_fingerprint(folder)}
    target = Path(folder) / ONNX_DIR / CHECKED_PATHS
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(kinds, indent=2, sort_keys=True) + "\n")


def choose_path(folder: str | os.PathLike, precision: str = "auto") -> Choice:
    """`auto`'s path for the reranker in `folder`: the fastest entry that passed, measured on this kind of CPU,
    from the folder's current weights, whose file is still there; else torch at `precision`. An explicit
    `precision` (not auto) keeps torch at it unless an exported path was measured faster than it."""
    kinds, here, fingerprint = read_checked_paths(folder), this_cpu(), weights_fingerprint(folder)
    usable = {}
    for key, entry in kinds.get(here, {}).items():
        if not entry.get("passed") or not isinstance(entry.get("pairs_per_s"), (int, float)):
            continue
        if entry.get("fingerprint") != fingerprint:
            continue  # measured on weights trained since
        if not key.startswith("torch@") and not (Path(folder) / str(entry.get("file"))).is_file():
            continue
        usable[key] = entry
    if precision != "auto":  # the user's torch precision stands in for every torch entry
        usable = {k: e for k, e in usable.items() if not k.startswith("torch@") or k == path_key("torch", precision)}
    if not usable:
        reason = (f"no path checked on this kind of CPU ({here}; run `rerankforge export` here to check the "
                  f"faster ones)" if here not in kinds else f"no path checked on this kind of CPU ({here}) applies to "
                                                            f"these weights")
        return Choice("torch", precision, reason)
    speed = {k: relative_speed(e, kinds[here]) for k, e in usable.items()}
    key = max(usable, key=speed.get)
    best = usable[key]
    backend, chosen_precision = ("torch", best.get("precision", "fp32")) if key.startswith("torch@") else (key, precision)
    others = ", ".join(f"{k} {speed[k]:.2f}x" for k in sorted(usable, key=lambda k: -speed[k]))
    return Choice(backend, chosen_precision, f"the fastest path checked faithful on this kind of CPU ({here}), speed "
                                             f"against torch fp32 when checked: {others}")


def relative_speed(entry: dict, paths: dict[str, dict]) -> float:
    """An entry's pairs/s over torch fp32's in the same export run (its `speedup`): exports run at different
    times on a machine whose load changes, so their ratios compare where their raw rates may not. An entry
    without one (written before entries carried it) is divided by the last torch fp32 rate."""
    if isinstance(entry.get("speedup"), (int, float)):
        return float(entry["speedup"])
    reference = paths.get("torch@fp32", {}).get("pairs_per_s")
    return entry["pairs_per_s"] / reference if isinstance(reference, (int, float)) and reference > 0 else entry["pairs_per_s"]
