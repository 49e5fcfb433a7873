"""Where a training run reports to: the W&B run's project, entity, group, tags, name and folder.

Each comes from the config key when it is set, else from W&B's own environment variable, else a default --
so a team's `WANDB_PROJECT` / `WANDB_ENTITY` / `WANDB_DIR` settings work as they do with any W&B script,
and a recipe can still pin them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .config import TrainConfig


def wandb_settings(config: TrainConfig, environ: Mapping[str, str] = os.environ) -> dict:
    """init_trackers' project name and wandb.init keyword arguments: config key > environment > default."""
    tags = config.tags if config.tags is not None else _listed(environ.get("WANDB_TAGS", ""))
    return {
        "project": config.project or environ.get("WANDB_PROJECT") or "rerankforge",
        "init_kwargs": {
            "name": config.run_name or environ.get("WANDB_NAME") or Path(config.output_dir).name,
            "entity": config.wandb_entity or environ.get("WANDB_ENTITY") or None,
            "group": config.run_group or environ.get("WANDB_RUN_GROUP") or None,
            "tags": tags or None,
            # wandb writes its run folder under `dir`; by default inside the output folder (push leaves it out).
            "dir": str(Path(config.tracker_dir or environ.get("WANDB_DIR") or config.output_dir)),
        },
    }


def _listed(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]
