"""Pairs per second of a reranker's backends side by side, on the same pairs, in one process.

Scores the dense top-`--depth` of the first `--queries` SciFact test queries with sentence-transformers'
`CrossEncoder.predict` (torch fp32, the baseline), rerankforge's `Reranker` on torch fp32, and every
exported backend found in the folder (`rerankforge export --backend onnx|onnx-int8`), each run once to warm
up and then in turn for `--rounds` rounds; prints the fastest round of each, its ratio to the baseline and
to our torch, and the Spearman correlation of its scores with torch's. Round robin, so load that comes and
goes on a shared machine hits every scorer alike; the 1-minute load average is printed with the figures.

Usage: python benchmarks/backends.py --model FOLDER [--data scifact] [--queries 10] [--depth 50] \
           [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A reranker folder, exported with `rerankforge export`.")
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()

    import numpy as np
    import torch
    from sentence_transformers import CrossEncoder

    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.reranker.backends import backend_file
    from rerankforge.reranker.export import spearman
    from rerankforge.reranker.scoring import Reranker

    os.environ.setdefault("RERANKFORGE_CPU_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    collection = load_collection(args.data, split="test")
    queries = dict(list(collection.split_queries().items())[:args.queries])
    run = build_retriever(collection.corpus, RetrieverConfig(retriever="dense")).search(queries, args.depth)
    pairs = [(queries[q], collection.doc_text(d)) for q in queries for d, _ in run[q][:args.depth]]

    torch_reranker = Reranker.load(args.model, batch_size=args.batch_size, precision="fp32")
    cross_encoder = CrossEncoder(args.model, max_length=torch_reranker.max_length, device="cpu")
    scorers = {
        "CrossEncoder.predict (torch fp32)": lambda: np.asarray(cross_encoder.predict(
            pairs, batch_size=args.batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False)),
        "Reranker torch fp32": lambda: torch_reranker.score(pairs)}
    for backend in ("onnx", "onnx-int8"):
        if backend_file(args.model, backend).is_file():
            reranker = Reranker.load(args.model, batch_size=args.batch_size, backend=backend)
            scorers[f"Reranker {backend}"] = lambda reranker=reranker: reranker.score(pairs)

    scores = {name: score() for name, score in scorers.items()}  # warm-up, and the scores compared
    best = dict.fromkeys(scorers, float("inf"))
    loads = []
    for _ in range(args.rounds):
        for name, score in scorers.items():
            started = time.perf_counter()
            score()
            best[name] = min(best[name], time.perf_counter() - started)
        loads.append(os.getloadavg()[0])
    baseline, ours = best["CrossEncoder.predict (torch fp32)"], best["Reranker torch fp32"]
    print(f"{len(pairs)} pairs ({len(queries)} {args.data} test queries x dense top-{args.depth}, max_length "
          f"{torch_reranker.max_length}), batch {args.batch_size}, {args.threads} threads, fastest of {args.rounds} "
          f"rounds; 1-minute load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    for name, seconds in best.items():
        print(f"  {name:36s} {len(pairs) / seconds:7.1f} pairs/s  {baseline / seconds:5.2f}x CrossEncoder  "
              f"{ours / seconds:5.2f}x our torch  Spearman vs torch "
              f"{spearman(scores[name], scores['Reranker torch fp32']):.4f}")


if __name__ == "__main__":
    main()
