"""Token-budget batching of (query, document) pairs for a cross-encoder.

Every pair is tokenised once (each distinct query once), cut to the model's length with the query kept
whole and the document truncated, sorted by its token length, and packed into batches whose padded size
(rows x longest row) stays within a token budget. Sorting keeps padding small; the budget keeps the cost
of a forward pass bounded whether the pairs are 30 tokens long or 512. Reranker.score (scoring.py) runs on
it, so eval, train's dev evaluation and the server's dynamic batcher all batch the same way."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .clipping import Blanks, clip_text

DEFAULT_MAX_BATCH_TOKENS = 16384
"""Padded tokens per forward pass: 32 pairs of 512 tokens, or 512 pairs of 32 -- bounded work either way."""

DOCUMENT_FLOOR = 32
"""Tokens a document keeps at least (at most half the room) when its query alone would fill the model."""


@dataclass
class EncodedPair:
    """One pair as the model reads it, special tokens included, unpadded."""
    input_ids: list[int]
    token_type_ids: list[int]


class PairEncoder:
    """A tokenizer and a length limit: pairs in, model inputs out."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.backend = _backend(tokenizer)
        self.blanks = Blanks.of(tokenizer)
        self.pair_backend = _backend(tokenizer)
        self.pair_backend.enable_truncation(max_length, strategy="only_second")
        self.room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
        if self.room < 2:
            raise ValueError(f"max_length: expected room for a query and a document besides the special "
                             f"tokens, got {max_length}")

    def clip(self, text: str) -> str:
        """`text` as far as `max_length` tokens can span, runs of characters that make no token collapsed."""
        return clip_text(text, self.max_length, self.blanks)

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[EncodedPair]:
        """Each pair tokenised with its document truncated so the whole fits `max_length` tokens
        (`truncation="only_second"`): the query is never cut for the document's sake. Only a query that
        would leave its document fewer than `min(DOCUMENT_FLOOR, room // 2)` tokens (or fewer than the
        document has, if it is shorter) is cut, to what leaves that many -- otherwise there would be
        little or nothing left to score it against. Texts are read only as far as `max_length` tokens
        can span, runs of characters that make no token collapsed (see clipping.py). Needs a fast
        (Rust-backed) tokenizer, which `AutoTokenizer` gives for every model family the project serves."""
        backend, room = self.backend, self.room
        floor = min(DOCUMENT_FLOOR, room // 2)
        distinct = list(dict.fromkeys(q for q, _ in pairs))
        by_query = dict(zip(distinct, backend.encode_batch([self.clip(q) for q in distinct],
                                                           add_special_tokens=False)))
        # Nearly every query leaves its document the floor: those pairs go to the Rust tokenizer in one call
        # (parallel over the cores), the document cut by its own truncation; the rest are joined one by one.
        fits = [len(by_query[q].ids) <= room - floor for q, _ in pairs]
        encoded: list[EncodedPair | None] = [None] * len(pairs)
        easy = [i for i, fit in enumerate(fits) if fit]
        joined = self.pair_backend.encode_batch([(self.clip(pairs[i][0]), self.clip(pairs[i][1]))
                                                 for i in easy], add_special_tokens=True)
        for i, pair in zip(easy, joined):
            encoded[i] = EncodedPair(pair.ids, pair.type_ids)
        hard = [i for i, fit in enumerate(fits) if not fit]
        documents = backend.encode_batch([self.clip(pairs[i][1]) for i in hard], add_special_tokens=False)
        for i, document in zip(hard, documents):
            # Encodings are truncated in place: copy the shared query's before cutting either
            first = _cut(by_query[pairs[i][0]], room - min(floor, len(document.ids)))
            second = _cut(document, room - len(first.ids))
            pair = backend.post_process(first, second, add_special_tokens=True)
            encoded[i] = EncodedPair(pair.ids, pair.type_ids)
        return encoded

    def collate(self, encoded: Sequence[EncodedPair]) -> dict:
        """Tensors for one batch, padded to its longest row on the tokenizer's padding side, with only the
        inputs the model takes (XLM-R has no token_type_ids)."""
        import torch

        tokenizer = self.tokenizer
        lengths = np.fromiter((len(e.input_ids) for e in encoded), dtype=np.int64, count=len(encoded))
        width = int(lengths.max())
        # Row i's tokens sit in columns [start_i, start_i + length_i): flat copies, no per-row padding lists.
        starts = width - lengths if tokenizer.padding_side == "left" else np.zeros_like(lengths)
        rows = np.repeat(np.arange(len(encoded)), lengths)
        offsets = np.cumsum(lengths) - lengths  # where each row begins in the flat token stream
        cols = np.arange(len(rows)) - np.repeat(offsets - starts, lengths)

        def padded(values: list[list[int]], fill: int) -> torch.Tensor:
            array = np.full((len(encoded), width), fill, dtype=np.int64)
            array[rows, cols] = np.fromiter(itertools.chain.from_iterable(values), dtype=np.int64, count=len(rows))
            return torch.from_numpy(array)

        mask = np.zeros((len(encoded), width), dtype=np.int64)
        mask[rows, cols] = 1
        batch = {"input_ids": padded([e.input_ids for e in encoded], tokenizer.pad_token_id or 0),
                 "attention_mask": torch.from_numpy(mask)}
        if "token_type_ids" in tokenizer.model_input_names:
            batch["token_type_ids"] = padded([e.token_type_ids for e in encoded], tokenizer.pad_token_type_id)
        return batch


def pack(lengths: Sequence[int], max_batch_tokens: int, max_rows: int | None = None) -> Iterator[list[int]]:
    """Indices of `lengths` in batches, shortest pairs first, each batch's padded size (rows x its
    longest length) within `max_batch_tokens` and its rows within `max_rows`. A pair longer than the
    budget forms a batch of its own; every index appears exactly once."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        # sorted ascending, so the newcomer is the batch's longest row
        full = (len(batch) + 1) * lengths[i] > max_batch_tokens or (max_rows and len(batch) >= max_rows)
        if batch and full:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _cut(encoding, length: int):
    from copy import deepcopy

    if len(encoding.ids) <= length:
        return encoding
    cut = deepcopy(encoding)
    cut.truncate(length)
    return cut


def _backend(tokenizer):
    """The tokenizer's Rust tokenizer with no truncation or padding of its own (a fast tokenizer keeps
    the settings of its last call on its backend; `post_process` would apply them)."""
    from tokenizers import Tokenizer

    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__}: expected a fast tokenizer (AutoTokenizer's default), "
                         "got a Python one")
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend
