"""The dev split a finished reranker is judged on after training (`rerankforge export` checks its exports
on it, `rerankforge calibrate` fits its calibration on it): a model trained by rerankforge uses its own, the
train queries its train_config.json held out (`dev_queries`, drawn with its `seed` from its `train_file`),
reranking their first-stage top-`dev_depth` (its `first_stage`), exactly as training evaluated it. Other models name a
collection with --data/--split, and --dev_queries of its judged queries are drawn."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from rerankforge.core.errors import ConfigError, DataError

from ..config import TrainConfig

TRAIN_CONFIG = "train_config.json"


@dataclass
class DevSplitArgs:
    """Which dev split: the model's own (default), or drawn from --data/--split."""

    data: str | None = field(default=None, metadata={
        "help": "Use this collection instead of the model's own dev split (models without train_config.json)."})
    split: str = field(default="train", metadata={"help": "Qrels split of --data to draw the dev queries from."})
    dev_queries: int | None = field(default=None, metadata={
        "help": "Queries drawn from --data/--split (default 100); with the model's own dev split, its own count."})
    first_stage: Literal["hybrid", "dense", "bm25"] = field(default="hybrid", metadata={
        "help": "First stage of --data's dev queries (a model's own split uses its own): its top-k are the "
                "candidates, its dense/BM25 scores the signals the served ranking combines."})
    first_stage_model: str = field(default="sentence-transformers/all-MiniLM-L6-v2", metadata={
        "help": "Bi-encoder that retrieves the candidates of --data's queries (a model's own split uses its own)."})
    depth: int | None = field(default=None, metadata={
        "help": "First-stage candidates per dev query (default: the model's dev_depth, else 50)."})
    train_file: str | None = field(default=None, metadata={
        "help": "The mined file the model was trained on, where train_config.json's `train_file` path no longer "
                "resolves (the dev queries are drawn from it)."})
    seed: int = field(default=0, metadata={"help": "Draws the queries of --data (a model's own split uses its seed)."})


def dev_split(folder: Path, args: DevSplitArgs) -> tuple[TrainConfig, list[str], str]:
    """(the settings DevSet.build reads, the dev query ids, where they come from): the model's own dev split
    from its train_config.json, or --dev_queries judged queries of --data/--split."""
    if args.data is not None:
        return _drawn_split(args)
    saved = next((f / TRAIN_CONFIG for f in (folder, folder.parent) if (f / TRAIN_CONFIG).is_file()), None)
    if saved is None:
        raise ConfigError(f"{folder}: no {TRAIN_CONFIG} (not trained by rerankforge), so no dev split of its own; "
                          f"expected --data (and --split, --dev_queries) to use instead")
    from rerankforge.data_prep.training_files import read_training_rows

    from ..groups import split_dev

    values = json.loads(saved.read_text())
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in values.items() if k in known})
    if config.dev_queries <= 0:
        raise ConfigError(f"{saved}: dev_queries is 0 (trained without a dev split); expected --data (and --split, "
                          f"--dev_queries) to use instead")
    train_file = Path(args.train_file) if args.train_file else _find_train_file(saved, values)
    _, query_ids = split_dev(read_training_rows(train_file), config.dev_queries, config.seed, config.dev_query_ids)
    if args.depth is not None:
        config.dev_depth = args.depth
    return config, query_ids, f"{config.data}/{config.split} held out from {train_file} (its dev split)"


def _drawn_split(args: DevSplitArgs) -> tuple[TrainConfig, list[str], str]:
    from rerankforge.data_prep.sources import load_collection

    count = args.dev_queries or 100
    judged = sorted(load_collection(args.data, split=args.split).judged_query_ids())
    if count > len(judged):
        raise DataError(f"--dev_queries: {count} asked for, {args.data}/{args.split} has {len(judged)} judged queries")
    query_ids = sorted(random.Random(args.seed).sample(judged, count))
    config = TrainConfig(data=args.data, split=args.split, dev_depth=args.depth or 50,
                         first_stage=args.first_stage, first_stage_model=args.first_stage_model)
    return config, query_ids, f"{args.data}/{args.split} (seed {args.seed})"


def _find_train_file(saved: Path, values: dict) -> Path:
    """train_config.json's `train_file`, as given (absolute, or relative to here), else relative to the folder
    training ran in: the one `output_dir` was relative to."""
    given = Path(values.get("train_file", ""))
    tried = [given]
    output_dir = Path(values.get("output_dir", ""))
    if not given.is_absolute() and not output_dir.is_absolute() and output_dir.parts:
        run_folder = saved.parent.resolve()
        for _ in output_dir.parts:
            run_folder = run_folder.parent
        tried.append(run_folder / given)
    if str(given).startswith("hf:"):
        return given
    for path in tried:
        if path.exists():  # a file, or a `datasets` folder
            return path
    raise DataError(f"{saved}: train_file {given} not found (tried {', '.join(map(str, tried))}); the dev queries are "
                    f"drawn from it: give --train_file, or check on another collection with --data")
