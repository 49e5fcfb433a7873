"""Scoring (query, document) pairs with a cross-encoder, and reranking a first-stage run with it.

This is the scoring engine every stage shares: train uses it for its in-loop dev evaluation, eval
for its reports, serve for its endpoints. It takes any single-logit sequence classifier -- a folder
written by `rerankforge train`, a sentence-transformers CrossEncoder folder or Hub id, or a LoRA
adapter folder (merged into its base at load time, so scoring costs the same as a plain model)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rerankforge.data_prep.errors import ModelNotFoundError
from rerankforge.data_prep.hardware import resolve_precision
from rerankforge.data_prep.runs import Run

ADAPTER_CONFIG = "adapter_config.json"
SETTINGS = "rerankforge.json"  # beside the weights: the score fusion weight chosen on the dev split
CHARS_PER_TOKEN_BOUND = 32
"""Characters one token spans at most in ordinary text (English averages about 4, CJK about 1). A text
cut to this many characters per token it may keep tokenises like the whole text up to that many tokens."""


def clip_text(text: str, max_tokens: int, left: bool = False) -> str:
    """`text` cut to what its first (or, `left`, last) `max_tokens` tokens can span, so the tokenizer,
    which reads every character before it truncates, costs at most that much however long the text."""
    budget = max_tokens * CHARS_PER_TOKEN_BOUND
    if len(text) <= budget:
        return text
    return text[-budget:] if left else text[:budget]


DEFAULT_MAX_BATCH_TOKENS = 16384
"""Padded tokens per forward pass: 32 pairs of 512 tokens, or 512 pairs of 32 -- bounded work either way."""


class Reranker:
    """A cross-encoder with its tokenizer. Pairs are tokenised once, the document truncated (never the
    query), and scored in batches of similar token length packed up to `max_batch_tokens` padded tokens
    and `batch_size` rows (see eval/packing.py), under `torch.inference_mode`; the model's train/eval
    mode is restored afterwards."""

    def __init__(self, model, tokenizer, max_length: int = 512, batch_size: int = 32, name: str = "reranker",
                 fusion_weight: float = 1.0, precision: str = "auto",
                 max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS, backend=None):
        from rerankforge.eval.packing import PairEncoder
        from rerankforge.reranker.backends import TorchBackend

        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        """Rows per forward pass at most."""
        self.max_batch_tokens = max_batch_tokens
        """Padded tokens (rows x longest row) per forward pass at most; a single longer pair runs alone."""
        self.encoder = PairEncoder(tokenizer, max_length)
        self.name = name
        self.fusion_weight = fusion_weight
        """Weight of the reranker in `fuse` (1.0: its scores alone); saved models carry the one chosen on dev."""
        if backend is None:
            backend = TorchBackend(model, resolve_precision(precision, next(model.parameters()).device))
        self.backend = backend
        """What runs the forward pass (reranker/backends.py): the torch `model`, or an ONNX Runtime session
        (then `model` is None)."""
        self.precision = backend.precision
        """What scoring runs in (`.name`: fp32, or bf16/fp16 autocast) and why: `auto` picks bf16 where the device
        has it natively (about 2x faster on GPUs and CPUs with AVX512-BF16/AMX; emulated, ~10x slower)."""

    @classmethod
    def load(cls, ref: str, max_length: int | None = None, batch_size: int = 32, device: str | None = None,
             dtype=None, precision: str = "auto", max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
             backend: str = "torch") -> "Reranker":
        """Load `ref`: a local folder or Hub id of a sequence classifier, or a LoRA adapter folder. `backend`
        onnx or onnx-int8 scores with the file `rerankforge export` wrote into the folder (no torch model is
        loaded); `precision`, `device` and `dtype` are the torch backend's."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rerankforge.data_prep.models import resolve_model
        from rerankforge.reranker.backends import check_backend, load_onnx_backend

        check_backend(backend)
        folder = Path(resolve_model(ref))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        settings = json.loads((folder / SETTINGS).read_text()) if (folder / SETTINGS).is_file() else {}
        limit = max_length or settings.get("max_length") or min(getattr(tokenizer, "model_max_length", 512) or 512, 512)
        common = dict(max_length=limit, batch_size=batch_size, name=Path(ref).name or ref,
                      fusion_weight=settings.get("fusion_weight", 1.0), max_batch_tokens=max_batch_tokens)
        if backend != "torch":
            return cls(None, tokenizer, backend=load_onnx_backend(folder, backend, tokenizer), **common)
        if (folder / ADAPTER_CONFIG).is_file():
            model = load_adapter_merged(folder, dtype=dtype)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype)
        if model.config.num_labels != 1:
            raise ModelNotFoundError(f"{ref}: expected a single-logit reranker (num_labels=1), got a classifier "
                                     f"with {model.config.num_labels} labels")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device).eval()
        return cls(model, tokenizer, precision=precision, **common)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw logits (higher = more relevant), one per pair, in input order."""
        from rerankforge.eval.packing import pack

        scores = np.empty(len(pairs), dtype=np.float32)
        encoded = self.encoder.encode(pairs)
        with self.backend.scoring():
            for chunk in pack([len(e.input_ids) for e in encoded], self.max_batch_tokens, self.batch_size):
                scores[chunk] = self.backend(self.encoder.collate([encoded[i] for i in chunk]))
        return scores

    def score_timed(self, candidates: dict[str, list[str]], queries: dict[str, str],
                    doc_text: Callable[[str], str]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """Score each query's candidates on its own, as a service would, timing each: (query id -> {doc id ->
        score}, query id -> seconds). One warm-up batch runs first so start-up costs don't count."""
        import time

        first = next((qid for qid, docs in candidates.items() if docs), None)
        if first is not None:
            self.score([(queries[first], doc_text(d)) for d in candidates[first][:self.batch_size]])
        from tqdm.auto import tqdm

        scores, seconds = {}, {}
        for qid, doc_ids in tqdm(candidates.items(), desc=f"reranking ({self.name})", unit="query",
                                 disable=len(candidates) < 50, leave=False):
            pairs = [(queries[qid], doc_text(d)) for d in doc_ids]
            started = time.perf_counter()
            values = self.score(pairs)  # returns host arrays, so device work is finished
            seconds[qid] = time.perf_counter() - started
            scores[qid] = dict(zip(doc_ids, map(float, values)))
        return scores, seconds

    def rerank(self, run: Run, queries: dict[str, str], doc_text: Callable[[str], str], depth: int,
               fusion_weight: float | None = None) -> Run:
        """Rescore the top-`depth` of each query of `run` (documents below it are dropped). The final
        score fuses reranker and first-stage scores with `fusion_weight` (default: the model's own;
        1.0 ranks by the reranker alone)."""
        scores = self.score_run(run, queries, doc_text, depth)
        weight = self.fusion_weight if fusion_weight is None else fusion_weight
        return {qid: fuse(run[qid][:depth], scores[qid], weight) for qid in run}

    def score_run(self, run: Run, queries: dict[str, str], doc_text: Callable[[str], str],
                  depth: int) -> dict[str, dict[str, float]]:
        """Reranker scores of the top-`depth` of each query: query id -> {doc id -> score}."""
        owners = [(qid, doc_id) for qid, hits in run.items() for doc_id, _ in hits[:depth]]
        scores = self.score([(queries[qid], doc_text(doc_id)) for qid, doc_id in owners])
        by_query: dict[str, dict[str, float]] = {qid: {} for qid in run}
        for (qid, doc_id), score in zip(owners, scores):
            by_query[qid][doc_id] = float(score)
        return by_query


def fuse(first_stage: list[tuple[str, float]], reranker: dict[str, float], weight: float) -> list[tuple[str, float]]:
    """Rank by `weight * z(reranker) + (1 - weight) * z(first stage)`, z standardising each query's
    scores (the two scales differ); weight 1.0 is the reranker alone."""
    import statistics

    def z(values: list[float]) -> list[float]:
        if len(values) < 2:
            return [0.0] * len(values)
        mu, sd = statistics.fmean(values), statistics.pstdev(values) or 1.0
        return [(v - mu) / sd for v in values]

    ids = [doc_id for doc_id, _ in first_stage]
    if weight >= 1.0:
        fused = [reranker[d] for d in ids]
    else:
        fused = [weight * r + (1 - weight) * f for r, f in zip(z([reranker[d] for d in ids]),
                                                               z([s for _, s in first_stage]))]
    return sorted(zip(ids, fused), key=lambda hit: -hit[1])


def load_adapter_merged(folder: Path, dtype=None):
    """A LoRA adapter folder (written by `rerankforge train` with `lora: true`) merged into its base."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from rerankforge.data_prep.models import resolve_model

    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    base_ref = config.get("base_model_name_or_path")
    if not base_ref:
        raise ModelNotFoundError(f"{folder / ADAPTER_CONFIG}: expected 'base_model_name_or_path', got none")
    with new_head_expected():  # the base's head is replaced by the adapter's saved one
        base = AutoModelForSequenceClassification.from_pretrained(resolve_model(base_ref), num_labels=1, dtype=dtype)
    return PeftModel.from_pretrained(base, folder).merge_and_unload()


@contextmanager
def new_head_expected():
    """Silence transformers' "newly initialized: classifier" report where a fresh head is expected."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
