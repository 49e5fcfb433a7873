"""`rerankforge demo`: the main job, end to end on a small default.

SciFact with the packaged all-MiniLM-L6-v2: dense first stage -> a warm start on the corpus alone (pseudo-queries,
the hybrid first stage distilled: configs/warm_start.yaml) -> hard negatives mined from the train split -> the
warm-started reranker fine-tuned on the labels (configs/demo_scifact.yaml), its served ranking (the reranker weighed
against the first stage's order) fitted on the dev split -> the eval report on the test split: BM25, dense and hybrid alone, the hybrid top-k
reranked by the reranker alone and by the served ranking. Both trainings run on a time budget (`max_minutes`),
so a faster CPU or a GPU trains more in the same wall time; the demo prints what each trained and why it stopped."""

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
from rerankforge.core.hardware import PRECISION_HELP, ScoringPrecision, use_cpu_threads
from rerankforge.core.models import DEFAULT_BI_ENCODER
from rerankforge.data_prep.cli import format_summary
from rerankforge.data_prep.dense import IndexType
from rerankforge.reranker.backends import BACKEND_HELP, ScoringBackend
from rerankforge.training.warm_start import WARM_START_CONFIG

logger = logging.getLogger(__name__)

DEMO_HELP = ("Run the whole pipeline on a small default -- mine, train, eval -- and print the before/after table "
             "(SciFact and all-MiniLM-L6-v2 unless told otherwise).")
DEMO_CONFIG = recipe("demo_scifact.yaml")  # installed with the package (a checkout's configs/ when editable)


@dataclass
class DemoArgs:
    data: str = field(default="scifact", metadata={
        "help": "BEIR folder or dataset name: its train split is mined and trained on, its test split reported."})
    output_dir: str = field(default="outputs/demo", metadata={
        "help": "Where the mined data, the reranker and the report go."})
    model: str = field(default=DEFAULT_BI_ENCODER, metadata={
        "help": "Bi-encoder (folder or Hub id): the first stage, and the reranker's starting point."})
    index: IndexType = field(default="auto", metadata={
        "help": "Index of the dense first stage the demo mines with and evaluates: auto (by corpus size), faiss flat, "
                "hnsw, ivf, ivfpq, or an engine (qdrant, lancedb) at --engine_location, as for `rerankforge retrieve`."})
    engine_location: str | None = field(default=None, metadata={
        "help": "Where --index qdrant/lancedb lives: a folder, ':memory:' (Qdrant) or a server URL."})
    config: str = field(default=str(DEMO_CONFIG), metadata={
        "help": "Training config; the demo sets its train_file, data, model, output_dir and dev_queries."})
    warm_start: str = field(default=str(WARM_START_CONFIG), metadata={
        "help": "Warm-start config (`rerankforge warm-start`): before any label, the reranker learns the hybrid first "
                "stage's ranking of pseudo-queries drawn from the corpus, and the labelled training starts from "
                "it. 'none': the labelled training starts from the bi-encoder with a new head."})
    warm_start_minutes: float | None = field(default=3.5, metadata={
        "help": "Time budget of the warm start's training, in minutes (3.5 keeps the demo within 20 minutes on a "
                "2-core CPU without native bf16; none: the warm-start config's max_minutes)."})
    depth: int = field(default=20, metadata={
        "help": "Test candidates reranked per query (20 keeps the default demo within 15 minutes in fp32 on 2 CPU "
                "cores; SciFact's hybrid recall@20 is 0.89, @50 0.93)."})
    dev_share: float = field(default=0.1, metadata={
        "help": "Share of the train queries held out as the dev split (at most the config's dev_queries)."})
    precision: ScoringPrecision = field(default="auto", metadata={
        "help": "Precision of the test scoring (training follows the config's mixed_precision). " + PRECISION_HELP})
    backend: ScoringBackend = field(default="auto", metadata={
        "help": "What runs the test scoring (auto: torch, since a freshly trained reranker has no checked "
                "export); onnx and onnx-int8 export the trained reranker first (`rerankforge export`, checked on "
                "the dev split and refused if it ranks it differently). " + BACKEND_HELP})


def add_demo_parser(subparsers) -> None:
    add_command(subparsers, "demo", DEMO_HELP, [DemoArgs], run_demo)


def run_demo(args: DemoArgs) -> int:
    from rerankforge.data_prep.mining import MiningConfig
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.eval.report_files import console_table, write_report
    from rerankforge.training.config import load_config
    from rerankforge.training.dev.dev_choices import train_choosing_on_dev
    from rerankforge.training.warm_start import WarmStartArgs, warm_start

    started = time.perf_counter()
    out = Path(args.output_dir)
    if not Path(args.config).is_file():
        raise ConfigError(f"--config: training config not found: {args.config}")
    warm = args.warm_start.lower() != "none"
    if warm and not Path(args.warm_start).is_file():
        raise ConfigError(f"--warm_start: warm-start config not found: {args.warm_start} (or 'none' to skip it)")
    train_split = load_collection(args.data, split="train")
    test = load_collection(args.data, split="test")
    timings = {}
    logger.info(f"using {use_cpu_threads()}")

    steps = 5 if warm else 4
    print(f"[1/{steps}] dense first stage ({args.model}) over {train_split.name} ({len(train_split.corpus)} documents); "
          "the corpus is encoded once and cached")
    dense = build_retriever(train_split.corpus, RetrieverConfig(retriever="dense", model=args.model, index=args.index,
                                                                engine_location=args.engine_location))
    dense.embeddings  # encode (or read from the cache) now, so the timings below say where time goes
    timings["first stage"] = time.perf_counter() - started

    start_from = args.model
    if warm:
        print(f"[2/{steps}] warm start on the corpus alone ({Path(args.warm_start).name}): pseudo-queries from "
              f"{train_split.name}'s passages, the hybrid first stage's ranking of them distilled into a "
              "cross-encoder; no label read")
        step = time.perf_counter()
        start_from = warm_start(WarmStartArgs(data=args.data, output_dir=str(out / "warm-start"), model=args.model,
                                              first_stage_model=args.model, config=args.warm_start,
                                              max_minutes=args.warm_start_minutes), dense=dense)
        print(f"    trained {_trained(start_from)}")
        timings["warm start"] = time.perf_counter() - step

    mined = out / "mined.train.jsonl"
    train_queries = len(train_split.judged_query_ids())
    dev = dev_queries(train_queries, args.dev_share, _config_value(args.config, "dev_queries", 80))
    overrides = ["--data", args.data, "--model", start_from, "--output_dir", str(out / "reranker"),
                 "--first_stage_model", args.model, "--dev_queries", str(dev)]
    if args.data != _config_value(args.config, "data", args.data):  # the config's license is its own data's
        overrides += ["--data_license", "none"]
    # A bad config stops here, before any work; the training file it names is mined below.
    config = load_config(["--config", args.config, *overrides, "--train_file", args.config])
    config = dataclasses.replace(config, train_file=str(mined))
    mining = MiningConfig(num_negatives=config.num_negatives, min_rank=3, max_rank=30, sampling="random", seed=13)
    print(f"[{steps - 2}/{steps}] mining {mining.num_negatives} hard negatives per pair from dense ranks {mining.min_rank}-"
          f"{mining.max_rank} of {train_split.name}/train ({train_queries} queries)")
    step = time.perf_counter()
    _mine(train_split, dense, mining, mined)
    timings["mining"] = time.perf_counter() - step

    print(f"[{steps - 1}/{steps}] training the reranker on the labels from "
          f"{'the warm start' if warm else args.model} ({Path(args.config).name}; {dev} train queries held out as dev)")
    step = time.perf_counter()
    train_choosing_on_dev(config)
    print(f"    trained {_trained(config.output_dir)}")
    timings["training"] = time.perf_counter() - step

    print(f"[{steps}/{steps}] evaluating on {test.name}/test: bm25, dense and hybrid alone; the hybrid top-{args.depth} reranked")
    step = time.perf_counter()
    report = _evaluate(args, test, dense, config.output_dir)
    written = write_report(report, out / "report", test)
    timings["evaluation"] = time.perf_counter() - step

    print()
    print(console_table(report))
    print("\n" + ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in timings.items()) +
          f"; total {(time.perf_counter() - started) / 60:.1f} min")
    print(f"reranker: {config.output_dir}\nreport:   {written['report']} (plots, per-query CSV, runs beside it)")
    for split in (train_split, test):
        for note in split.notes:
            print(f"data ({split.split}): {note}")
    return 0


def _mine(train_split, dense, mining, mined: Path) -> None:
    """The hard negatives of the train split, written with their summary beside them."""
    from rerankforge.core.files import atomic_write_text
    from rerankforge.data_prep.training_files.writing import rows, summary_path, write_rows
    from rerankforge.data_prep.mining import mine_negatives

    result = mine_negatives(train_split, dense, mining)
    write_rows(mined, rows(result.examples, "n-tuple"))
    atomic_write_text(summary_path(mined), json.dumps(result.summary, indent=2) + "\n")
    print(format_summary(result.summary))


def _evaluate(args: DemoArgs, test, dense, reranker_folder: str):
    """bm25, dense and hybrid on the test split, and the hybrid top-`depth` reranked: the report."""
    from rerankforge.data_prep.first_stage import FirstStage, candidates_of
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.eval.report import EvalSettings, evaluate, retriever_signals
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.cli.export import ExportArgs, run_export

    settings = EvalSettings(depth=args.depth, ks=tuple(k for k in (5, 10, 20, 50) if k <= args.depth))
    stage = FirstStage({"dense": dense, "bm25": build_retriever(test.corpus, RetrieverConfig(retriever="bm25"))})
    queries = test.split_queries()
    first_stages = stage.search(queries, ["bm25", "dense", "hybrid"], settings.max_depth)
    if args.backend in ("onnx", "onnx-int8"):
        run_export(ExportArgs(model=reranker_folder, backend=args.backend))  # refused (exit 2) if it ranks unlike torch
    reranker = Reranker.load(reranker_folder, precision=args.precision, batch_size=64, backend=args.backend)
    logger.info(f"test scoring: {reranker.backend}")
    candidates = candidates_of({"hybrid": first_stages["hybrid"]}, queries, settings.max_depth)
    signals = stage.signals(queries, candidates, retriever_signals([reranker]))
    return evaluate(test, first_stages, [reranker], settings, signals=signals, rerank=["hybrid"])


def _trained(folder: str) -> str:
    """What a training run did and why it stopped, from its metrics.json."""
    metrics = json.loads((Path(folder) / "metrics.json").read_text())
    return f"{metrics['steps']} updates ({metrics['epochs']:g} epochs), precision {metrics['precision']}; stopped by " \
           f"{metrics['stopped_by']}"


def dev_queries(train_queries: int, share: float, most: int) -> int:
    """Train queries held out for the dev split: `share` of them, at least 3 (a fusion weight chosen on fewer
    is noise), at most `most`; none when there are under 10."""
    return 0 if train_queries < 10 else min(most, max(3, round(train_queries * share)))


def _config_value(path: str, key: str, default):
    import yaml

    values = yaml.safe_load(Path(path).read_text()) or {}
    return values.get(key, default) if isinstance(values, dict) else default
