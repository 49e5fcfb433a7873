"""Exporting a reranker to ONNX: export, fuse, quantise, check against torch, and keep -- atomically.

Everything is written into a staging folder inside the model folder (`.onnx-export-*`), checked there,
and only a file that passed is moved into `onnx/` with `os.replace`, so a killed or refused export never
leaves a half-written or unchecked `onnx/model*.onnx` (a killed one leaves its staging folder, removed by
the next export).

- fp32 (`onnx`): torch.onnx's TorchScript exporter with eager attention -- the graph onnxruntime's
  transformer optimizer recognises -- then that optimizer's fusions (Attention, EmbedLayerNormalization,
  SkipLayerNormalization, BiasGelu).
- int8 (`onnx-int8`): onnxruntime's dynamic quantisation of the fused fp32 graph's MatMul and Attention
  weights, per channel (`int8_recipes`). A plain `quantize_dynamic` (per-tensor, embeddings included)
  ranked pairs with Spearman 0.96-0.97 against torch on a trained MiniLM-L6; the recipes are tried in
  order and the first whose scores pass the check is kept. Some recipes leave the nodes
  int8 hurts most in fp32, ranked on a probe sample of real pairs (`rank_sensitivity`).

What a check measures (rank agreement with torch, nDCG on a dev split) is the caller's: `judge` gets each
candidate as an `OnnxBackend` and says whether it passes and why."""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from rerankforge.core.errors import ConfigError, RerankforgeError

from .backends import (FINGERPRINT_KEY, LOGITS, ONNX_DIR, ONNX_FILE, OnnxBackend, int8_file, int8_format,
                       model_inputs, require_onnx, weights_fingerprint)

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".onnx-export-"
OPSET = 17  # LayerNormalization is a standard op from 17 on; onnxruntime 1.16+ runs it
FUSED_MODEL_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "electra": "bert",
                     "distilbert": "bert", "camembert": "bert"}  # what onnxruntime's optimizer fuses as `bert`


@dataclass(frozen=True)
class Int8Recipe:
    """One way to quantise to int8: which weights, at what granularity, with what range."""

    name: str
    per_channel: bool
    reduce_range: bool
    unsigned_weights: bool = False
    """uint8 weights (u8 x u8 products) instead of int8: optimum's choice for AVX2."""
    op_types: tuple[str, ...] = ("MatMul", "Attention")
    """Operators whose weights become int8. Leaving out Gather keeps the word embeddings in fp32: a table
    lookup gains nothing from int8 but rounding error."""
    fp32_share: float = 0.0
    """Share of those operators (rounded up) left in fp32: the ones whose int8 version alone moves a probe
    sample's scores most (`rank_sensitivity`). Recipes with a share need a probe; without one they are skipped."""


def int8_recipes(fmt: str) -> tuple[Int8Recipe, ...]:
    """The recipes tried for int8 format `fmt`, in order, until one passes. All quantise weights per channel:
    per-tensor scales ranked SciFact pairs with Spearman 0.974 against torch on a trained MiniLM-L6, per-channel
    ones 0.99 (docs/RESULTS.md). With VNNI, signed int8 weights first (its fast u8 x s8 products). Without
    it, u8 x s8 products can saturate their 16-bit intermediates: uint8 weights (optimum's AVX2 choice) come
    first there, then 7-bit signed ones. Then the signed recipe with the most sensitive eighth, then quarter,
    of the quantised operators left in fp32 (ranked on a probe; on the SciFact MiniLM-L6 reranker int8 error
    comes mostly from the feed-forward layers of the first three blocks, and 7-bit with those 3 of 24 operators
    in fp32 ran 1.06x the uint8 file on 300 test queries, 0.004 nDCG@10 further from torch: docs/RESULTS.md);
    last, the fused attention left in fp32."""
    vnni = fmt in ("avx512_vnni", "arm64")
    signed = Int8Recipe("per-channel" if vnni else "per-channel-7bit", per_channel=True, reduce_range=not vnni)
    unsigned = Int8Recipe("per-channel-uint8", per_channel=True, reduce_range=False, unsigned_weights=True)
    sensitive_fp32 = (replace(signed, name=f"{signed.name}-fp32-1of8", fp32_share=1 / 8),
                      replace(signed, name=f"{signed.name}-fp32-1of4", fp32_share=1 / 4))
    attention_fp32 = Int8Recipe("per-channel-matmul-only", per_channel=True, reduce_range=not vnni,
                                op_types=("MatMul",))
    first = (signed, unsigned) if vnni else (unsigned, signed)
    return (*first, *sensitive_fp32, attention_fp32)


class ExportRefused(RerankforgeError):
    """No candidate export scored close enough to torch; nothing was kept."""


@dataclass
class Verdict:
    """A judge's answer about one candidate: passed or not, and the figures that say why."""

    passed: bool
    figures: dict[str, float] = field(default_factory=dict)
    summary: str = ""


Judge = Callable[[OnnxBackend], Verdict]
Probe = Callable[[OnnxBackend], np.ndarray]
"""Scores a small fixed sample of real pairs with a candidate: what `rank_sensitivity` compares."""


@dataclass
class Kept:
    """What an export kept: the file, the candidate that passed, and every candidate's verdict."""

    path: Path
    candidate: str
    verdicts: list[tuple[str, Verdict]]


def export_backend(folder: str | os.PathLike, backend: str, model, tokenizer, judge: Judge, fmt: str = "auto",
                   optimize: bool = True, recipes: Sequence[Int8Recipe] | None = None,
                   on_candidate: Callable[[str, Verdict], None] | None = None, probe: Probe | None = None) -> Kept:
    """Export `model` (the torch reranker loaded from `folder`) as `backend` (onnx or onnx-int8) into
    `folder/onnx/`, keeping the first candidate `judge` passes; ExportRefused (nothing kept) if none does.
    Candidates: the fused graph, then the unfused one; for int8, each recipe on each. `fmt`: the int8
    format (`auto`: this CPU's); `on_candidate` hears each verdict as it comes; `probe` ranks which operators
    the recipes with an fp32 share keep in fp32 (they are skipped without one)."""
    if backend not in ("onnx", "onnx-int8"):
        raise ConfigError(f"backend: expected onnx or onnx-int8 to export, got {backend!r}")
    require_onnx()
    check_exportable(model)
    folder = Path(folder)
    fmt = int8_format() if fmt == "auto" else fmt
    target = folder / ONNX_DIR / (ONNX_FILE if backend == "onnx" else int8_file(fmt))
    recipes = int8_recipes(fmt) if recipes is None else recipes
    inputs = model_inputs(tokenizer)
    fingerprint = weights_fingerprint(folder)
    verdicts: list[tuple[str, Verdict]] = []
    clear_stale_staging(folder)

    def open_candidate(path: Path, name: str = backend) -> OnnxBackend:
        return OnnxBackend.open(path, name, inputs, vocab_size=len(tokenizer))

    with staging(folder) as stage:
        for name, path in _candidates(stage, backend, model, inputs, optimize, recipes, probe, open_candidate):
            stamp(path, {FINGERPRINT_KEY: fingerprint} if fingerprint else {})
            verdict = judge(open_candidate(path))
            verdicts.append((name, verdict))
            if on_candidate is not None:
                on_candidate(name, verdict)
            if verdict.passed:
                keep(path, target)
                return Kept(target, name, verdicts)
    lines = "; ".join(f"{name}: {verdict.summary}" for name, verdict in verdicts)
    raise ExportRefused(f"{target.relative_to(folder)}: refused, no candidate scored like torch ({lines}); nothing "
                        f"was written to {folder / ONNX_DIR}")


def _candidates(stage: Path, backend: str, model, inputs: tuple[str, ...], optimize: bool,
                recipes: Sequence[Int8Recipe], probe: Probe | None,
                open_candidate: Callable[..., OnnxBackend]) -> Iterator[tuple[str, Path]]:
    """(name, staged file) of each candidate, made only when asked for: a later one costs nothing if an
    earlier one passes (the sensitivity ranking included)."""
    plain = stage / "plain.onnx"
    export_fp32(model, inputs, plain)
    sources = [plain]
    if optimize and model.config.model_type in FUSED_MODEL_TYPES:
        fused = stage / "fused.onnx"
        fuse(plain, fused, model.config)
        sources.insert(0, fused)
    for source in sources:
        if backend == "onnx":
            yield source.stem, source
            continue
        rankings: dict[Int8Recipe, list[str]] = {}
        for recipe in recipes:
            kept_fp32: list[str] = []
            if recipe.fp32_share:
                if probe is None:
                    continue
                plain_recipe = replace(recipe, name="", fp32_share=0.0)
                if plain_recipe not in rankings:
                    rankings[plain_recipe] = rank_sensitivity(source, plain_recipe, probe, open_candidate, stage)
                ranking = rankings[plain_recipe]
                kept_fp32 = ranking[:math.ceil(recipe.fp32_share * len(ranking))]
            yield (f"{source.stem}+{recipe.name}",
                   quantize_int8(source, stage / f"{source.stem}-{recipe.name}.onnx", recipe, kept_fp32))


def rank_sensitivity(source: Path, recipe: Int8Recipe, probe: Probe, open_candidate: Callable[..., OnnxBackend],
                     stage: Path) -> list[str]:
    """The operators `recipe` quantises in `source`, the one whose int8 version alone moves `probe`'s scores
    most (root mean square difference from the fp32 graph's) first. One quantisation and one probe per
    operator: a few minutes for a 6-layer model on 2 cores."""
    reference = probe(open_candidate(source, "onnx"))
    nodes = quantisable_nodes(source, recipe)
    trial = stage / "sensitivity.onnx"
    error = {}
    for node in nodes:
        quantize_int8(source, trial, recipe, [other for other in nodes if other != node])
        error[node] = float(np.sqrt(np.mean((probe(open_candidate(trial, "onnx-int8")) - reference) ** 2)))
    trial.unlink(missing_ok=True)
    ranking = sorted(nodes, key=lambda node: -error[node])
    logger.info(f"int8 sensitivity of {source.name}, each operator alone in int8, root mean square change of "
                f"{len(reference)} probe scores: " + ", ".join(f"{node} {error[node]:.3f}" for node in ranking))
    return ranking


def quantisable_nodes(source: Path, recipe: Int8Recipe) -> list[str]:
    """Names of the operators of `recipe.op_types` in `source` (the quantiser names nodes to leave out by name)."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type in recipe.op_types and node.name]


def check_exportable(model) -> None:
    """A single protobuf holds at most 2 GB; larger models would need external data files."""
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    if size >= 2 ** 31 - 2 ** 26:  # what fits one protobuf, less room for the graph itself
        raise ConfigError(f"model: {size / 2 ** 30:.1f} GiB of weights; the onnx export writes one file, which holds "
                          f"at most 2 GiB (models up to about 500M parameters in fp32)")


def export_fp32(model, inputs: tuple[str, ...], path: Path, opset: int = OPSET) -> None:
    """The torch model as an fp32 ONNX graph with dynamic batch and sequence axes, reading `inputs` (in
    that order) and returning `logits` (batch, 1). Eager attention: the SDPA path of transformers 5
    exports its mask as a graph that onnxruntime's optimizer does not fuse."""
    import warnings

    import torch

    class LogitsOnly(torch.nn.Module):  # positional inputs in, logits out: what the exporter traces
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            return self.inner(**dict(zip(inputs, tensors))).logits

    example = {"input_ids": torch.tensor([[1, 5, 2, 6, 2], [1, 7, 2, 8, 0]]),  # ids any vocabulary has
               "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
               "token_type_ids": torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 1, 0]])}
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in inputs}
    previous, was_training = model.config._attn_implementation, model.training
    model.set_attn_implementation("eager")
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings on shape arithmetic: the check runs the real graph
            torch.onnx.export(LogitsOnly(model), tuple(example[name] for name in inputs), str(path), dynamo=False,
                              input_names=list(inputs), output_names=[LOGITS], opset_version=opset,
                              dynamic_axes={**axes, LOGITS: {0: "batch_size"}}, do_constant_folding=True)
    finally:
        model.set_attn_implementation(previous)
        model.train(was_training)  # the exporter leaves the model in training mode


def fuse(source: Path, target: Path, config) -> None:
    """onnxruntime's transformer optimizer: attention, LayerNorm, GELU and embedding fusions (fp32, any CPU;
    the session's own graph optimisations run on top when it loads)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type=FUSED_MODEL_TYPES[config.model_type],
                               num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                               opt_level=1, use_gpu=False)
    optimized.save_model_to_file(str(target))


def quantize_int8(source: Path, target: Path, recipe: Int8Recipe, kept_fp32: Sequence[str] = ()) -> Path:
    """Dynamic int8 quantisation of `source` by `recipe`: weights int8 at export, activations at run time;
    the nodes named in `kept_fp32` stay fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():  # it advises "pre-processing" on the root logger, for every model
        quantize_dynamic(str(source), str(target), op_types_to_quantize=list(recipe.op_types),
                         per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
                         weight_type=QuantType.QUInt8 if recipe.unsigned_weights else QuantType.QInt8,
                         nodes_to_exclude=list(kept_fp32),
                         # the fused operators (com.microsoft domain) have no shape inference in onnx: say
                         # their outputs are float rather than let the quantizer fail on them
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return target


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def stamp(path: Path, metadata: dict[str, str]) -> None:
    """Record `metadata` in the file (onnx metadata_props), e.g. the fingerprint of the weights it came from."""
    import onnx

    model = onnx.load(str(path))
    kept = {p.key: p.value for p in model.metadata_props}
    kept.update(metadata)
    del model.metadata_props[:]
    for key, value in kept.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two score vectors (1.0 for identical rankings)."""
    from scipy.stats import spearmanr

    if len(a) < 2:
        return 1.0
    value = spearmanr(a, b).statistic
    return 1.0 if np.isnan(value) and np.array_equal(a, b) else float(value)


class staging:
    """A fresh staging folder inside `folder` (same filesystem, so moving out of it is one rename),
    removed on the way out whatever happens."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.folder))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def keep(staged: Path, target: Path) -> None:
    """Move a checked file into place: one rename, so `target` is the old file or the new one, never half of
    either."""
    from rerankforge.core.files import readable_by_all

    target.parent.mkdir(parents=True, exist_ok=True)
    readable_by_all(staged)
    os.replace(staged, target)


def clear_stale_staging(folder: Path) -> None:
    """Remove staging folders left by exports that were killed (a live export in another process would
    lose its own: exports of one folder are not meant to run at once)."""
    for stale in folder.glob(f"{STAGING_PREFIX}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
