"""`rerankforge export`: an exported backend (ONNX fp32 or int8) kept only if it ranks like torch on the
reranker's dev split.

The mechanics -- export, fuse, quantise, stage, keep -- are reranker/export.py's; this module holds the
check, which needs the dev split and its metrics. A model trained by rerankforge is checked on its own
dev split: the train queries its train_config.json held out (`dev_queries`, drawn with its `seed` from
its `train_file`), reranking their dense first-stage top-`dev_depth`, exactly as training evaluated it.
Other models name a collection with --data/--split, and --dev_queries of its judged queries are drawn.

A candidate passes when the Spearman correlation of its scores with torch's over all the dev pairs
pooled is at least --min_spearman (0.99), and its dev nDCG@10 is within --max_ndcg_loss (0.005) of
torch's. Refused: exit code 2 with the figures, nothing written to onnx/."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np

from rerankforge.data_prep.cli import add_command
from rerankforge.data_prep.errors import ConfigError, DataError
from rerankforge.data_prep.hardware import use_cpu_threads
from rerankforge.reranker.scoring import Reranker
from rerankforge.reranker.backends import require_onnx
from rerankforge.reranker.export import Verdict, export_backend, spearman

from .config import TrainConfig
from .dev_eval import DevSet

EXPORT_HELP = ("Export a reranker folder for fast CPU scoring: --backend onnx (ONNX Runtime, fused fp32 graph: "
               "onnx/model.onnx) or onnx-int8 (int8 for this CPU: onnx/model_qint8_<format>.onnx), in "
               "sentence-transformers' layout. Kept only if it ranks the dev split like torch; refused (exit 2) "
               "with the figures otherwise.")
TRAIN_CONFIG = "train_config.json"


@dataclass
class ExportArgs:
    model: str = field(metadata={"help": "The reranker folder (written by `rerankforge train`, or a CrossEncoder "
                                         "folder); the export goes into its onnx/ subfolder."})
    backend: Literal["onnx", "onnx-int8"] = field(default="onnx", metadata={
        "help": "onnx: fp32 with fused attention/LayerNorm/GELU; onnx-int8: dynamically quantised int8 weights."})
    int8_format: Literal["auto", "avx2", "avx512", "avx512_vnni", "arm64"] = field(default="auto", metadata={
        "help": "Which CPU the int8 file is made for (it names the file); auto: this one."})
    optimize: bool = field(default=True, metadata={
        "help": "Fuse attention, LayerNorm and GELU with onnxruntime's transformer optimizer (BERT-like models)."})
    data: str | None = field(default=None, metadata={
        "help": "Check on this collection instead of the model's own dev split (models without train_config.json)."})
    split: str = field(default="train", metadata={"help": "Qrels split of --data to draw the dev queries from."})
    dev_queries: int | None = field(default=None, metadata={
        "help": "Queries drawn from --data/--split (default 100); with the model's own dev split, its own count."})
    first_stage_model: str = field(default="sentence-transformers/all-MiniLM-L6-v2", metadata={
        "help": "Bi-encoder that retrieves the candidates of --data's queries (a model's own split uses its own)."})
    depth: int | None = field(default=None, metadata={
        "help": "First-stage candidates per dev query (default: the model's dev_depth, else 50)."})
    train_file: str | None = field(default=None, metadata={
        "help": "The mined file the model was trained on, where train_config.json's `train_file` path no longer "
                "resolves (the dev queries are drawn from it)."})
    seed: int = field(default=0, metadata={"help": "Draws the queries of --data (a model's own split uses its seed)."})
    min_spearman: float = field(default=0.99, metadata={
        "help": "Least Spearman correlation with torch's scores over the dev pairs pooled."})
    max_ndcg_loss: float = field(default=0.005, metadata={
        "help": "Most the dev nDCG@10 may differ from torch's (either way)."})
    batch_size: int = field(default=64, metadata={"help": "Most pairs per forward pass while checking."})


def add_export_parser(subparsers) -> None:
    add_command(subparsers, "export", EXPORT_HELP, [ExportArgs], run_export)


def run_export(args: ExportArgs) -> int:
    require_onnx()
    folder = _check_folder(args.model)
    config, query_ids, where = dev_split(folder, args)  # everything the check reads is found before a model loads
    print(f"using {use_cpu_threads()}")
    torch_reranker = Reranker.load(str(folder), batch_size=args.batch_size, precision="fp32")
    print(f"dev split: {len(query_ids)} queries of {where}, dense top-{config.dev_depth}")
    dev = DevSet.build(config, query_ids)
    check = DevCheck(dev, torch_reranker, args.min_spearman, args.max_ndcg_loss)
    print(f"torch fp32: dev nDCG@10 {check.torch_ndcg:.4f} over {check.pairs} pairs ({check.torch_rate:.1f} pairs/s)")
    kept = export_backend(folder, args.backend, torch_reranker.model, torch_reranker.tokenizer, check,
                          fmt=args.int8_format, optimize=args.optimize,
                          on_candidate=lambda name, verdict: print(f"{name}: {verdict.summary}"))
    print(f"kept {kept.path} ({kept.candidate}); load it with Reranker.load(..., backend={args.backend!r}) or "
          f"CrossEncoder(folder, backend='onnx'"
          + (f", model_kwargs={{'file_name': '{kept.path.parent.name}/{kept.path.name}'}})" if args.backend != "onnx"
             else ")"))
    return 0


class DevCheck:
    """The judge of reranker/export.py: a candidate backend against torch on the dev split."""

    def __init__(self, dev: DevSet, reranker: Reranker, min_spearman: float, max_ndcg_loss: float):
        self.dev, self.reranker = dev, reranker
        self.min_spearman, self.max_ndcg_loss = min_spearman, max_ndcg_loss
        self.torch_scores, self.torch_rate = self._score(reranker)
        self.torch_ndcg = dev.evaluate(self.torch_scores)["nDCG@10"]
        self.pairs = sum(len(s) for s in self.torch_scores.values())

    def __call__(self, backend) -> Verdict:
        reranker = self.reranker
        candidate = Reranker(None, reranker.tokenizer, reranker.max_length, reranker.batch_size,
                             max_batch_tokens=reranker.max_batch_tokens, backend=backend)
        scores, rate = self._score(candidate)
        ours, theirs = self._pooled(self.torch_scores), self._pooled(scores)
        rho = spearman(ours, theirs)
        per_query = float(np.mean([spearman(np.array(list(self.torch_scores[q].values())),
                                            np.array([scores[q][d] for d in self.torch_scores[q]]))
                                   for q in self.torch_scores if len(self.torch_scores[q]) > 1]))
        ndcg = self.dev.evaluate(scores)["nDCG@10"]
        figures = {"spearman": rho, "spearman_per_query": per_query, "max_abs_diff": float(np.abs(ours - theirs).max()),
                   "ndcg@10": ndcg, "ndcg@10_diff": ndcg - self.torch_ndcg, "pairs_per_s": rate,
                   "speedup": rate / self.torch_rate}
        passed = rho >= self.min_spearman and abs(ndcg - self.torch_ndcg) <= self.max_ndcg_loss
        summary = (f"{'passed' if passed else 'failed'}: Spearman {rho:.4f} (need >= {self.min_spearman}; per query "
                   f"{per_query:.4f}), dev nDCG@10 {ndcg:.4f} vs torch {self.torch_ndcg:.4f} (diff {ndcg - self.torch_ndcg:+.4f}, "
                   f"allowed +-{self.max_ndcg_loss}), max |score diff| {figures['max_abs_diff']:.2e}, {rate:.1f} pairs/s "
                   f"({figures['speedup']:.2f}x torch on this machine now)")
        return Verdict(passed, figures, summary)

    def _score(self, reranker: Reranker) -> tuple[dict[str, dict[str, float]], float]:
        started = time.perf_counter()
        scores = self.dev.score(reranker)
        seconds = time.perf_counter() - started
        return scores, sum(len(s) for s in scores.values()) / max(seconds, 1e-9)

    def _pooled(self, scores: dict[str, dict[str, float]]) -> np.ndarray:
        return np.array([scores[q][d] for q in self.torch_scores for d in self.torch_scores[q]], dtype=np.float64)


def dev_split(folder: Path, args: ExportArgs) -> tuple[TrainConfig, list[str], str]:
    """(the settings DevSet.build reads, the dev query ids, where they come from): the model's own dev split
    from its train_config.json, or --dev_queries judged queries of --data/--split."""
    if args.data is not None:
        return _drawn_split(args)
    saved = next((f / TRAIN_CONFIG for f in (folder, folder.parent) if (f / TRAIN_CONFIG).is_file()), None)
    if saved is None:
        raise ConfigError(f"{folder}: no {TRAIN_CONFIG} (not trained by rerankforge), so no dev split of its own; "
                          f"expected --data (and --split, --dev_queries) to check the export on")
    from .groups import read_mined, split_dev

    values = json.loads(saved.read_text())
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in values.items() if k in known})
    if config.dev_queries <= 0:
        raise ConfigError(f"{saved}: dev_queries is 0 (trained without a dev split); expected --data (and --split, "
                          f"--dev_queries) to check the export on")
    train_file = Path(args.train_file) if args.train_file else _find_train_file(saved, values)
    _, query_ids = split_dev(read_mined(train_file), config.dev_queries, config.seed)
    if args.depth is not None:
        config.dev_depth = args.depth
    return config, query_ids, f"{config.data}/{config.split} held out from {train_file} (its dev split)"


def _drawn_split(args: ExportArgs) -> tuple[TrainConfig, list[str], str]:
    from rerankforge.data_prep.sources import load_collection

    count = args.dev_queries or 100
    judged = sorted(load_collection(args.data, split=args.split).judged_query_ids())
    if count > len(judged):
        raise DataError(f"--dev_queries: {count} asked for, {args.data}/{args.split} has {len(judged)} judged queries")
    query_ids = sorted(random.Random(args.seed).sample(judged, count))
    config = TrainConfig(data=args.data, split=args.split, dev_depth=args.depth or 50,
                         first_stage_model=args.first_stage_model)
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
    for path in tried:
        if path.is_file():
            return path
    raise DataError(f"{saved}: train_file {given} not found (tried {', '.join(map(str, tried))}); the dev queries are "
                    f"drawn from it: give --train_file, or check on another collection with --data")


def _check_folder(model: str) -> Path:
    folder = Path(model).expanduser()
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"--model {model}: expected a local reranker folder (config.json inside); "
                          f"got {'no such folder' if not folder.is_dir() else 'a folder without config.json'}")
    return folder
