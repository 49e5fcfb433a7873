"""`rerankforge eval`: score TREC run files against a split's relevance labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.data_prep.cli import add_command

from .metrics import DEFAULT_METRICS, MEASURES, mean, per_query

EVAL_HELP = "Score TREC run files against a split's relevance labels (nDCG, MRR, MAP, recall)."


@dataclass
class EvalArgs:
    data: str = field(metadata={"help": "A BEIR folder or a dataset name (as for `rerankforge mine`)."})
    run: list[str] = field(metadata={"help": "One or more TREC run files to score."})
    split: str = field(default="test", metadata={"help": "Qrels split to score against."})
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS),
                               metadata={"help": f"Metrics, from: {', '.join(MEASURES)}."})
    reranker: list[str] = field(default_factory=list, metadata={
        "help": "Rerankers (folder, Hub id or LoRA adapter folder) applied to the first --run's candidates."})
    depth: int = field(default=50, metadata={"help": "Candidates per query that the rerankers rescore."})
    output: str | None = field(default=None, metadata={"help": "Folder for the reranked TREC run files."})
    batch_size: int = field(default=64, metadata={"help": "Pairs per forward pass when reranking."})
    bf16: bool = field(default=False, metadata={"help": "Rerank under bf16 autocast (faster on recent GPUs/CPUs)."})


def add_eval_parser(subparsers) -> None:
    add_command(subparsers, "eval", EVAL_HELP, [EvalArgs], run_eval)


def run_eval(args: EvalArgs) -> int:
    from rerankforge.data_prep.runs import read_trec, write_trec
    from rerankforge.data_prep.sources import load_collection

    from .reranking import fuse

    collection = load_collection(args.data, split=args.split)
    rerankers = [_load_reranker(ref, args.batch_size, args.bf16) for ref in args.reranker]  # a bad path fails before work
    rows = []
    runs = {Path(path).name: read_trec(path) for path in args.run}
    for name, run in runs.items():
        rows.append((name, mean(per_query(collection.qrels, run, tuple(args.metrics)))))
    if rerankers:
        first_name, first = next(iter(runs.items()))
        candidates = {qid: hits[:args.depth] for qid, hits in first.items() if qid in collection.queries}
        for reranker in rerankers:
            scores = reranker.score_run(candidates, collection.queries, collection.doc_text, args.depth)
            variants = {"alone": 1.0, f"fused w={reranker.fusion_weight:g}": reranker.fusion_weight}
            for label, weight in variants.items():
                if label != "alone" and weight >= 1.0:
                    continue
                reranked = {qid: fuse(hits, scores[qid], weight) for qid, hits in candidates.items()}
                name = f"{reranker.name} {label} (top-{args.depth} of {first_name})"
                rows.append((name, mean(per_query(collection.qrels, reranked, tuple(args.metrics)))))
                if args.output:
                    tag = f"{reranker.name}.{'alone' if weight >= 1.0 else 'fused'}"
                    write_trec(Path(args.output) / f"{tag}.top{args.depth}.trec", reranked, tag=tag)
    print(format_table(rows, args.metrics, title=f"{collection.name}/{args.split} "
                                                  f"({len(collection.judged_query_ids())} judged queries)"))
    return 0


def format_table(rows: list[tuple[str, dict[str, float]]], metrics: list[str], title: str) -> str:
    width = max(len(name) for name, _ in rows)
    lines = [title, f"{'run':<{width}}  " + "  ".join(f"{m:>8}" for m in metrics)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{values[m]:8.4f}" for m in metrics) for name, values in rows]
    return "\n".join(lines)


def _load_reranker(ref: str, batch_size: int, bf16: bool):
    from .reranking import Reranker

    return Reranker.load(ref, batch_size=batch_size, bf16=bf16)
