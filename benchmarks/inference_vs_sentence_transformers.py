"""Scoring speed and quality of a trained reranker: sentence-transformers CrossEncoder vs rerankforge's backends.

One run, side by side, on the same workload: every judged query of a split (SciFact test: 300) with its
first-stage top-`depth` (dense, 50), texts cut at the same max length (the model's, from rerankforge.json).
Each system scores each query's `depth` pairs as one call, as a reranking service does; the systems take turns
query by query (the order rotating), so a noisy machine slows them alike and the ratios hold. Printed per
system: pairs/s over all queries, p50/p95 milliseconds per query, nDCG@10 of the reranked top-`depth`
(the reranker's score alone), and the ratio / difference against sentence-transformers torch.

Systems (`--systems`, comma-separated):
  st-torch            CrossEncoder(model).predict, its defaults (torch, fp32, batch_size 32);
                      st-torch@fp16 / @bf16 loads the weights in half precision (on a GPU)
  st-onnx             CrossEncoder(model, backend="onnx"): sentence-transformers' own ONNX export. Its
                      backend needs optimum-onnx, which pins transformers < 4.58; where it can't import
                      here, `--st-onnx-python` names the python of another environment (sentence-transformers
                      5 + optimum-onnx) that runs that system on the same workload, in turns of its own
  torch, onnx, onnx-int8, ...   rerankforge's Reranker.load(model, backend=...); torch@fp16 etc. sets
                      its precision (default --precision, auto)
  student:BACKEND     the same for the distilled `--student`
  cascade:S>T:K       the student on backend S scores every candidate, the teacher (--model) on backend T
                      rescores the student's top K; the ranking is the teacher's top K, then the student's rest
                      (e.g. cascade:onnx-int8>onnx-int8:8)
  top:T:K             the first stage as the cascade's student: the teacher on backend T scores only the
                      first stage's top K (the workload's order); the rest stay below in that order
                      (e.g. top:onnx-int8:20)
  auto                rerankforge's backend auto: the fastest path `rerankforge export` checked on this CPU kind
  Any system takes /LEN for a max length of its own (e.g. student:onnx-int8/96): pairs cut shorter.

`--mode all` scores every pair in one call instead (offline scoring, e.g. eval): with `--batch-sizes` it is the
GPU batch-size sweep. `--write-bundle` saves the workload (texts, qrels) as one gzipped JSON file and
`--bundle` reads it back, for a machine without the first stage (faiss) or the dataset.

    python benchmarks/inference_vs_sentence_transformers.py --model outputs/scifact/reranker-minilm-full \\
        --student outputs/scifact/reranker-minilm-l3 --systems st-torch,torch,onnx,onnx-int8,student:onnx-int8
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="reranker folder (configs/scifact_minilm_full.yaml's output)")
    parser.add_argument("--st-model", default=None,
                        help="folder for the sentence-transformers systems (default --model); a copy without onnx/ "
                             "makes st-onnx export the model its own way instead of loading rerankforge's file")
    parser.add_argument("--student", default=None, help="distilled student folder, for the student:BACKEND systems")
    parser.add_argument("--systems", default="st-torch,st-onnx,torch,onnx,onnx-int8")
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--run", default=None, help="first-stage TREC run (default: dense, computed here)")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--queries", type=int, default=0, help="first N queries only (0: all)")
    parser.add_argument("--query-ids", default=None,
                        help="a JSON list of query ids: only these")
    parser.add_argument("--dev-split-of", default=None,
                        help="a reranker folder: only the train queries its train_config.json held out as dev "
                             "(with a bundle of --split train)")
    parser.add_argument("--max-length", type=int, default=None, help="default: the model's (rerankforge.json)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", help="rerankforge torch backends' precision")
    parser.add_argument("--mode", choices=["per_query", "all"], default="per_query")
    parser.add_argument("--batch-sizes", default="32", help="comma-separated; more than one: a sweep")
    parser.add_argument("--bundle", default=None, help="read the workload from this file (see --write-bundle)")
    parser.add_argument("--write-bundle", default=None, help="write the workload to this file and exit")
    parser.add_argument("--st-onnx-python", default=None, help="python of an environment where ST's onnx imports")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--repeats", type=int, default=1, help="passes over the queries (mode all: repeats)")
    args = parser.parse_args()

    workload = read_bundle(args.bundle) if args.bundle else build_workload(args)
    if args.write_bundle:
        with gzip.open(args.write_bundle, "wt", encoding="utf-8") as out:
            json.dump(workload, out)
        print(f"wrote {args.write_bundle}: {len(workload['queries'])} queries")
        return
    wanted = wanted_queries(args)
    if wanted is not None:
        workload["queries"] = {q: v for q, v in workload["queries"].items() if q in wanted}
    if args.queries:
        keep = list(workload["queries"])[:args.queries]
        workload["queries"] = {q: workload["queries"][q] for q in keep}
    max_length = args.max_length or model_max_length(args.model)
    print(machine_line(args.device))
    print(f"workload: {len(workload['queries'])} queries x top-{args.depth}, max_length {max_length}, "
          f"mode {args.mode}", flush=True)

    results = []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        systems = [s for s in args.systems.split(",") if s]
        local = [s for s in systems if not s.startswith("st-onnx") or st_onnx_importable()]
        scorers = {name: make_scorer(name, args, max_length, batch_size) for name in local}
        rows = measure(scorers, workload, args) if scorers else []
        if any(s.startswith("st-onnx") for s in systems) and not any(s.startswith("st-onnx") for s in local):
            rows += st_onnx_elsewhere(args, workload, max_length, batch_size)
        for row in rows:
            row["batch_size"] = batch_size
        results += rows
        print_table(rows, batch_size, "query" if args.mode == "per_query" else "pass over all pairs")
    if not args.device.startswith("cuda") and results:
        print(roofline(args.model, workload, max_length, results))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_line(args.device), "results": results}, indent=2))


# --- the workload -------------------------------------------------------------------------------------------

def build_workload(args) -> dict:
    """{queries: {qid: {text, docs: [[doc id, text], ...]}}, qrels: {qid: {doc id: grade}}}."""
    from rerankforge.data_prep.sources import load_collection

    collection = load_collection(args.data, split=args.split)
    if args.run:
        from rerankforge.data_prep.runs import read_trec

        run = read_trec(args.run)
    else:
        from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever

        retriever = build_retriever(collection.corpus, RetrieverConfig(retriever="dense"))
        run = retriever.search(collection.split_queries(), args.depth)
    queries = {qid: {"text": collection.queries[qid],
                     "docs": [[doc, collection.doc_text(doc)] for doc, _ in run[qid][:args.depth]]}
               for qid in collection.judged_query_ids() if qid in run}
    qrels = {qid: dict(collection.qrels[qid]) for qid in queries}
    return {"queries": queries, "qrels": qrels}


def wanted_queries(args) -> set[str] | None:
    """The query ids --query-ids and --dev-split-of keep (both given: those in both); None: every query."""
    wanted = None
    if args.query_ids:
        wanted = set(map(str, json.loads(Path(args.query_ids).read_text())))
    if args.dev_split_of:
        from rerankforge.training.dev.dev_split import DevSplitArgs, dev_split

        dev = set(map(str, dev_split(Path(args.dev_split_of), DevSplitArgs())[1]))
        wanted = dev if wanted is None else wanted & dev
    return wanted


def read_bundle(path: str) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as src:
        return json.load(src)


def model_max_length(model: str) -> int:
    settings = Path(model) / "rerankforge.json"
    if settings.is_file():
        return int(json.loads(settings.read_text())["max_length"])
    return 512


# --- the systems --------------------------------------------------------------------------------------------

class Scorer:
    def __init__(self, name: str, score, backend: str, precision: str):
        self.name, self.score, self.backend, self.precision = name, score, backend, precision


def make_scorer(name: str, args, max_length: int, batch_size: int) -> Scorer:
    """`name` is SYSTEM[@PRECISION][/LEN]: st-torch, st-onnx, a rerankforge backend, student:BACKEND,
    cascade:S>T:K or top:T:K."""
    name_part, _, length = name.partition("/")
    max_length = int(length) if length else max_length
    system, _, precision = name_part.partition("@")
    if system in ("st-torch", "st-onnx"):
        return st_scorer(name, system.split("-", 1)[1], precision or "fp32", args, max_length, batch_size)
    if system.startswith("cascade:"):
        return cascade_scorer(name, system, precision, args, max_length, batch_size)
    if system.startswith("top:"):
        return top_scorer(name, system, precision, args, max_length, batch_size)
    student = system.startswith("student:")
    reranker = load_reranker(args.student if student else args.model, system.split(":", 1)[1] if student else system,
                             precision, args, max_length, batch_size, name)
    return Scorer(name, reranker.score, str(getattr(reranker, "backend", "torch")), reranker.precision.name)


def load_reranker(folder: str | None, backend: str, precision: str, args, max_length: int, batch_size: int, name: str):
    if folder is None:
        raise SystemExit(f"{name}: needs --student")
    from rerankforge.reranker.scoring import Reranker

    # The same rows per forward pass as sentence-transformers' batch_size, whatever the pairs' lengths.
    return Reranker.load(folder, max_length=max_length, batch_size=batch_size, device=args.device,
                         precision=precision or args.precision, max_batch_tokens=batch_size * max_length,
                         backend=backend)


def cascade_depth(name: str, keep: str) -> int:
    if not keep.isdigit() or int(keep) < 1:
        raise SystemExit(f"--systems {name}: expected a depth K >= 1 after the last ':'; got {keep!r}")
    return int(keep)


def cascade_scorer(name: str, system: str, precision: str, args, max_length: int, batch_size: int) -> Scorer:
    """The student scores every pair; the teacher rescores the student's top `keep`. Scores: the teacher's top
    `keep` above everything (by the teacher's score), the rest below in the student's order."""
    backends, _, keep = system.split(":", 1)[1].rpartition(":")
    student_backend, _, teacher_backend = backends.partition(">")
    student = load_reranker(args.student, student_backend, precision, args, max_length, batch_size, name)
    teacher = load_reranker(args.model, teacher_backend, precision, args, max_length, batch_size, name)
    keep = cascade_depth(name, keep)

    def score(pairs):
        first = np.asarray(student.score(pairs), dtype=np.float64)
        top = np.argsort(-first, kind="stable")[:keep]
        final = first - (first.max() - first.min() + 1.0)  # every student-only pair below the lowest rescored one
        rescored = np.asarray(teacher.score([pairs[i] for i in top]), dtype=np.float64)
        final[top] = rescored - rescored.min() + first.max() + 1.0
        return final

    return Scorer(name, score, f"{student.backend} > {teacher.backend} top {keep}", student.precision.name)


def top_scorer(name: str, system: str, precision: str, args, max_length: int, batch_size: int) -> Scorer:
    """The teacher scores the first stage's top `keep` (the pairs come in first-stage order); those rank above
    the rest, which keep the first stage's order."""
    backend, _, keep = system.split(":", 1)[1].rpartition(":")
    teacher = load_reranker(args.model, backend, precision, args, max_length, batch_size, name)
    keep = cascade_depth(name, keep)

    def score(pairs):
        rescored = np.asarray(teacher.score(pairs[:keep]), dtype=np.float64)
        below = rescored.min() - 1.0 - np.arange(len(pairs) - len(rescored), dtype=np.float64)
        return np.concatenate([rescored, below])

    return Scorer(name, score, f"first stage > {teacher.backend} top {keep}", teacher.precision.name)


def st_scorer(name: str, backend: str, precision: str, args, max_length: int, batch_size: int) -> Scorer:
    import torch
    from sentence_transformers import CrossEncoder

    kwargs = {"backend": backend} if backend != "torch" else {}
    if precision != "fp32":  # what a sentence-transformers user does on a GPU: load the weights in half precision
        kwargs["model_kwargs"] = {"dtype": {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]}
    model = CrossEncoder(args.st_model or args.model, max_length=max_length, device=args.device, **kwargs)
    # Raw logits, as rerankforge returns them: the ranking is the same under ST's default sigmoid.
    identity = torch.nn.Identity()
    return Scorer(name, lambda pairs: np.asarray(model.predict(pairs, batch_size=batch_size, activation_fn=identity,
                                                                show_progress_bar=False), dtype=np.float32),
                  f"sentence-transformers {backend}", precision)


def st_onnx_importable() -> bool:
    try:
        import optimum.onnxruntime  # noqa: F401
    except Exception:
        return False
    return True


def st_onnx_elsewhere(args, workload: dict, max_length: int, batch_size: int) -> list[dict]:
    """Run the st-onnx system in the environment `--st-onnx-python` names, on the same workload."""
    if not args.st_onnx_python:
        print("st-onnx: skipped -- sentence-transformers' onnx backend (optimum-onnx) does not import here and "
              "no --st-onnx-python was given")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        bundle, out = Path(tmp) / "workload.json.gz", Path(tmp) / "st_onnx.json"
        with gzip.open(bundle, "wt", encoding="utf-8") as dst:
            json.dump(workload, dst)
        command = [args.st_onnx_python, __file__, "--model", args.model, "--st-model", args.st_model or args.model,
                   "--systems", "st-onnx", "--bundle",
                   str(bundle), "--max-length", str(max_length), "--device", args.device, "--mode", args.mode,
                   "--batch-sizes", str(batch_size), "--json", str(out), "--repeats", str(args.repeats)]
        if args.queries:
            command += ["--queries", str(args.queries)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run(command, check=True, env=env)
        return json.loads(out.read_text())["results"]


# --- measuring ----------------------------------------------------------------------------------------------

def measure(scorers: dict[str, Scorer], workload: dict, args) -> list[dict]:
    queries = workload["queries"]
    names = list(scorers)
    seconds = {name: [] for name in names}
    scores = {name: {} for name in names}
    first = next(iter(queries.values()))
    for name in names:  # warm-up: lazy initialisation and first-call costs don't count
        scorers[name].score([(first["text"], text) for _, text in first["docs"]])
    if args.mode == "all":
        owners = [(qid, doc) for qid, q in queries.items() for doc, _ in q["docs"]]
        pairs = [(queries[qid]["text"], text) for qid, q in queries.items() for _, text in q["docs"]]
        for repeat in range(args.repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                started = time.perf_counter()
                values = scorers[name].score(pairs)
                seconds[name].append(time.perf_counter() - started)
                for (qid, doc), value in zip(owners, values):
                    scores[name].setdefault(qid, {})[doc] = float(value)
        pair_count = len(pairs)
    else:
        for turn, (qid, query) in enumerate(list(queries.items()) * args.repeats):
            pairs = [(query["text"], text) for _, text in query["docs"]]
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                started = time.perf_counter()
                values = scorers[name].score(pairs)
                seconds[name].append(time.perf_counter() - started)
                scores[name][qid] = {doc: float(v) for (doc, _), v in zip(query["docs"], values)}
        pair_count = sum(len(q["docs"]) for q in queries.values())
    rows = []
    for name in names:
        total = sum(seconds[name])
        rows.append({"system": name, "backend": scorers[name].backend, "precision": scorers[name].precision,
                     "pairs_s": pair_count * args.repeats / total,
                     "p50_ms": 1000 * statistics.median(seconds[name]),
                     "p95_ms": 1000 * (statistics.quantiles(seconds[name], n=20)[-1] if len(seconds[name]) > 1
                                       else seconds[name][0]),
                     "ndcg10": ndcg10(scores[name], workload["qrels"])})
    return rows


def ndcg10(scores: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> float:
    """Mean nDCG@10 over the queries scored (pytrec_eval, as eval/ computes it)."""
    import pytrec_eval

    judged = {qid: {d: int(g) for d, g in qrels[qid].items()} for qid in scores}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10"})
    per_query = evaluator.evaluate(scores)
    return statistics.fmean(m["ndcg_cut_10"] for m in per_query.values())


def print_table(rows: list[dict], batch_size: int, unit: str) -> None:
    base = next((r for r in rows if r["system"] == "st-torch"), None)
    print(f"\nbatch size {batch_size}")
    print(f"| system | backend | precision | pairs/s | x ST torch | p50 ms/{unit} | p95 ms/{unit} | nDCG@10 | "
          "vs ST torch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['pairs_s'] / base['pairs_s']:.2f}" if base else "-"
        delta = f"{r['ndcg10'] - base['ndcg10']:+.4f}" if base else "-"
        print(f"| {r['system']} | {r['backend']} | {r['precision']} | {r['pairs_s']:.1f} | {ratio} | "
              f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['ndcg10']:.4f} | {delta} |", flush=True)


def roofline(model: str, workload: dict, max_length: int, rows: list[dict]) -> str:
    """What fp32 can reach here at best: the model's multiply-adds per pair (BERT-like: per token and layer
    4 H^2 for the attention projections, 2 H I for the feed-forward, 2 T H for the attention itself; the
    workload's own token lengths) against this CPU's fp32 matrix-multiply rate (torch sgemm on the model's
    own shapes, as many threads as the systems used), and each system's share of that ceiling."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    config, tokenizer = AutoConfig.from_pretrained(model), AutoTokenizer.from_pretrained(model)
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    pairs = [(q["text"], text) for q in workload["queries"].values() for _, text in q["docs"]]
    lengths = [len(ids) for ids in tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation="only_second",
                                             max_length=max_length)["input_ids"]]
    flops = statistics.fmean(2 * layers * t * (4 * hidden * hidden + 2 * hidden * inner + 2 * t * hidden)
                             for t in lengths)
    rates = []
    for k, n in ((hidden, inner), (inner, hidden), (hidden, hidden)):
        a, b = torch.randn(32 * max_length, k), torch.randn(k, n)
        a @ b
        for _ in range(5):
            started = time.perf_counter()
            a @ b
            rates.append(2 * a.shape[0] * k * n / (time.perf_counter() - started))
    ceiling = max(rates)
    lines = [f"\nfp32 ceiling: the model costs {flops / 1e9:.2f} GFLOP per pair (mean {statistics.fmean(lengths):.0f} "
             f"tokens); torch sgemm on its shapes peaks at {ceiling / 1e9:.1f} GFLOP/s on {torch.get_num_threads()} "
             f"thread(s) here, so fp32 scoring reaches at most {ceiling / flops:.1f} pairs/s"]
    for r in rows:
        lines.append(f"  {r['system']} (batch {r.get('batch_size', '-')}): {r['pairs_s'] * flops / 1e9:.1f} GFLOP/s-equivalent "
                     f"= {r['pairs_s'] * flops / ceiling:.0%} of the fp32 ceiling")
    return "\n".join(lines)


def machine_line(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"device: {torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"device: {cpu}, {torch.get_num_threads()} threads, torch capability "
            f"{torch.backends.cpu.get_cpu_capability()} (torch {torch.__version__})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
