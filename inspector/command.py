"""`rerankforge inspect`: the options, what they load, and the server."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.core.commands import add_command
from rerankforge.core.errors import ConfigError, DataError
from rerankforge.reranker.backends import BACKEND_HELP, ScoringBackend

from .state import InspectState, default_labels_path

logger = logging.getLogger(__name__)

INSPECT_HELP = ("See and fix the ranking in a browser: every evaluated query, first stage vs reranked; one query's "
                "two lists side by side; the training groups with likely false negatives; labelling (mouse and "
                "keyboard) into a labels file that `mine` and `train` take as --extra_qrels; training and eval "
                "charts.")


@dataclass
class InspectArgs:
    data: str = field(metadata={"help": "The collection: a BEIR folder or a dataset name (as for `rerankforge "
                                        "mine`)."})
    report: str | None = field(default=None, metadata={
        "help": "A report folder `rerankforge eval --output` wrote over this collection: the queries, their "
                "rankings and the eval charts."})
    model: str | None = field(default=None, metadata={
        "help": "A reranker folder (`rerankforge train` output): live scores and probabilities, live search, the "
                "training chart."})
    train_file: str | None = field(default=None, metadata={
        "help": "A training file (`rerankforge mine` or `score-teacher` output): its groups, with likely false "
                "negatives flagged."})
    split: str | None = field(default=None, metadata={
        "help": "Qrels split of the queries (default: the report's split, else test)."})
    labels: str | None = field(default=None, metadata={
        "help": "The labels file judgments are appended to (BEIR qrels layout plus time and annotator). Default: "
                "labels.tsv in the collection's folder where it is writable, else ./labels/NAME.labels.tsv."})
    annotator: str = field(default="", metadata={"help": "Name recorded with each judgment made on this page."})
    first_stage: str | None = field(default=None, metadata={
        "help": "Which first stage of the report to compare (default: the first one a reranker reranked)."})
    reranker_name: str | None = field(default=None, metadata={
        "help": "Which reranker of the report to compare (default: the first on that first stage)."})
    index: str | None = field(default=None, metadata={
        "help": "An index folder (`rerankforge index`): the search box runs the served pipeline over it. Without "
                "one it ranks the collection's BM25 top-k as the rerank endpoints do."})
    live_depth: int = field(default=20, metadata={
        "help": "First-stage documents of a query scored live by --model when its view opens."})
    backend: ScoringBackend = field(default="auto", metadata={"help": "What runs --model. " + BACKEND_HELP})
    host: str = field(default="127.0.0.1", metadata={
        "help": "Address to bind: 127.0.0.1 (this machine only); 0.0.0.0 exposes the labels to the network, so "
                "set --api_key_env then."})
    port: int = field(default=8790, metadata={"help": "Port to listen on."})
    api_key_env: str | None = field(default=None, metadata={
        "help": "Environment variable holding an API key the page and its API then need (as `serve` takes it)."})


def add_inspect_parser(subparsers) -> None:
    add_command(subparsers, "inspect", INSPECT_HELP, [InspectArgs], run_inspect)


def run_inspect(args: InspectArgs) -> int:
    import uvicorn

    from rerankforge.serve.connections import ConnectionLimits, uvicorn_config

    state = load_state(args)
    app = _app(state, args)
    print(f"inspect {state.collection.name}/{state.collection.split} on http://{args.host}:{args.port} "
          f"(labels: {state.labels_path})", flush=True)
    uvicorn.Server(uvicorn_config(app, args.host, args.port, ConnectionLimits())).run()
    return 0


def _app(state: InspectState, args: InspectArgs):
    from rerankforge.serve.config import api_key

    from .app import create_app

    return create_app(state, api_key(args))  # as `serve` reads it: a named variable that is unset is an error


def load_state(args: InspectArgs) -> InspectState:
    """The collection, report, reranker, training file and labels path the options name, each checked."""
    from rerankforge.data_prep.sources import load_collection, resolve_dataset_dir

    if args.live_depth < 1:
        raise ConfigError(f"--live_depth: expected a positive number of documents, got {args.live_depth}")
    split = args.split or _report_split(args.report) or "test"
    collection = load_collection(args.data, split=split)
    folder = Path(args.data) if Path(args.data).is_dir() else _dataset_dir(resolve_dataset_dir, args.data)
    labels = Path(args.labels) if args.labels else default_labels_path(folder, collection)
    if not labels.parent.is_dir():
        labels.parent.mkdir(parents=True)
    state = InspectState(collection, labels, annotator=args.annotator, live_depth=args.live_depth,
                         model_folder=args.model)
    if args.report:
        from .report_view import ReportView

        state.report = ReportView(args.report, collection, args.first_stage, args.reranker_name)
    if args.model:
        from rerankforge.reranker.scoring import Reranker

        from .live import LiveRanker

        state.live = LiveRanker(Reranker.load(args.model, backend=args.backend), collection, index=args.index)
    if args.train_file:
        from .training_view import TrainingView

        state.training = TrainingView(args.train_file)
    state.labels()  # a labels file that is there must read: its errors now, not on the first request
    return state


def _report_split(report: str | None) -> str | None:
    path = Path(report) / "metrics.json" if report else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("split")
    except ValueError:
        raise DataError(f"{path}: expected JSON (the metrics.json `rerankforge eval` writes)") from None


def _dataset_dir(resolve, name: str) -> Path | None:
    try:
        return resolve(name)
    except DataError:
        return None

