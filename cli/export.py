"""`rerankforge export`: an exported backend (ONNX fp32 or int8) kept only if it ranks like torch on the
reranker's dev split.

The mechanics -- export, fuse, quantise, stage, keep -- are reranker/export.py's; this module holds the
check, which needs the dev split (dev_split.py: the model's own, or drawn from --data) and its metrics.

A candidate passes when the Spearman correlation of its scores with torch's over all the dev pairs
pooled is at least --min_spearman (0.99), and the low end of the bootstrap 95% confidence interval of its
per-query nDCG@10 difference from torch is at least -max_ndcg_loss (0.005): a bound on the loss users see on
queries like the dev split's, not the dev split's own mean (an int8 file whose dev mean moved +0.0022 lost
0.0074 on 100 test queries; docs/RESULTS.md, issue 29). A candidate that moves many queries' rankings a
little, or a few a lot, has a wide interval and is refused even where the moves happen to cancel on dev. And
the moves' sizes, each counted as a loss whichever way it went, must average at most max_ndcg_loss too: which
queries a candidate lifts and which it sinks is chance, so a dev gain is no evidence of faithfulness (an int8
file whose dev queries gained +0.0105, interval [+0.0015, +0.0332], lost 0.0085 on 300 test queries).
Refused: exit code 2 with the figures, nothing written to onnx/. Which operators an int8 recipe leaves in
fp32 is ranked on a probe: PROBE_PAIRS dev pairs spread evenly over the split."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from rerankforge.core.commands import add_command
from rerankforge.core.errors import ConfigError
from rerankforge.core.hardware import resolve_precision, use_cpu_threads
from rerankforge.reranker.backends import TorchBackend, require_onnx
from rerankforge.reranker.checked_paths import path_key, record_checked_path
from rerankforge.reranker.export import ExportRefused, Verdict, export_backend, spearman
from rerankforge.reranker.scoring import Reranker

from rerankforge.training.dev.dev_eval import DevSet
from rerankforge.training.dev.dev_split import DevSplitArgs, dev_split

logger = logging.getLogger(__name__)

PROBE_PAIRS = 160
"""Dev pairs the int8 sensitivity ranking scores once per operator (about 4 s each on 2 AVX2 cores)."""

EXPORT_HELP = ("Export a reranker folder for fast CPU scoring: --backend onnx (ONNX Runtime, fused fp32 graph: "
               "onnx/model.onnx) or onnx-int8 (int8 for this CPU: onnx/model_qint8_<format>.onnx), in "
               "sentence-transformers' layout. Kept only if it ranks the dev split like torch; refused (exit 2) "
               "with the figures otherwise.")


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
    min_spearman: float = field(default=0.99, metadata={
        "help": "Least Spearman correlation with torch's scores over the dev pairs pooled."})
    max_ndcg_loss: float = field(default=0.005, metadata={
        "help": "Most nDCG@10 the candidate may lose to torch at the low end of the bootstrap 95% confidence "
                "interval of the dev queries' per-query differences (candidate - torch), and most the differences' "
                "sizes may average (every move counted as a loss)."})
    batch_size: int = field(default=64, metadata={"help": "Most pairs per forward pass while checking."})


def add_export_parser(subparsers) -> None:
    add_command(subparsers, "export", EXPORT_HELP, [ExportArgs, DevSplitArgs], run_export)


def run_export(args: ExportArgs, split: DevSplitArgs | None = None) -> int:
    require_onnx()
    folder = check_folder(args.model)
    config, query_ids, where = dev_split(folder, split or DevSplitArgs())  # everything the check reads is found before a model loads
    logger.info(f"using {use_cpu_threads()}")
    torch_reranker = Reranker.load(str(folder), batch_size=args.batch_size, precision="fp32")
    logger.info(f"dev split: {len(query_ids)} queries of {where}, {config.first_stage} top-{config.dev_depth}")
    dev = DevSet.build(config, query_ids)
    check = DevCheck(dev, torch_reranker, args.min_spearman, args.max_ndcg_loss)
    print(f"torch fp32: dev nDCG@10 {check.torch_ndcg:.4f} over {check.pairs} pairs ({check.torch_rate:.1f} pairs/s)")
    record_checked_path(folder, path_key("torch", "fp32"), {"passed": True, "precision": "fp32", "speedup": 1.0,
                                                             "pairs_per_s": check.torch_rate, "dev": where})
    check_native_precision(folder, check, torch_reranker, where)
    try:
        kept = export_backend(folder, args.backend, torch_reranker.model, torch_reranker.tokenizer, check,
                              fmt=args.int8_format, optimize=args.optimize, probe=check.probe,
                              on_candidate=lambda name, verdict: print(f"{name}: {verdict.summary}"))
    except ExportRefused:  # backend auto must not go on trusting a file an earlier export kept
        record_checked_path(folder, path_key(args.backend), {"passed": False, "dev": where})
        raise
    verdict = dict(kept.verdicts)[kept.candidate]
    record_checked_path(folder, path_key(args.backend), {
        "passed": True, "pairs_per_s": verdict.figures["pairs_per_s"], "speedup": verdict.figures["speedup"],
        "candidate": kept.candidate, "dev": where,
        "file": str(kept.path.relative_to(folder)), "figures": verdict.figures})
    print(f"kept {kept.path} ({kept.candidate}); load it with Reranker.load(..., backend={args.backend!r}) or "
          f"CrossEncoder(folder, backend='onnx'"
          + (f", model_kwargs={{'file_name': '{kept.path.parent.name}/{kept.path.name}'}})" if args.backend != "onnx"
             else ")"))
    return 0


def check_native_precision(folder: Path, check: "DevCheck", reranker: Reranker, where: str) -> None:
    """Where torch's `auto` precision is not fp32 here (bf16 on a CPU with AVX512-BF16 or AMX), judge it like an
    export and record what it did: `backend auto` scores in it only if it passed."""
    precision = resolve_precision("auto", "cpu")
    if precision.name == "fp32":
        return
    verdict = check(TorchBackend(reranker.model, precision))
    print(f"torch {precision.name}: {verdict.summary}")
    record_checked_path(folder, path_key("torch", precision.name), {
        "passed": verdict.passed, "precision": precision.name, "pairs_per_s": verdict.figures["pairs_per_s"],
        "speedup": verdict.figures["speedup"], "dev": where, "figures": verdict.figures})


class DevCheck:
    """The judge of reranker/export.py: a candidate backend against torch on the dev split."""

    def __init__(self, dev: DevSet, reranker: Reranker, min_spearman: float, max_ndcg_loss: float):
        self.dev, self.reranker = dev, reranker
        self.min_spearman, self.max_ndcg_loss = min_spearman, max_ndcg_loss
        self.torch_scores, self.torch_rate = self._score(reranker)
        self.torch_per_query = dev.per_query(self.torch_scores)["nDCG@10"]
        self.torch_ndcg = float(np.mean(list(self.torch_per_query.values())))
        self.pairs = sum(len(s) for s in self.torch_scores.values())
        every = [(dev.queries[q], dev.collection.doc_text(d)) for q in self.torch_scores for d in self.torch_scores[q]]
        self.probe_pairs = every[::max(1, len(every) // PROBE_PAIRS)][:PROBE_PAIRS]

    def __call__(self, backend) -> Verdict:
        scores, rate = self._score(self._scorer(backend))
        ours, theirs = self._pooled(self.torch_scores), self._pooled(scores)
        rho = spearman(ours, theirs)
        per_query = float(np.mean([spearman(np.array(list(self.torch_scores[q].values())),
                                            np.array([scores[q][d] for d in self.torch_scores[q]]))
                                   for q in self.torch_scores if len(self.torch_scores[q]) > 1]))
        loss = loss_bound(self.torch_per_query, self.dev.per_query(scores)["nDCG@10"])
        figures = {"spearman": rho, "spearman_per_query": per_query, "max_abs_diff": float(np.abs(ours - theirs).max()),
                   "ndcg@10": self.torch_ndcg + loss.mean, "ndcg@10_diff": loss.mean, "ndcg@10_ci95_low": loss.low,
                   "ndcg@10_ci95_high": loss.high, "ndcg@10_bound": loss.bound, "worst_query_diff": loss.worst,
                   "queries_changed": loss.changed, "ndcg@10_moved": loss.moved, "pairs_per_s": rate,
                   "speedup": rate / self.torch_rate}
        passed = rho >= self.min_spearman and loss.passes(self.max_ndcg_loss)
        summary = (f"{'passed' if passed else 'failed'}: Spearman {rho:.4f} (need >= {self.min_spearman}; per query "
                   f"{per_query:.4f}), dev nDCG@10 {figures['ndcg@10']:.4f} vs torch {self.torch_ndcg:.4f} (diff "
                   f"{loss.mean:+.4f}, 95% CI [{loss.low:+.4f}, {loss.high:+.4f}], low end allowed >= "
                   f"-{self.max_ndcg_loss}; {loss.changed} of {loss.queries} queries moved, by {loss.moved:.4f} on "
                   f"average, allowed <= {self.max_ndcg_loss}; worst {loss.worst:+.4f}), max |score diff| "
                   f"{figures['max_abs_diff']:.2e}, {rate:.1f} pairs/s ({figures['speedup']:.2f}x torch on this "
                   f"machine now)")
        return Verdict(passed, figures, summary)

    def probe(self, backend) -> np.ndarray:
        """`backend`'s scores of the probe pairs (what export ranks int8 sensitivity on)."""
        return self._scorer(backend).score(self.probe_pairs)

    def _scorer(self, backend) -> Reranker:
        reranker = self.reranker
        return Reranker(None, reranker.tokenizer, reranker.max_length, reranker.batch_size,
                        max_batch_tokens=reranker.max_batch_tokens, backend=backend)

    def _score(self, reranker: Reranker) -> tuple[dict[str, dict[str, float]], float]:
        started = time.perf_counter()
        scores = self.dev.score(reranker)
        seconds = time.perf_counter() - started
        return scores, sum(len(s) for s in scores.values()) / max(seconds, 1e-9)

    def _pooled(self, scores: dict[str, dict[str, float]]) -> np.ndarray:
        return np.array([scores[q][d] for q in self.torch_scores for d in self.torch_scores[q]], dtype=np.float64)


@dataclass(frozen=True)
class LossBound:
    """A candidate's per-query nDCG@10 differences from torch (candidate - torch) over the dev queries, and
    what they bound: the 95% confidence interval of the mean difference users would see, and the mean size of the
    moves (`passes` reads both)."""

    mean: float
    low: float
    high: float
    worst: float
    """The single query that lost most (0 where none lost)."""
    changed: int
    """Queries whose nDCG@10 moved at all."""
    queries: int
    moved: float
    """The mean of the differences' sizes, |candidate - torch|: the loss had every move gone the wrong way."""

    @property
    def bound(self) -> float:
        """The loss the interval does not rule out: minus its low end, 0 where that is a gain."""
        return max(0.0, -self.low)

    def passes(self, max_loss: float) -> bool:
        """Within `max_loss` both ways the check reads it: the interval rules out a mean loss beyond it, and the
        moves, each counted as a loss whichever way it went, average no more than it. The second is what holds
        where users score: which queries a candidate moves up and which down is chance (the int8 file whose
        80 dev queries gained +0.0105 lost 0.0085 on 300 test queries), how far it moves them is not."""
        return self.bound <= max_loss and self.moved <= max_loss


def loss_bound(reference: dict[str, float], candidate: dict[str, float]) -> LossBound:
    """The LossBound of `candidate`'s per-query values against `reference`'s (query id -> nDCG@10, the same
    queries): mean and bootstrap 95% interval (eval/significance.py's) of the differences."""
    from rerankforge.eval.significance import bootstrap_ci

    differences = np.array([candidate[q] - reference[q] for q in reference], dtype=float)
    low, high = bootstrap_ci(differences)
    return LossBound(float(differences.mean()), low, high, float(min(0.0, differences.min())),
                     int((np.abs(differences) > 1e-12).sum()), len(differences), float(np.abs(differences).mean()))


def check_folder(model: str) -> Path:
    folder = Path(model).expanduser()
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"--model {model}: expected a local reranker folder (config.json inside); "
                          f"got {'no such folder' if not folder.is_dir() else 'a folder without config.json'}")
    return folder
