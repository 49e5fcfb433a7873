"""Scoring (query, document) pairs with a cross-encoder, and reranking a first-stage run with it.

This is the scoring engine every stage shares: train uses it for its in-loop dev evaluation, eval
for its reports, serve for its endpoints. It takes any single-logit sequence classifier -- a folder
written by `rerankforge train`, a sentence-transformers CrossEncoder folder or Hub id, or a LoRA
adapter folder (merged into its base at load time, so scoring costs the same as a plain model)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rerankforge.core.errors import ModelNotFoundError, RerankforgeError
from rerankforge.core.hardware import resolve_precision
from rerankforge.core.lexical import BM25_STATISTICS, BM25Statistics
from rerankforge.core.rankings import Run

from .backends import TorchBackend, check_backend, load_onnx_backend
from .calibration import SIGMOID, Calibration
from .checked_paths import choose_path, path_key
from .combiner import Combiner
from .folder import ADAPTER_CONFIG, load_adapter_merged, read_settings
from .folder_check import check_folder_files, check_tokenizer_fits, usable_positions, weights_error
from .packing import DEFAULT_MAX_BATCH_TOKENS, PairEncoder, pack

logger = logging.getLogger(__name__)


class Reranker:
    """A cross-encoder with its tokenizer. Pairs are tokenised once, the document truncated (never the
    query), and scored in batches of similar token length packed up to `max_batch_tokens` padded tokens
    and `batch_size` rows (see packing.py), each batch run by the backend (backends.py): the torch model
    under `torch.inference_mode`, its train/eval mode restored afterwards, or an exported ONNX file."""

    def __init__(self, model, tokenizer, max_length: int = 512, batch_size: int = 32, name: str = "reranker",
                 combiner: Combiner | None = None, precision: str = "auto",
                 max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS, backend=None, calibration: Calibration = SIGMOID,
                 request_combiner: Combiner | None = None, bm25: BM25Statistics | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        """Rows per forward pass at most."""
        self.max_batch_tokens = max_batch_tokens
        """Padded tokens (rows x longest row) per forward pass at most; a single longer pair runs alone."""
        self.encoder = PairEncoder(tokenizer, max_length)
        self.name = name
        self.combiner = combiner or Combiner.reranker_only()
        """How the served ranking combines this reranker's scores with the first stage's signals (combiner.py);
        saved models carry the combination fitted on their dev split; the reranker alone otherwise."""
        self.bm25 = bm25
        """The BM25 statistics of the corpus the rankings were fitted on (bm25_statistics.json): what scores a
        request's documents for the request ranking's `bm25`; None where the model has none."""
        self.request_combiner = request_combiner or self.combiner.for_requests(bm25 is not None)
        """The served ranking of documents sent in first-stage order (rerank endpoints, adapters): the reranker
        against that order (and the documents' BM25), fitted on dev (`order`)."""
        if self.request_combiner.uses_bm25 and bm25 is None:
            raise ModelNotFoundError(f"{name}: the request ranking ({self.request_combiner.describe()}) weighs BM25, "
                                     f"which needs the corpus's statistics ({BM25_STATISTICS}); expected them "
                                     f"beside rerankforge.json, got none")
        self.calibration = calibration
        """Raw score -> probability of relevance (`probability`): fitted on dev and saved with the model, or the
        plain sigmoid."""
        if backend is None:
            backend = TorchBackend(model, resolve_precision(precision, next(model.parameters()).device))
        self.backend = backend
        """What runs the forward pass (backends.py): the torch `model`, or an ONNX Runtime session on an
        exported file (then `model` is None)."""
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

        from rerankforge.core.models import resolve_model

        check_backend(backend)
        folder = Path(resolve_model(ref))
        if backend == "auto":
            choice = choose_path(folder, precision)
            logger.info(f"backend auto: {path_key(choice.backend, choice.precision)}, {choice.reason}")
            backend, precision = choice.backend, choice.precision
        settings = read_settings(folder)  # a bad rerankforge.json stops us before the weights load
        adapter = (folder / ADAPTER_CONFIG).is_file()
        config = check_folder_files(folder, adapter, weights=backend == "torch")
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as error:  # a tokenizer file its library cannot read
            raise ModelNotFoundError(f"{folder}: the tokenizer could not be loaded ({type(error).__name__}: "
                                     f"{(str(error).strip().splitlines() or [''])[0][:200]})") from None
        default = min(getattr(tokenizer, "model_max_length", 512) or 512, 512, usable_positions(config) or 512)
        limit = max_length or settings.max_length or default
        if config:
            check_tokenizer_fits(folder, config, tokenizer, limit)
        bm25 = BM25Statistics.load(folder / BM25_STATISTICS) if (folder / BM25_STATISTICS).is_file() else None
        if bm25 is None and settings.request_combiner_for(bm25=False).uses_bm25:
            raise ModelNotFoundError(f"{folder}: rerankforge.json's request_fusion_weights weigh bm25, which needs "
                                     f"the corpus's statistics; expected {folder / BM25_STATISTICS}, got no such file")
        common = dict(max_length=limit, batch_size=batch_size, name=Path(ref).name or ref,
                      combiner=settings.combiner, max_batch_tokens=max_batch_tokens, calibration=settings.calibration,
                      request_combiner=settings.request_combiner_for(bm25 is not None), bm25=bm25)
        if backend != "torch":
            return cls(None, tokenizer, backend=load_onnx_backend(folder, backend, tokenizer), **common)
        try:
            if adapter:
                model = load_adapter_merged(folder, dtype=dtype)
            else:
                model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype)
        except RerankforgeError:
            raise
        except Exception as error:  # whatever the checks above could not foresee: still one line
            raise weights_error(folder, error) from None
        if model.config.num_labels != 1:
            raise ModelNotFoundError(f"{ref}: expected a single-logit reranker (num_labels=1), got a classifier "
                                     f"with {model.config.num_labels} labels")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device).eval()
        return cls(model, tokenizer, precision=precision, **common)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw logits (higher = more relevant), one per pair, in input order."""
        scores = np.empty(len(pairs), dtype=np.float32)
        encoded = self.encoder.encode(pairs)
        chunks = list(pack([len(e.input_ids) for e in encoded], self.max_batch_tokens, self.batch_size))
        if not chunks:
            return scores
        with self.backend.scoring():  # every batch launched, then one wait (a GPU works while the host packs)
            launched = [self.backend.launch(self.encoder.collate([encoded[i] for i in chunk])) for chunk in chunks]
            scores[np.concatenate(chunks)] = self.backend.collect(launched)
        return scores

    def probability(self, scores) -> np.ndarray:
        """Raw scores as probabilities of relevance: the model's calibration (Platt scaling fitted on its dev
        split, in rerankforge.json), or the plain sigmoid where it has none."""
        return self.calibration.probability(scores)

    def score_timed(self, candidates: dict[str, list[str]], queries: dict[str, str],
                    doc_text: Callable[[str], str]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """Score each query's candidates on its own, as a service would, timing each: (query id -> {doc id ->
        score}, query id -> seconds). One warm-up batch runs first so start-up costs don't count."""
        import time

        first = next((qid for qid, docs in candidates.items() if docs), None)
        if first is not None:
            self.score([(queries[first], doc_text(d)) for d in candidates[first][:self.batch_size]])
        from rerankforge.core.progress import progress_bar

        scores, seconds = {}, {}
        for qid, doc_ids in progress_bar(candidates.items(), desc=f"reranking ({self.name})", unit="query",
                                 disable=len(candidates) < 50, leave=False):
            pairs = [(queries[qid], doc_text(d)) for d in doc_ids]
            started = time.perf_counter()
            values = self.score(pairs)  # returns host arrays, so device work is finished
            seconds[qid] = time.perf_counter() - started
            scores[qid] = dict(zip(doc_ids, map(float, values)))
        return scores, seconds

    def order(self, scores: Sequence[float], served: bool = False, query: str | None = None,
              documents: Sequence[str] | None = None) -> tuple[list[int], str]:
        """Indices of documents best first, from the reranker's `scores` of them in the order they were sent, and
        which ranking gave that order: the reranker alone, or -- `served`, the documents came in a first stage's
        order, best first -- the request ranking (`request_combiner`: the reranker weighed against that order and,
        where it weighs BM25, the BM25 of `query` with the `documents`' text; fitted on dev). Ties keep the order
        sent."""
        if not served:
            return sorted(range(len(scores)), key=lambda i: -scores[i]), "reranker"
        combiner = self.request_combiner
        bm25 = None
        if combiner.uses_bm25:
            if query is None or documents is None:
                raise ValueError("Reranker.order: the request ranking weighs BM25; pass the query and documents")
            bm25 = self.bm25.scores(query, documents)
        return combiner.order(scores, bm25), f"served ({combiner.describe()})"

    def rerank(self, run: Run, queries: dict[str, str], doc_text: Callable[[str], str], depth: int,
               served: bool = False) -> Run:
        """Rescore the top-`depth` of each query of `run` (documents below it are dropped) and rank by the
        reranker alone or, `served`, by the request ranking over the run's order (`order`; the served ranking with
        dense and BM25 scores is `self.combiner.rank` with those signals)."""
        scores = self.score_run(run, queries, doc_text, depth)
        combiner = self.request_combiner if served else Combiner.reranker_only()
        out: Run = {}
        for qid, hits in run.items():
            docs, signals = [d for d, _ in hits[:depth]], {"reranker": scores[qid]}
            if combiner.uses_bm25:  # as a request's documents get it: from their text
                signals["bm25"] = dict(zip(docs, self.bm25.scores(queries[qid], [doc_text(d) for d in docs])))
            out[qid] = combiner.rank(docs, signals)
        return out

    def score_run(self, run: Run, queries: dict[str, str], doc_text: Callable[[str], str],
                  depth: int) -> dict[str, dict[str, float]]:
        """Reranker scores of the top-`depth` of each query: query id -> {doc id -> score}."""
        owners = [(qid, doc_id) for qid, hits in run.items() for doc_id, _ in hits[:depth]]
        scores = self.score([(queries[qid], doc_text(doc_id)) for qid, doc_id in owners])
        by_query: dict[str, dict[str, float]] = {qid: {} for qid in run}
        for (qid, doc_id), score in zip(owners, scores):
            by_query[qid][doc_id] = float(score)
        return by_query

