"""What `rerankforge eval` and the public API's `evaluate` do: the collection loaded, the first stages read from run
files or run here, every reranker on the same candidates, and the Report (written as a folder if asked)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.core.errors import DataError, located, preview
from rerankforge.core.hardware import PRECISION_HELP, ScoringPrecision, use_cpu_threads
from rerankforge.core.processes import processes
from rerankforge.data_prep.dense import IndexType
from rerankforge.reranker.backends import BACKEND_HELP, ScoringBackend

from .report import REPORT_METRICS

logger = logging.getLogger(__name__)


@dataclass
class EvalArgs:
    data: str = field(metadata={"help": "A BEIR folder or a dataset name (as for `rerankforge mine`)."})
    split: str = field(default="test", metadata={"help": "Qrels split to score against."})
    run: list[str] = field(default_factory=list, metadata={
        "help": "First-stage TREC run files (qid Q0 docid rank score tag), each reranked by every --reranker."})
    retriever: list[str] = field(default_factory=list, metadata={
        "help": "First stages to run here instead of (or besides) --run: bm25, dense, hybrid."})
    model: str = field(default="sentence-transformers/all-MiniLM-L6-v2", metadata={
        "help": "Bi-encoder of --retriever dense/hybrid (folder or Hub id)."})
    index: IndexType = field(default="auto", metadata={
        "help": "Index of --retriever dense/hybrid: auto (by corpus size), flat, hnsw, ivf, ivfpq (faiss), qdrant or "
                "lancedb (at "
                "--engine_location), as for `rerankforge retrieve`."})
    engine_location: str | None = field(default=None, metadata={
        "help": "Where --index qdrant/lancedb lives: a folder, ':memory:' (Qdrant) or a server URL."})
    reranker: list[str] = field(default_factory=list, metadata={
        "help": "Rerankers: folders written by `rerankforge train`, CrossEncoder folders or Hub ids, LoRA adapter "
                "folders. A model carrying a fusion weight (chosen on its dev split) is also reported fused."})
    rerank: list[str] = field(default_factory=list, metadata={
        "help": "First stages (by name: bm25, dense, hybrid, or a run file's name) the rerankers rerank; default "
                "every one. The others are reported alone."})
    depth: int = field(default=50, metadata={"help": "Main reranking depth: candidates rescored per query."})
    k: list[str] = field(default_factory=lambda: ["10", "20", "50", "100"], metadata={
        "help": "Reranking depths of the metric-vs-depth curve: --k 10 20 50 (10,20,50 works too). The first stage "
                "is retrieved to the largest."})
    top_n: list[str] = field(default_factory=lambda: ["1", "3", "5", "10"], metadata={
        "help": "Passages handed to an LLM: hit rate and tokens sent for each n: --top_n 1 3 5 (1,3,5 works too)."})
    metrics: list[str] = field(default_factory=lambda: list(REPORT_METRICS), metadata={
        "help": "Metrics of the main table: FAMILY@N with FAMILY in nDCG, MRR, MAP, R, P, Hit."})
    primary: str = field(default="nDCG@10", metadata={
        "help": "Metric of the significance tests, per-query view and depth curve."})
    output: str | None = field(default=None, metadata={
        "help": "Report folder: report.md, metrics.json, per_query.csv, runs/*.trec, plots/*.png."})
    batch_size: int = field(default=64, metadata={
        "help": "Most pairs per forward pass when reranking (a pass holds 16384 padded tokens at most)."})
    precision: ScoringPrecision = field(default="auto", metadata={"help": "Scoring precision. " + PRECISION_HELP})
    backend: ScoringBackend = field(default="auto", metadata={"help": "What runs every --reranker. " + BACKEND_HELP})
    seed: int = field(default=0, metadata={"help": "Seeds the randomization tests and bootstraps."})


def evaluate_to_report(args: EvalArgs):
    """What `eval` does, printing nothing: the Report, and the report folder written when --output is given."""
    from rerankforge.core.outputs import check_output_folder
    from rerankforge.data_prep.first_stage import FirstStage, candidates_of
    from rerankforge.data_prep.retrieval import RetrieverConfig
    from rerankforge.data_prep.sources import load_collection

    from .report import EvalSettings, evaluate, retriever_signals
    from .report_files import write_report

    output = check_output_folder(args.output, "--output") if args.output is not None else None
    logger.info(f"using {use_cpu_threads()}")
    settings = EvalSettings(depth=args.depth, ks=_ints(args.k, "--k"), top_ns=_ints(args.top_n, "--top_n"),
                            metrics=tuple(args.metrics), primary=args.primary, seed=args.seed)
    if not args.run and not args.retriever:
        raise DataError("nothing to evaluate: give first-stage run files with --run, or --retriever bm25|dense|hybrid")
    collection = load_collection(args.data, split=args.split)
    first_stages = {name: run for name, run in _read_runs(args.run, collection)}
    rerankers = [_load_reranker(ref, args) for ref in args.reranker]  # bad paths fail early
    for reranker in rerankers:
        logger.info(f"{reranker.name}: precision {reranker.precision}")
    stage = FirstStage.build(collection.corpus, [*args.retriever, *retriever_signals(rerankers)],
                             RetrieverConfig(model=args.model, index=args.index, engine_location=args.engine_location))
    queries = collection.split_queries()
    first_stages.update(stage.search(queries, args.retriever, settings.max_depth))
    reranked = {name: run for name, run in first_stages.items() if not args.rerank or name in args.rerank}
    signals = stage.signals(queries, candidates_of(reranked, queries, settings.max_depth), retriever_signals(rerankers))
    report = evaluate(collection, first_stages, rerankers, settings, signals=signals, rerank=args.rerank or None)
    if output is not None and processes().is_main:
        write_report(report, output, collection)
    return report


def _read_runs(paths: list[str], collection):
    """Each run file, checked against the collection: every query and document id must exist, and the run
    must cover some judged query of the split."""
    from rerankforge.data_prep.runs import read_trec

    for path in paths:
        run = read_trec(path)
        unknown_queries = sorted(q for q in run if q not in collection.queries)
        unknown_docs = sorted({d for hits in run.values() for d, _ in hits if d not in collection.corpus})
        for kind, unknown in (("query", unknown_queries), ("document", unknown_docs)):
            if unknown:
                raise DataError(f"{located(path, _line_of(path, unknown[0], kind))}: {len(unknown)} {kind} id(s) not in "
                                f"{collection.name} ({preview(unknown)}); is this run from another collection?")
        judged = set(collection.judged_query_ids())
        if not judged & run.keys():
            raise DataError(f"{path}: no query of the run is judged in {collection.name}/{collection.split} "
                            f"({len(run)} run queries, e.g. {preview(sorted(run), 3)}; {len(judged)} judged, e.g. "
                            f"{preview(sorted(judged), 3)}); wrong --split?")
        covered = len(judged & run.keys())
        if covered < len(judged):  # said now, before the reranking, and again beside the numbers
            logger.warning(f"{path} ranks {covered} of the {len(judged)} judged queries of {collection.name}/"
                           f"{collection.split}; metrics are given over all {len(judged)} (a query it did not rank "
                           f"scores 0) and over its {covered}")
        yield Path(path).name.removesuffix(".trec"), run


def _line_of(path: str, value: str, kind: str) -> int | None:
    column = 0 if kind == "query" else 2
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if len(parts) > column and parts[column] == value:
                return number
    return None


def _ints(values, option: str) -> tuple[int, ...]:
    """`--k 10 20 50`, `--k 10,20,50` (the older form) or a mix, as (10, 20, 50); from Python, a list of ints or
    the same strings."""
    text = " ".join(map(str, values)) if isinstance(values, (list, tuple)) else str(values)
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise DataError(f"{option}: expected positive integers separated by spaces or commas (e.g. {option} 10 20 "
                        f"50), got {text!r}")
    return tuple(int(p) for p in parts)


def _load_reranker(ref: str, args: EvalArgs):
    from rerankforge.reranker.scoring import Reranker

    return Reranker.load(ref, batch_size=args.batch_size, precision=args.precision, backend=args.backend)
