"""Shared fixtures: the real test collections (by path, never copied) and small slices of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _datasets_root() -> Path:
    """$RERANKFORGE_DATA, else ../shared/datasets beside the repo."""
    root = Path(os.environ.get("RERANKFORGE_DATA") or REPO.parent / "shared" / "datasets")
    if not (root / "scifact" / "corpus.jsonl").is_file():
        pytest.fail(
            f"test collections not found under {root}: set RERANKFORGE_DATA to a folder holding scifact/ "
            "(BEIR layout), e.g. the one `rerankforge` downloads into ~/.cache/rerankforge/datasets"
        )
    return root


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    return _datasets_root()


@pytest.fixture(scope="session")
def scifact_dir(datasets_root: Path) -> Path:
    return datasets_root / "scifact"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own rerankforge cache, so tests never read a user's cache."""
    monkeypatch.setenv("RERANKFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "rf-cache"))
