"""The served ranking through the rerank APIs, against `rerankforge eval`'s, on the same model and candidates.

For each --depths k: every test query's hybrid top-k, in the order hybrid returns them, is sent to a real server
on 127.0.0.1 (`rerankforge serve`'s app) through

- Cohere's own SDK (`ClientV2.rerank` to /v2/rerank), with `documents_ranked: true` in the body
  (`request_options={"additional_body_parameters": ...}`), and without it (what every Cohere client sends today);
- LangChain: rerankforge's adapter (`langchain_compressor(..., documents_ranked=True)`), and LangChain's own
  `CohereRerank` pointed at a second server configured `documents_ranked: true` (it cannot add a body field);

and each ranking's nDCG@10 is printed beside `rerankforge eval`'s (`rerankforge.evaluate`, the code the command
runs) served ranking and reranker alone, with the paired randomization p of each against hybrid. The flagged
rankings should equal eval's served ranking, the unflagged one eval's reranker alone.

Usage: python benchmarks/served_through_apis.py --reranker outputs/demo/reranker [--data scifact]
           [--depths 20 50] [--precision auto] [--queries N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reranker", required=True)
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--model", default=None, help="bi-encoder of the dense first stage (default: MiniLM)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--queries", type=int, default=None, help="only the first N test queries (a quick look)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import rerankforge
    from rerankforge.core.models import DEFAULT_BI_ENCODER
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.eval.report import REQUEST_ORDER
    from rerankforge.reranker.scoring import Reranker

    model = args.model or DEFAULT_BI_ENCODER
    test = load_collection(args.data, split="test")
    reranker = Reranker.load(args.reranker, precision=args.precision)
    print(f"{args.reranker}: served ranking {reranker.combiner.describe()}, request ranking "
          f"{reranker.request_combiner.describe()} ({reranker.combiner.chosen_on}); "
          f"precision {reranker.precision}", flush=True)
    rows = []
    for depth in args.depths:
        report = rerankforge.evaluate(args.data, [args.reranker], retriever=["hybrid"], model=model, depth=depth,
                                      k=[str(depth)], precision=args.precision)
        systems = {s.name: s for s in report.systems}
        hybrid = systems["hybrid"]
        alone = next(s for s in report.systems if s.reranker and s.combination == "1.00 reranker")
        # what the rerank endpoints serve documents sent in first-stage order: the request ranking, which eval
        # names "(served, request order)" where it differs from the served ranking (dense and BM25 too)
        full = next((s for s in report.systems if s.name.endswith("(served)")), None)
        request = next((s for s in report.systems if s.name.endswith(REQUEST_ORDER)), full or alone)
        queries = sorted(hybrid.run)[:args.queries] if args.queries else sorted(hybrid.run)
        candidates = {q: [d for d, _ in hybrid.run[q][:depth]] for q in queries}
        rankings = through_clients(reranker, test, candidates, depth)
        row = {"depth": depth, "queries": len(queries), "served_ranking": reranker.combiner.describe(),
               "request_ranking": reranker.request_combiner.describe(),
               "eval": {name: _summary(system.per_query["nDCG@10"], hybrid, queries) for name, system in (
                   ("hybrid", hybrid), ("served ranking (/search)", full),
                   ("request ranking (what the endpoints serve)", request), ("reranker alone", alone)) if system},
               "clients": {name: _summary(_ndcg(test, run), hybrid, queries) for name, run in rankings.items()}}
        rows.append(row)
        print(f"\nSciFact-style test, hybrid top-{depth} in hybrid's order, {len(queries)} queries: nDCG@10 "
              f"(p against hybrid, two-sided paired randomization)")
        for group in ("eval", "clients"):
            for name, figures in row[group].items():
                print(f"  {group:7} {name:52} {figures['nDCG@10']:.4f}  {figures['difference']:+.4f}  "
                      f"p {figures['p']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def through_clients(reranker, test, candidates: dict[str, list[str]], depth: int) -> dict[str, dict]:
    """Each client's ranking of every query's candidates: name -> run (query id -> [(doc id, score)])."""
    import cohere
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    from rerankforge.serve.config import ServeConfig
    from rerankforge.serve.integrations import langchain_compressor

    runs: dict[str, dict] = {name: {} for name in (
        "Cohere SDK /v2/rerank, documents_ranked: true", "Cohere SDK /v2/rerank, as clients send today",
        "LangChain: rerankforge adapter, documents_ranked=True",
        "LangChain CohereRerank, server documents_ranked: true")}
    names = list(runs)
    config = ServeConfig(reranker="served", max_documents=max(depth, 1000))
    adapter = langchain_compressor(reranker, top_n=depth, documents_ranked=True)
    started = time.perf_counter()
    with serving(config, reranker) as plain, serving(_replace(config, documents_ranked=True), reranker) as ranked:
        v2 = cohere.ClientV2(api_key="unused", base_url=plain)
        langchain = CohereRerank(model="m", cohere_api_key="unused", base_url=ranked, top_n=depth)
        for qid, docs in candidates.items():
            query, texts = test.queries[qid], [test.doc_text(d) for d in docs]
            flag = {"additional_body_parameters": {"documents_ranked": True}}
            for name, options in ((names[0], flag), (names[1], None)):
                results = v2.rerank(model="m", query=query, documents=texts, top_n=depth, request_options=options)
                runs[name][qid] = _as_run(docs, [r.index for r in results.results])
            documents = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)]
            runs[names[2]][qid] = _as_run(docs, [d.metadata["i"] for d in adapter.compress_documents(documents, query)])
            kept = langchain.compress_documents(documents, query)
            runs[names[3]][qid] = _as_run(docs, [d.metadata["i"] for d in kept])
    print(f"  depth {depth}: {len(candidates)} queries through 4 clients in {time.perf_counter() - started:.0f} s",
          flush=True)
    return runs


def _as_run(docs: list[str], order: list[int]) -> list[tuple[str, float]]:
    """The client's order as a run: strictly decreasing scores, so no metric re-sorts ties."""
    return [(docs[i], float(len(order) - rank)) for rank, i in enumerate(order)]


def _ndcg(test, run: dict) -> dict[str, float]:
    from rerankforge.eval.metrics import per_query

    return per_query({q: test.qrels[q] for q in run}, run, ("nDCG@10",))["nDCG@10"]


def _summary(scores: dict[str, float], hybrid, queries: list[str]) -> dict:
    from rerankforge.eval.significance import compare

    mine = {q: scores.get(q, 0.0) for q in queries}
    base = {q: hybrid.per_query["nDCG@10"].get(q, 0.0) for q in queries}
    comparison = compare("nDCG@10", "hybrid", base, "b", mine)
    return {"nDCG@10": statistics.mean(mine.values()), "difference": statistics.mean(mine.values()) -
            statistics.mean(base.values()), "p": comparison.p_randomization}


def _replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def serving(config, reranker):
    """`rerankforge serve`'s app for `reranker` on a free port of 127.0.0.1, in a thread; yields its URL."""
    from rerankforge.serve.app import create_app
    from rerankforge.serve.connections import serving_in_thread

    return serving_in_thread(create_app(config, reranker))


if __name__ == "__main__":
    main()
