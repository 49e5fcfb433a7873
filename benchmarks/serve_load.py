"""Load benchmark of `rerankforge serve` on loopback: dynamic batching vs one-request-at-a-time scoring.

One run, same model, same requests: N concurrent clients each send M Cohere-style /v2/rerank requests of
D documents (SciFact test queries and their dense top-D abstracts). Each mode runs in its own server
process (`rerankforge serve`), started fresh. Prints p50/p95 latency and throughput per mode, their
ratios, and the count of 5xx answers; then an overload burst against a small queue, where the only
answers allowed besides 200 are the deliberate 429s (with Retry-After).

    python benchmarks/serve_load.py --reranker outputs/scifact/reranker-minilm-full --clients 8 --requests 8

With `--backends torch,onnx-int8` (more than one) it compares scoring backends instead, each in its own
server with the same config (dynamic batching on): p50/p95 latency of one client sending `--latency-requests`
requests one after another, then throughput of `--clients` concurrent clients, and the ratios against the
first backend. The backends other than torch need `rerankforge export` to have written their file. A backend
may name its precision (`torch@fp32,auto`: torch in fp32 against what backend auto chooses at precision auto).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reranker", required=True)
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--run", default=None, help="TREC run of the test queries (default: dense, computed here)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=8, help="requests per client")
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--overload-clients", type=int, default=32)
    parser.add_argument("--backends", default="torch", help="comma-separated; more than one: compare them")
    parser.add_argument("--latency-requests", type=int, default=20, help="backend comparison: one client's requests")
    args = parser.parse_args()
    args.backend = args.backends.split(",")[0].partition("@")[0]

    bodies = request_bodies(args)
    if "," in args.backends:
        compare_backends(args, bodies)
        return
    results = {}
    for mode, max_batch_requests in (("one at a time", 1), ("dynamic batching", 64)):
        with server(args, max_batch_requests=max_batch_requests, max_queue_pairs=1_000_000) as url:
            results[mode] = load(url, bodies, args.clients)
        print_mode(mode, results[mode])
    one, dyn = results["one at a time"], results["dynamic batching"]
    print("\n| | one at a time | dynamic batching | ratio dynamic / one |")
    print("|---|---|---|---|")
    for key, label in (("p50", "p50 latency (s)"), ("p95", "p95 latency (s)"), ("rps", "throughput (requests/s)"),
                       ("pairs_s", "throughput (pairs/s)")):
        print(f"| {label} | {one[key]:.3f} | {dyn[key]:.3f} | {dyn[key] / one[key]:.3f} |")
    print(f"| 5xx answers | {one['5xx']} | {dyn['5xx']} | |")

    queue = 2 * args.documents
    with server(args, max_batch_requests=64, max_queue_pairs=queue) as url:
        burst = load(url, bodies[:args.overload_clients * 2], args.overload_clients)
    print(f"\noverload burst: {args.overload_clients} clients x 2 requests against a queue of {queue} pairs: "
          f"{burst['codes']}; Retry-After on every 429: {burst['retry_after_ok']}; 5xx: "
          f"{burst['5xx']}")


def compare_backends(args, bodies: list[dict]) -> None:
    results = {}
    default_precision = args.precision
    for backend in args.backends.split(","):
        args.backend, _, precision = backend.partition("@")
        args.precision = precision or default_precision
        with server(args, max_batch_requests=64, max_queue_pairs=1_000_000) as url:
            load(url, bodies[:1], 1)  # warm-up: first-call allocations, ONNX Runtime's arena
            alone = load(url, bodies[:args.latency_requests], 1)
            busy = load(url, bodies[:args.clients * args.requests], args.clients)
        results[backend] = (alone, busy)
        print_mode(f"{backend}, 1 client", alone)
        print_mode(f"{backend}, {args.clients} clients", busy)
    first = args.backends.split(",")[0]
    print(f"\n| backend | p50 (s), 1 client | p95 (s), 1 client | x {first} (p50) | requests/s, {args.clients} clients "
          f"| pairs/s, {args.clients} clients | x {first} | p95 (s), {args.clients} clients | 5xx |")
    print("|---|---|---|---|---|---|---|---|---|")
    base_alone, base_busy = results[first]
    for backend, (alone, busy) in results.items():
        print(f"| {backend} | {alone['p50']:.3f} | {alone['p95']:.3f} | {base_alone['p50'] / alone['p50']:.2f} | "
              f"{busy['rps']:.2f} | {busy['pairs_s']:.1f} | {busy['pairs_s'] / base_busy['pairs_s']:.2f} | "
              f"{busy['p95']:.3f} | {alone['5xx'] + busy['5xx']} |")


def request_bodies(args) -> list[dict]:
    from rerankforge.data_prep.sources import load_collection

    test = load_collection(args.data, split="test")
    if args.run:
        from rerankforge.data_prep.runs import read_trec

        run = read_trec(args.run)
    else:
        from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever

        run = build_retriever(test.corpus, RetrieverConfig(retriever="dense")).search(test.split_queries(),
                                                                                        args.documents)
    queries = [q for q in test.judged_query_ids() if q in run]
    random.Random(0).shuffle(queries)
    total = args.clients * args.requests
    return [{"model": "rerankforge", "query": test.queries[q], "top_n": 5,
             "documents": [test.doc_text(d) for d, _ in run[q][:args.documents]]}
            for q in (queries * (total // len(queries) + 1))[:max(total, args.overload_clients * 2)]]


def server(args, max_batch_requests: int, max_queue_pairs: int) -> "serving":
    return serving(["--reranker", args.reranker, "--batch_size", str(args.batch_size), "--max_batch_requests",
                    str(max_batch_requests), "--max_queue_pairs", str(max_queue_pairs), "--precision", args.precision,
                    "--backend", args.backend])


class serving:
    """`rerankforge serve ARGS` in its own process on a free loopback port, until the block ends (its URL)."""

    def __init__(self, serve_args: list[str], env: dict[str, str] | None = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.command = [sys.executable, "-m", "rerankforge.cli.main", "serve", "--port", str(self.port), *serve_args]
        self.env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}

    def __enter__(self) -> str:
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"server exited: {self.log.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("server did not become ready in 300 s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def load(url: str, bodies: list[dict], clients: int) -> dict:
    per_client = [bodies[i::clients] for i in range(clients)]

    def client(mine: list[dict]) -> list[tuple[int, float, str | None]]:
        out = []
        with httpx.Client(timeout=600) as http:
            for body in mine:
                started = time.perf_counter()
                response = http.post(f"{url}/v2/rerank", json=body)
                out.append((response.status_code, time.perf_counter() - started, response.headers.get("retry-after")))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = [a for part in pool.map(client, per_client) for a in part]
    wall = time.perf_counter() - started
    ok = [seconds for code, seconds, _ in answers if code == 200]
    codes: dict[int, int] = {}
    for code, _, _ in answers:
        codes[code] = codes.get(code, 0) + 1
    pairs = sum(len(b["documents"]) for b in bodies)
    return {"p50": statistics.median(ok) if ok else float("nan"),
            "p95": statistics.quantiles(ok, n=20)[-1] if len(ok) > 1 else float("nan"),
            "rps": len(ok) / wall, "pairs_s": pairs * len(ok) / len(answers) / wall, "wall": wall,
            "codes": json.dumps(codes), "5xx": sum(n for c, n in codes.items() if c >= 500),
            "retry_after_ok": all(r is not None for c, _, r in answers if c == 429)}


def print_mode(mode: str, result: dict) -> None:
    print(f"{mode}: {result['codes']} in {result['wall']:.1f} s; p50 {result['p50']:.3f} s, p95 {result['p95']:.3f} s, "
          f"{result['rps']:.2f} requests/s, {result['pairs_s']:.1f} pairs/s", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
