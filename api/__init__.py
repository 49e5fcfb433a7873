"""rerankforge as a library: the command line's work as calls.

    from rerankforge import Reranker, Pipeline, SearchIndex, mine_negatives, train, evaluate

`mine_negatives`, `train` and `evaluate` take the command's options as keyword arguments (the same names as
`rerankforge mine / train / eval --help` lists, dashes as underscores) and run exactly what the command runs;
`Reranker`, `SearchIndex` and `Pipeline` are the classes `serve` is built from. Importing this package is
cheap: each name loads its stage on first use.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rerankforge")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# name -> module it lives in; imported when first used, so `import rerankforge` stays light
_EXPORTS = {
    "Reranker": "rerankforge.reranker.scoring",
    "Pipeline": "rerankforge.serve.pipeline",
    "SearchIndex": "rerankforge.serve.index",
    "TrainConfig": "rerankforge.training.config",
    "load_collection": "rerankforge.data_prep.sources",
}
__all__ = sorted([*_EXPORTS, "mine_negatives", "train", "evaluate", "build_index"])


def mine_negatives(data: str, output: str, **options):
    """`rerankforge mine`: hard negatives for every judged (query, positive) of `data`'s split, written to
    `output` (.jsonl or .parquet) with a summary beside it; returns the summary (a dict). `options`: the
    command's, e.g. split="train", retriever="hybrid", num_negatives=7, min_rank=3, max_rank=30, format="n-tuple"."""
    from rerankforge.data_prep.mine import MineArgs, mine_to_file
    from rerankforge.data_prep.mining import MiningConfig
    from rerankforge.data_prep.retrieval import RetrieverConfig

    args, retriever, mining = _options("mine_negatives", {"data": data, "output": output, **options},
                                       MineArgs, RetrieverConfig, MiningConfig)
    return mine_to_file(args, retriever, mining)


def train(config: str | None = None, **options) -> dict:
    """`rerankforge train`: fine-tune a cross-encoder and save the reranker folder (`output_dir`); returns the run's
    metrics (dev first stage vs reranked, best step, throughput). `config`: a YAML recipe (a path, or the name of a
    shipped one such as "scifact_minilm_full.yaml"); `options` override its keys, e.g. train_file="mined.jsonl",
    data="scifact", output_dir="reranker", num_epochs=1. One process; for several, use `accelerate launch
    train/run.py`."""
    from rerankforge.training.cli import train_with

    return train_with(config, **options)


def evaluate(data: str, rerankers: list[str] | str = (), **options):
    """`rerankforge eval`: every first stage and every reranker on the same candidates; returns the Report
    (systems with their metrics, significance, depth curve, ...; `output=FOLDER` also writes report.md, plots
    and runs). `options`: the command's, e.g. split="test", retriever=["bm25", "dense", "hybrid"], depth=50."""
    from rerankforge.eval.evaluation import EvalArgs, evaluate_to_report

    rerankers = [rerankers] if isinstance(rerankers, str) else list(rerankers)
    (args,) = _options("evaluate", {"data": data, "reranker": rerankers, **options}, EvalArgs)
    return evaluate_to_report(args)


def build_index(docs: str, out: str, **options):
    """`rerankforge index`: chunk, embed and index `docs` (a BEIR folder, a .jsonl of {_id, title?, text}, or
    a folder of .txt/.md files) into the folder `out`, which `SearchIndex.load(out)` reads; returns its
    manifest (a dict). `options`: the command's, e.g. model=..., chunk_tokens=..., index="hnsw"."""
    from rerankforge.serve.documents import ChunkingConfig
    from rerankforge.serve.index import IndexConfig
    from rerankforge.serve.index import build_index as build

    config, chunking = _options("build_index", {"docs": docs, "out": out, **options}, IndexConfig, ChunkingConfig)
    return build(config, chunking, show_progress=False)


def _options(call: str, options: dict, *types) -> list:
    """One instance of each options dataclass in `types`, from the keyword arguments whose names it has."""
    from dataclasses import fields

    names = [{f.name for f in fields(kind)} for kind in types]
    unknown = sorted(set(options) - set().union(*names))
    if unknown:
        known = ", ".join(sorted(set().union(*names)))
        raise TypeError(f"{call}() got unexpected option(s) {', '.join(unknown)}; it takes {known}")
    return [kind(**{k: v for k, v in options.items() if k in keys}) for kind, keys in zip(types, names)]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rerankforge' has no attribute {name!r}; it exports {', '.join(__all__)}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
