"""What `rerankforge mine` and the public API's `mine_negatives` do: the collection loaded, its first stage built,
hard negatives mined and written in the layout asked for, with a summary beside the file."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Literal

from rerankforge.core.errors import DataError
from rerankforge.core.files import atomic_write_text
from rerankforge.core.processes import processes

from .mining import MiningConfig
from .retrieval import RetrieverConfig

logger = logging.getLogger(__name__)


@dataclass
class MineArgs:
    """Input and output of `mine`."""

    data: str = field(metadata={"help": "A BEIR folder, a pairs .jsonl/.csv file, hf:NAME for a Hugging Face "
                                        "dataset, or a dataset name looked up in $RERANKFORGE_DATA, the cache, "
                                        "then downloaded (e.g. scifact)."})
    output: str = field(metadata={"help": "Output file: .jsonl or .parquet. A summary lands beside it as "
                                          "NAME.summary.json."})
    split: str = field(default="train", metadata={"help": "Qrels split whose judged queries are mined."})
    extra_qrels: str | None = field(default=None, metadata={
        "help": "Labels file (BEIR qrels layout, e.g. what `rerankforge inspect` writes; a plain qrels .tsv works too) "
                "laid over the split, the latest label of a pair winning: a document labelled relevant is never mined "
                "as a negative and becomes a positive; a positive labelled 0 is dropped; labelled queries join the "
                "split, with their judgments from the collection's other qrels splits (a labelled test query keeps its "
                "test positives, and its test figures are then no longer held out: a warning says so)."})
    format: Literal["n-tuple", "triplet", "labeled-pair"] = field(
        default="n-tuple", metadata={"help": "n-tuple: a row per (query, positive) with all negatives; triplet: "
                                             "a row per negative; labeled-pair: a row per (query, doc, 0/1 label)."})
    layout: Literal["rerankforge", "sentence-transformers"] = field(
        default="rerankforge", metadata={
            "help": "rerankforge: ids, texts and first-stage scores in every row (what `rerankforge train` reads "
                    "best). sentence-transformers: the columns sentence_transformers.util.mine_hard_negatives "
                    "writes, ready for its CrossEncoderTrainer (n-tuple: query, positive, negative_1..n, rows short "
                    "of n negatives dropped; triplet: query, positive, negative; labeled-pair: query, positive, "
                    "label). `rerankforge train` reads both."})
    output_scores: bool = field(
        default=False, metadata={
            "help": "sentence-transformers layout: add the first-stage scores as mine_hard_negatives' "
                    "output_scores does (n-tuple, triplet: a `scores` list, positive first; labeled-pair: `score` "
                    "replaces `label`). The rerankforge layout always has them."})



def mine_to_file(args: MineArgs, retriever_config: RetrieverConfig, mining: MiningConfig) -> dict | None:
    """What `mine` does, printing nothing: the file and its summary written; returns the summary (None in the
    processes other than the first under a launcher: they shared the work, the first one wrote it)."""
    from .training_files.writing import (check_output_path, rows, sentence_transformers_rows, short_of_negatives, summary_path,
                              write_rows)
    from .mining import mine_negatives
    from .retrieval import build_retriever
    from .sources import load_collection

    output = check_output_path(args.output, args.format)
    if args.extra_qrels:
        from .labels import overlay_labels, read_labels

        read_labels(args.extra_qrels)  # a missing or broken labels file fails before the corpus is read
    collection = load_collection(args.data, split=args.split)
    labels = None
    if args.extra_qrels:
        labels = overlay_labels(collection, args.extra_qrels)
        collection = labels.collection
        for note in labels.notes:
            (logger.warning if note in labels.warnings else logger.info)("%s", note)
        if not collection.judged_query_ids():
            raise DataError(f"{args.extra_qrels}: its labels leave split {args.split!r} of {args.data} without a "
                            f"judged query; expected at least one query with a document labelled relevant")
    retriever = build_retriever(collection.corpus, retriever_config)
    result = mine_negatives(collection, retriever, mining)
    if not processes().is_main:  # under a launcher the processes shared the encoding; the first one writes
        return None
    if labels is not None:
        result.summary["extra_qrels"] = {"path": str(args.extra_qrels), **labels.counts, "notes": labels.notes}
    dropped = 0
    if args.layout == "sentence-transformers":
        records = sentence_transformers_rows(result.examples, args.format, mining.num_negatives, args.output_scores)
        dropped = short_of_negatives(result.examples, mining.num_negatives) if args.format == "n-tuple" else 0
    else:
        records = rows(result.examples, args.format)
    count = write_rows(output, records)
    result.summary["output"] = {"path": str(output), "format": args.format, "layout": args.layout, "rows": count}
    if args.layout == "sentence-transformers":
        result.summary["output"].update(output_scores=args.output_scores, examples_dropped_short_of_negatives=dropped)
    atomic_write_text(summary_path(output), json.dumps(result.summary, indent=2) + "\n")
    return result.summary
