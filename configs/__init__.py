"""The shipped recipes: training and serving YAML configs, and accelerate launcher configs in accelerate/.

They install with the package (`rerankforge.configs`, package data), so `rerankforge demo` finds its
recipe after a regular `pip install` as well as in a checkout."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def recipe(name: str) -> Path:
    """The installed config `name`, e.g. "demo_scifact.yaml" or "accelerate/cpu_2proc.yaml"."""
    return Path(str(files(__name__).joinpath(*name.split("/"))))
