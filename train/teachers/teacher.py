"""Distillation from a trained reranker: the teacher scores every training group once, before training.

The scores ride inside each group to the batches (groups.Collator), so in a multi-process run every
process gets the scores of exactly the groups accelerate's dataloader hands it. They are cached in the
output folder, keyed by what they depend on -- the teacher's weights, config and tokenizer, the length
pairs are cut to, and every (query, document) pair of the groups, which the training file,
`num_negatives` and `seed` decide -- so a resumed run reuses them, and a changed training file or
teacher is rescored, never silently reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rerankforge.core.errors import ConfigError, ModelNotFoundError
from rerankforge.core.files import atomic_write_text
from rerankforge.data_prep.fingerprints import files_fingerprint
from rerankforge.data_prep.training_files import read_training_rows

from ..config import TrainConfig
from ..groups import Group, split_dev

CACHE_FILE = ".teacher-scores.json"  # a dot file: never uploaded with the reranker (hub.py)
CHUNK = 1024  # pairs per call to the scorer: progress to show, memory bounded


def resolve_teacher(ref: str) -> str:
    """The teacher's folder; a missing one is named as the `teacher` key."""
    from rerankforge.core.models import resolve_model

    try:
        return resolve_model(ref)
    except ModelNotFoundError as error:
        raise ModelNotFoundError(f"teacher: {error}") from None


def check_teacher(config: TrainConfig, teacher_folder: str, dev_ids: list[str]) -> str | None:
    """Before any model loads: the teacher is a single-logit reranker, and none of the student's dev queries
    was one of its training queries (the teacher's layers and scores would carry them into the student, and
    the dev split would flatter it). Returns a note where the teacher's own training file can't be read to
    check that."""
    from transformers import AutoConfig

    labels = AutoConfig.from_pretrained(teacher_folder).num_labels
    if labels != 1:
        raise ConfigError(f"teacher: expected a single-logit reranker (num_labels=1), got a classifier with {labels} "
                          f"labels: {config.teacher}")
    saved = Path(teacher_folder) / "train_config.json"
    if not saved.is_file() or not dev_ids:
        return None  # not trained here (e.g. a Hub cross-encoder): its training queries are not ours to know
    trained = json.loads(saved.read_text())
    teacher_file, held_out, seed = (Path(trained.get("train_file") or ""), trained.get("dev_queries"),
                                    trained.get("seed"))
    if not teacher_file.is_file() or not isinstance(held_out, int) or not isinstance(seed, int):
        return (f"could not check the dev split against the teacher's training queries: {saved} names no "
                f"train_file found from here ({teacher_file}), or no dev_queries and seed")
    rows = read_training_rows(teacher_file)
    teacher_dev = set(split_dev(rows, held_out, seed, trained.get("dev_query_ids"))[1]) if held_out else set()
    seen = sorted(({str(row["query_id"]) for row in rows} - teacher_dev) & set(dev_ids))
    if seen:
        raise ConfigError(
            f"dev_queries/seed: {len(seen)} of the {len(dev_ids)} dev queries were training queries of the teacher "
            f"{config.teacher} (its train_config.json: train_file {teacher_file}, dev_queries {held_out}, "
            f"seed {seed}); the dev split would flatter the student. Expected the teacher's train_file, "
            f"dev_queries and seed")
    return None


def attach_teacher_scores(groups: list[Group], config: TrainConfig, teacher_folder: str, device, precision: str,
                          show_progress: bool = True) -> str:
    """Fill `group.teacher` for every group: from the cache in `config.output_dir` when it was made from the
    same pairs and teacher, else scored now and cached. Every document is scored, filler negatives from
    other queries included, so they count in the loss like mined ones. Returns "cached" or "scored"."""
    pairs = [(g.query, doc) for g in groups for doc in g.docs]
    key = cache_key(teacher_folder, config.max_length, pairs)
    cache = Path(config.output_dir) / CACHE_FILE
    flat = _read_cache(cache, key, len(pairs))
    source = "cached"
    if flat is None:
        flat = score_pairs(pairs, teacher_folder, config, device, precision, show_progress)
        atomic_write_text(cache, json.dumps({"key": key, "teacher": config.teacher, "train_file": config.train_file,
                                             "max_length": config.max_length, "scores": flat}) + "\n")
        source = "scored"
    start = 0
    for g in groups:
        g.teacher = flat[start:start + len(g.docs)]
        start += len(g.docs)
    return source


def score_pairs(pairs: list[tuple[str, str]], teacher_folder: str, config: TrainConfig, device, precision: str,
                show_progress: bool = True) -> list[float]:
    """The teacher's raw scores of `pairs`, each distinct pair scored once, cut to the student's max_length
    (the teacher judges what the student will see)."""
    from rerankforge.core.progress import progress_bar
    from rerankforge.reranker.scoring import Reranker

    teacher = Reranker.load(teacher_folder, max_length=config.max_length, batch_size=config.eval_batch_size,
                            device=str(device), precision=precision)
    distinct = list(dict.fromkeys(pairs))
    scores: dict[tuple[str, str], float] = {}
    with progress_bar(total=len(distinct), desc="teacher scores", unit="pair", disable=not show_progress) as progress:
        for start in range(0, len(distinct), CHUNK):
            chunk = distinct[start:start + CHUNK]
            scores.update(zip(chunk, map(float, teacher.score(chunk))))
            progress.update(len(chunk))
    return [scores[pair] for pair in pairs]


NOT_SCORING = {"README.md", "metrics.json", "train_config.json", "rerankforge.json"}
"""Files of a reranker folder that don't change its raw scores (max_length is keyed on its own)."""


def model_fingerprint(folder: str) -> str:
    """The contents of the files a reranker folder is scored with: its top-level files (config, weights,
    tokenizer, adapter), not the card or metrics, nor subfolders that loading never reads (checkpoints/,
    an ONNX export beside the weights) -- so adding those does not throw the scores away."""
    root = Path(folder)
    return files_fingerprint(root, (p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
                                    and p.name not in NOT_SCORING))


def cache_key(teacher_folder: str, max_length: int, pairs: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    header = {"teacher": model_fingerprint(teacher_folder), "max_length": max_length, "pairs": len(pairs)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for query, doc in pairs:
        for text in (query, doc):
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
    return digest.hexdigest()


def _read_cache(path: Path, key: str, count: int) -> list[float] | None:
    """The cached scores if `path` holds those of `key`; None when missing, stale or unreadable (rescored)."""
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("key") != key:
        return None
    scores = cached.get("scores")
    if not isinstance(scores, list) or len(scores) != count or not all(isinstance(s, float) for s in scores):
        return None
    return scores
