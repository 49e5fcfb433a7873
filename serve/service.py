"""`rerankforge index` (build a search index) and `rerankforge serve` (the HTTP service)."""

from __future__ import annotations

import logging
import sys

from rerankforge.core.commands import add_command, report_errors
from rerankforge.core.hardware import use_cpu_threads

from .connections import ConnectionLimits, fit_descriptor_limit, uvicorn_config
from .documents import ChunkingConfig
from .index import IndexConfig

logger = logging.getLogger(__name__)

INDEX_HELP = ("Build a search index for /search and /ask: documents from a BEIR folder, a JSONL file or a folder of "
              ".txt/.md files, split into overlapping token chunks, embedded, saved with a faiss index.")


def add_index_parser(subparsers) -> None:
    add_command(subparsers, "index", INDEX_HELP, [IndexConfig, ChunkingConfig], run_index,
                shares_work=True)


def run_index(config: IndexConfig, chunking: ChunkingConfig) -> int:
    from .index import build_index

    manifest = build_index(config, chunking)
    print(f"indexed {manifest['documents']} documents as {manifest['chunks']} chunks "
          f"({manifest['model']}, {manifest['index']} faiss index) into {config.out}")
    return 0


def serve_main(argv: list[str] | None = None) -> int:
    """Load the reranker (and index, generator), then serve until interrupted."""
    argv = sys.argv[1:] if argv is None else argv

    def run() -> int:
        import uvicorn

        from .config import load_serve_config

        config = load_serve_config(argv)
        limits = ConnectionLimits(fit_descriptor_limit(config.max_connections), config.header_timeout,
                                  config.keep_alive_timeout)
        logger.info(f"using {use_cpu_threads()}")
        reranker = load_reranker(config)
        logger.info(f"precision: {reranker.precision}")
        app = build_app(config, reranker)
        print(f"serving {config.reranker} on http://{config.host}:{config.port} "
              f"({'index ' + config.index if config.index else 'rerank only'})", flush=True)
        uvicorn.Server(uvicorn_config(app, config.host, config.port, limits)).run()
        return 0

    # timestamped log lines: the service logs what it keeps from clients (upstream failures, tracebacks) under
    # request ids
    return report_errors(run, on_interrupt="server stopped", argv=argv, timestamps=True)


def load_reranker(config):
    from rerankforge.reranker.scoring import Reranker

    return Reranker.load(config.reranker, max_length=config.max_length, batch_size=config.batch_size,
                         precision=config.precision, backend=config.backend)


def build_app(config, reranker=None):
    """Everything `rerankforge serve` loads, put together: reranker (unless given), optional index + generator,
    the app."""
    from .app import create_app
    from .generators import build_generator

    reranker = reranker if reranker is not None else load_reranker(config)
    pipeline = None
    if config.index:
        from .index import SearchIndex
        from .pipeline import Pipeline

        pipeline = Pipeline(SearchIndex.load(config.index, retriever=first_stage_for(config.retriever, reranker)),
                            reranker,
                            generator=build_generator(config), k=config.k, top_n=config.top_n,
                            fusion_weight=config.fusion_weight, min_relevance=min_relevance(config, reranker))
    return create_app(config, reranker, pipeline)


def min_relevance(config, reranker) -> float | None:
    """The server's threshold: `min_relevance`, or the one `min_precision` / `min_recall` read from the model's
    dev thresholds (a model without them is refused at start, naming the key)."""
    from rerankforge.core.errors import ConfigError, RerankforgeError

    if config.min_precision is None and config.min_recall is None:
        return config.min_relevance
    try:
        return reranker.calibration.min_relevance_for(config.min_precision, config.min_recall)
    except RerankforgeError as error:
        raise ConfigError(f"{config.reranker}: {error}") from None


def first_stage_for(retriever: str, reranker) -> str:
    """`retriever`, or for auto the first stage the reranker's served ranking was fitted on (else the one whose
    scores it combines, else dense)."""
    if retriever != "auto":
        return retriever
    from rerankforge.reranker.combiner import RETRIEVER_SIGNALS

    if reranker.combiner.first_stage:  # the one its served ranking was fitted on
        return reranker.combiner.first_stage
    used = [s for s in RETRIEVER_SIGNALS if s in reranker.combiner.signals]
    return "hybrid" if len(used) == 2 else used[0] if used else "dense"
