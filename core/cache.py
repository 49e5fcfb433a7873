"""Where rerankforge keeps downloaded datasets and computed embeddings."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$RERANKFORGE_CACHE, else ~/.cache/rerankforge (XDG_CACHE_HOME respected)."""
    if os.environ.get("RERANKFORGE_CACHE"):
        return Path(os.environ["RERANKFORGE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rerankforge"
