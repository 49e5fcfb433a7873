"""A trained reranker folder served by Infinity vs rerankforge on the same SciFact pairs (issue 31, item 4): the
Spearman correlation of the scores, each query's order, and the largest score difference.

    python benchmarks/served_by_infinity.py --model outputs/my-reranker [--queries 5 --documents 10]

Infinity is the real server (`infinity_emb v2`, torch on the CPU) from `make infinity`'s venv (or
$RERANKFORGE_INFINITY), started on 127.0.0.1; the pairs are the first SciFact test queries, each with its dense
top-`documents` (all-MiniLM-L6-v2, so the documents are the ones a reranker sees); rerankforge scores them with
`Reranker.load(MODEL, precision="fp32")` (torch). Both give raw logits."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--documents", type=int, default=10)
    args = parser.parse_args()
    from conftest import free_port
    from test_infinity import INFINITY, infinity_server, rerank, spearman, wait_until_up

    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.reranker.scoring import Reranker

    collection = load_collection(args.data, split="test")
    queries = dict(list(collection.split_queries().items())[:args.queries])
    run = build_retriever(collection.corpus, RetrieverConfig(retriever="dense", show_progress=False)).search(
        queries, args.documents)
    groups = [(queries[q], [collection.doc_text(d) for d, _ in run[q]]) for q in queries]
    port = free_port()
    url, log = f"http://127.0.0.1:{port}", Path(tempfile.mkdtemp()) / "infinity.log"
    server = infinity_server(str(Path(args.model).resolve()), port, log)
    try:
        wait_until_up(server, url, log)
        served = np.array([s for query, docs in groups for s in rerank(url, query, docs)])
    finally:
        server.terminate()
        server.wait(timeout=30)
    ours = Reranker.load(args.model, precision="fp32").score([(q, d) for q, docs in groups for d in docs])
    same_order = sum(np.argsort(-served[i:i + args.documents]).tolist() == np.argsort(-ours[i:i + args.documents]).tolist()
                     for i in range(0, len(ours), args.documents))
    print(f"Infinity ({INFINITY}) vs rerankforge on {len(ours)} {args.data} pairs ({args.queries} test queries x "
          f"dense top-{args.documents}): Spearman {spearman(served, ours):.6f}; the same order for {same_order} of "
          f"{args.queries} queries; largest score difference {np.abs(served - ours).max():.2e}")


if __name__ == "__main__":
    main()
