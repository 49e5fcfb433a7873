"""`rerankforge warm-start`: a cross-encoder that ranks the user's corpus before any label is spent.

A cross-encoder made from a bi-encoder (all-MiniLM-L6-v2 with a new head) has never scored a (query, passage)
pair; a few hundred labelled updates cannot teach it that and the domain at once. The warm start teaches the
first from the corpus alone:

1. pseudo-queries drawn from the corpus (data_prep/pseudo_queries.py: a passage's title, or a sentence cut out
   of it, with the passage as the positive);
2. their candidates mined from the hybrid first stage (dense + BM25, scores fused after standardising each over
   the query's list), so every group carries the first stage's scores of its documents;
3. training on them with `listwise_kl`: the student learns the hybrid's order of each group (distillation) and,
   mixed in by `label_loss_weight`, to put the passage the query came from first.

The result is a reranker folder like any other: score it, serve it, or fine-tune it on labels (`model:` this
folder; the head and its scores are kept). Every step is cached in OUTPUT_DIR: the pseudo-queries and their
mined groups (remade only when their settings change), the training (checkpoints; a rerun resumes)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.configs import recipe
from rerankforge.core.commands import add_command
from rerankforge.core.errors import ConfigError
from rerankforge.core.models import DEFAULT_BI_ENCODER
from rerankforge.data_prep.pseudo_queries import QUERY_SOURCE_HELP, QuerySource

logger = logging.getLogger(__name__)

WARM_START_HELP = ("Warm-start a cross-encoder on the corpus alone, before any label: pseudo-queries from the "
                   "passages, candidates and scores from the hybrid first stage, distilled (cached, resumable).")
WARM_START_CONFIG = recipe("warm_start.yaml")
GROUPS_FILE = "pseudo.train.jsonl"
SETTINGS_FILE = "pseudo.settings.json"


@dataclass
class WarmStartArgs:
    data: str = field(default="scifact", metadata={
        "help": "BEIR folder or dataset name whose corpus gives the pseudo-queries (no relevance label is read)."})
    output_dir: str = field(default="outputs/warm-start", metadata={
        "help": "Where the pseudo-queries, their mined groups and the warm-started reranker (OUTPUT_DIR/reranker) go."})
    model: str = field(default=DEFAULT_BI_ENCODER, metadata={
        "help": "The encoder to warm-start (folder or Hub id): a bi-encoder or plain encoder checkpoint."})
    first_stage_model: str = field(default=DEFAULT_BI_ENCODER, metadata={
        "help": "Bi-encoder of the hybrid first stage whose candidates and scores are distilled."})
    config: str = field(default=str(WARM_START_CONFIG), metadata={
        "help": "Training config of the warm start (loss, steps or max_minutes, lengths); this command sets its "
                "train_file, data, model, first_stage_model and output_dir, and trains without a dev split."})
    num_queries: int = field(default=3000, metadata={
        "help": "Pseudo-queries drawn (one per passage, passages at random); fewer when the corpus has fewer."})
    query_source: QuerySource = field(default="auto", metadata={"help": QUERY_SOURCE_HELP})
    max_rank: int = field(default=30, metadata={
        "help": "Deepest hybrid rank a group's documents are drawn from (at random, seeded)."})
    max_minutes: float | None = field(default=None, metadata={
        "help": "Time budget of the training, in minutes (overrides the config's max_minutes)."})
    seed: int = field(default=13, metadata={"help": "Seeds which passages give queries, and the sampling."})


def add_warm_start_parser(subparsers) -> None:
    add_command(subparsers, "warm-start", WARM_START_HELP, [WarmStartArgs], run_warm_start)


def run_warm_start(args: WarmStartArgs) -> int:
    folder = warm_start(args)
    print(f"warm-started reranker: {folder}\nfine-tune it on labels with `rerankforge train --model {folder} ...`")
    return 0


def warm_start(args: WarmStartArgs, dense=None) -> str:
    """Make (or find made) the pseudo-query groups, train on them, return the reranker folder. `dense` may be the
    caller's dense retriever over the same corpus and model (the demo's), so the corpus is not encoded twice."""
    from rerankforge.data_prep.sources import load_collection

    from .config import load_config
    from .loop import train

    if args.num_queries < 10:
        raise ConfigError(f"--num_queries: expected at least 10 pseudo-queries, got {args.num_queries}")
    if args.max_rank < 2:
        raise ConfigError(f"--max_rank: expected 2 or more (rank 1 is usually the positive), got {args.max_rank}")
    if not Path(args.config).is_file():
        raise ConfigError(f"--config: training config not found: {args.config}")
    out = Path(args.output_dir)
    groups_file = out / GROUPS_FILE
    overrides = ["--train_file", args.config, "--data", args.data, "--model", args.model, "--dev_queries", "0",
                 "--first_stage_model", args.first_stage_model, "--output_dir", str(out / "reranker")]
    if args.max_minutes is not None:
        overrides += ["--max_minutes", str(args.max_minutes)]
    # A bad config stops here, before any work; the training file it names is made below.
    config = dataclasses.replace(load_config(["--config", args.config, *overrides]), train_file=str(groups_file))
    collection = load_collection(args.data, split=_any_split(args.data))
    settings = {"data": collection.name, "documents": len(collection.corpus), "num_queries": args.num_queries,
                "query_source": args.query_source, "max_rank": args.max_rank, "seed": args.seed,
                "num_negatives": config.num_negatives, "first_stage_model": args.first_stage_model}
    settings_file = out / SETTINGS_FILE
    if groups_file.is_file() and settings_file.is_file() and json.loads(settings_file.read_text()) == settings:
        logger.info(f"pseudo-queries: {groups_file} (made earlier with the same settings)")
    else:
        _make_groups(collection, args, config.num_negatives, groups_file, dense)
        from rerankforge.core.files import atomic_write_text

        atomic_write_text(settings_file, json.dumps(settings, indent=2) + "\n")
    train(config)
    return config.output_dir


def _make_groups(collection, args: WarmStartArgs, num_negatives: int, path: Path, dense) -> None:
    from rerankforge.core.files import atomic_write_text
    from rerankforge.data_prep.collection import Collection
    from rerankforge.data_prep.training_files.writing import rows, summary_path, write_rows
    from rerankforge.data_prep.mining import MiningConfig, mine_negatives
    from rerankforge.data_prep.pseudo_queries import pseudo_queries

    started = time.perf_counter()
    queries = pseudo_queries(collection.corpus, args.num_queries, args.query_source, args.seed)
    if len(queries) < 10:
        raise ConfigError(f"--query_source {args.query_source}: {collection.name} gives {len(queries)} pseudo-queries "
                          f"(passages too short, or none titled); expected at least 10. Try --query_source auto")
    pseudo = Collection(name=f"{collection.name}-pseudo", corpus=collection.corpus,
                        queries={q.query_id: q.query for q in queries},
                        qrels={q.query_id: {q.doc_id: 1} for q in queries}, split="pseudo")
    retriever = first_stage(collection.corpus, args.first_stage_model, dense)
    mining = MiningConfig(num_negatives=num_negatives, min_rank=1, max_rank=args.max_rank, sampling="random",
                          seed=args.seed)
    logger.info(f"pseudo-queries: {len(queries)} from {collection.name}'s {len(collection.corpus)} passages "
                f"({sum(q.from_title for q in queries)} titles); mining {num_negatives} documents each from "
                f"hybrid ranks 1-{args.max_rank}")
    result = mine_negatives(pseudo, retriever, mining)
    by_id = {q.query_id: q for q in queries}
    made = [_as_shown(row, by_id[row["query_id"]], collection.corpus) for row in rows(result.examples, "n-tuple")]
    write_rows(path, iter(made))
    summary = {**result.summary, "pseudo_queries": len(queries), "from_titles": sum(q.from_title for q in queries),
               "seconds_with_queries": round(time.perf_counter() - started, 1)}
    atomic_write_text(summary_path(path), json.dumps(summary, indent=2) + "\n")


def first_stage(corpus: dict, model: str, dense=None):
    """The teacher: hybrid dense + BM25, each list's scores standardised (z-score) before they are summed, so the
    fused score keeps how far apart two documents are, not only their order (what RRF keeps)."""
    from rerankforge.data_prep.bm25 import BM25Retriever
    from rerankforge.data_prep.hybrid import HybridRetriever
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever

    dense = dense or build_retriever(corpus, RetrieverConfig(retriever="dense", model=model))
    return HybridRetriever([dense, BM25Retriever(corpus)], method="score", normalization="zscore")


def _as_shown(row: dict, query, corpus: dict) -> dict:
    """The mined row as the reranker is to see it: the positive with its query cut out; a title query's group
    shown without titles, so no document gives itself away by having one."""
    row = dict(row, positive=query.positive)
    if query.from_title:
        row["negatives"] = [" ".join(corpus[d].text.split()) for d in row["negative_ids"]]
    return row


def _any_split(data: str) -> str:
    """A split to load `data` by: only its corpus is used, so whichever qrels it has (train first)."""
    from rerankforge.data_prep.sources import resolve_dataset_dir

    folder = Path(data) if Path(data).is_dir() else None
    if folder is None:
        try:
            folder = resolve_dataset_dir(data)
        except Exception:  # noqa: BLE001 -- a file or hf: source: its loader takes the default split
            return "train"
    for split in ("train", "dev", "test"):
        if (folder / "qrels" / f"{split}.tsv").is_file():
            return split
    return "train"
