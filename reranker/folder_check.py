"""Checks of a reranker folder before anything is scored with it, each failure one line naming the folder.

transformers loads a broken folder silently or fails deep inside: without tokenizer files it builds a 5-token
tokenizer that maps every word to [UNK] (every document then gets the same score), a truncated safetensors file
fails in its Rust reader, a `config.json` holding a list fails in an attribute lookup. Here, before the load:
config.json is a JSON object of a known `model_type` with one output label; a tokenizer is there (tokenizer.json
that parses, or the vocabulary files a slow tokenizer reads); the weights file is complete (a safetensors
header whose tensors fit the file). After the tokenizer loads: its vocabulary fits the model's embeddings and the
length scored at fits its position embeddings. Whatever still fails while the weights load is reported in one
line too (`weights_error`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from rerankforge.core.errors import ModelNotFoundError

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model")
"""Any one of these holds a vocabulary: the fast tokenizer's file, or a slow tokenizer's (BERT's, GPT-2's with
merges.txt, SentencePiece's)."""

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def check_folder_files(folder: Path, adapter: bool, weights: bool = True) -> dict:
    """The checks that need no model loaded. Returns config.json's content ({} for an adapter without one).
    `weights`: False where another runtime scores (ONNX) and the torch weights are not read."""
    config = {} if adapter and not (folder / "config.json").exists() else _model_config(folder)
    _check_tokenizer_files(folder)
    if weights:
        names = ADAPTER_WEIGHT_FILES if adapter else WEIGHT_FILES
        found = [folder / name for name in names if (folder / name).is_file()]
        if not found:
            raise ModelNotFoundError(f"{folder}: no weights; expected one of {', '.join(names)}, found "
                                     f"{sorted(p.name for p in folder.iterdir())[:10]}")
        if found[0].suffix == ".safetensors":
            check_safetensors(found[0])
    return config


def _model_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelNotFoundError(f"{folder}: no config.json (the model's architecture); is this a model "
                                 f"folder?") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelNotFoundError(f"{path}: expected a JSON object (the model's configuration), got unreadable "
                                 f"content ({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
    if not isinstance(config, dict):
        raise ModelNotFoundError(f"{path}: expected a JSON object (the model's configuration), got a JSON "
                                 f"{type(config).__name__}")
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ModelNotFoundError(f"{path}: expected a model_type this transformers knows (bert, xlm-roberta, ...), "
                                 f"got {model_type!r}")
    labels = config.get("num_labels", len(config["id2label"]) if isinstance(config.get("id2label"), dict) else 1)
    if labels != 1:
        raise ModelNotFoundError(f"{path}: expected a single-logit reranker (num_labels=1), got a classifier with "
                                 f"{labels} labels")
    return config


def _check_tokenizer_files(folder: Path) -> None:
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if not present:
        raise ModelNotFoundError(f"{folder}: no tokenizer; expected tokenizer.json (or a slow tokenizer's "
                                 f"vocabulary: {', '.join(TOKENIZER_FILES[1:])}) beside the weights, found "
                                 f"{sorted(p.name for p in folder.iterdir())[:10]}")
    if "tokenizer.json" in present:
        path = folder / "tokenizer.json"
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ModelNotFoundError(f"{path}: expected a tokenizer (JSON), got unreadable content "
                                     f"({type(error).__name__}: {str(error).splitlines()[0][:120]})") from None
        if not isinstance(content, dict) or not isinstance(content.get("model"), dict):
            raise ModelNotFoundError(f"{path}: expected a tokenizer (a JSON object with a 'model'), got "
                                     f"{type(content).__name__ if not isinstance(content, dict) else 'none'}")


def check_safetensors(path: Path) -> None:
    """A complete safetensors file: an 8-byte header length, a JSON header, and every tensor's bytes within the
    file (a truncated copy, an empty file or another file under this name fails here, not in the reader)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if length is None or not 2 <= length <= min(size - 8, 100_000_000):
            raise ModelNotFoundError(f"{path}: expected safetensors weights, got a {size}-byte file without a "
                                     f"valid header (truncated, or another file?)")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, ValueError):
            raise ModelNotFoundError(f"{path}: expected safetensors weights, got a file whose header is not "
                                     f"JSON (truncated, or another file?)") from None
    if not isinstance(header, dict):
        raise ModelNotFoundError(f"{path}: expected safetensors weights, got a header that is not a JSON object")
    ends = [t["data_offsets"][1] for name, t in header.items()
            if name != "__metadata__" and isinstance(t, dict) and isinstance(t.get("data_offsets"), list)
            and len(t["data_offsets"]) == 2]
    if len(ends) != len([name for name in header if name != "__metadata__"]):
        raise ModelNotFoundError(f"{path}: expected safetensors weights, got a header with malformed tensors")
    if not ends:
        raise ModelNotFoundError(f"{path}: holds no tensors")
    if 8 + length + max(ends) > size:
        raise ModelNotFoundError(f"{path}: truncated: its tensors need {8 + length + max(ends)} bytes, the file "
                                 f"has {size}")


def check_tokenizer_fits(folder: Path, config: dict, tokenizer, max_length: int) -> None:
    """The tokenizer belongs to the model: its ids fit the embeddings (and cover most of them), and `max_length`
    tokens fit the position embeddings."""
    vocab = config.get("vocab_size")
    tokens = len(tokenizer)
    if isinstance(vocab, int) and vocab > 0:
        if tokens > vocab or tokens < vocab // 2:
            raise ModelNotFoundError(f"{folder}: the tokenizer has {tokens} tokens but the model's embeddings hold "
                                     f"{vocab}: tokenizer and weights are not from the same model")
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        usable = positions - position_offset(config)
        if max_length > usable:
            raise ModelNotFoundError(f"{folder}: max_length {max_length} exceeds the {usable} positions the model "
                                     f"has (max_position_embeddings {positions}); set max_length to at most "
                                     f"{usable}")


def usable_positions(config: dict) -> int | None:
    positions = config.get("max_position_embeddings")
    return positions - position_offset(config) if isinstance(positions, int) and positions > 0 else None


def position_offset(config: dict) -> int:
    """RoBERTa-style models number positions from padding_idx + 1, so two of theirs are never used."""
    return (config.get("pad_token_id") or 0) + 1 if config.get("model_type") in ("roberta", "xlm-roberta",
                                                                                "camembert") else 0


def weights_error(folder: Path, error: Exception) -> ModelNotFoundError:
    first = (str(error).strip().splitlines() or [""])[0][:200]
    return ModelNotFoundError(f"{folder}: the weights could not be loaded ({type(error).__name__}: {first})")
