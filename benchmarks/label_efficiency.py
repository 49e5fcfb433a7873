"""The label-efficiency curve: how many judged queries a team must label before the reranker pays.

For each number of judged training queries n in --sizes (default 0 10 30 100 300 all), trains the demo recipe
(configs/demo_scifact.yaml, on a --minutes time budget) on n SciFact train queries, twice: from the warm start
(`rerankforge warm-start`: the corpus alone, no label) and from the bi-encoder with a new head (cold), and
prints test nDCG@10 of the hybrid top-`--depth` reranked by the reranker alone and by the served ranking
(reranker + dense + BM25), with the gain over hybrid and its paired randomization p.

Every choice is made on one dev split, the same for every n: --dev-queries train queries held out of the whole
train split (`dev_query_ids`), never trained on. The n training queries are nested (the 10 are among the 30, ...),
drawn with --seed from the rest. What the runs choose on it: on small data (under 300 queries) the number of
updates (keep-best, early stopping), and the served ranking's fusion weights. n = 0 is the warm start as it is
(no dev label used, so no served row), and for the cold start nothing (there is nothing to train).
Test is only reported.

Usage: python benchmarks/label_efficiency.py --output-dir outputs/label-efficiency [--data scifact]
           [--sizes 0 10 30 100 300 all] [--minutes 3] [--warm-start-minutes 6] [--depth 20] [--json curve.json]
Every step is cached in --output-dir (the warm start, each run's folder): a rerun goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--output-dir", default="outputs/label-efficiency")
    parser.add_argument("--model", default=None, help="bi-encoder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--sizes", nargs="+", default=["0", "10", "30", "100", "300", "all"])
    parser.add_argument("--starts", nargs="+", default=["warm", "cold"], choices=["warm", "cold"])
    parser.add_argument("--minutes", type=float, default=3.0, help="time budget of each labelled training")
    parser.add_argument("--warm-start-minutes", type=float, default=None,
                        help="time budget of the warm start (default: configs/warm_start.yaml's)")
    parser.add_argument("--dev-queries", type=int, default=80)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", default=None, help="also write the curve here")
    args = parser.parse_args()

    from rerankforge.configs import recipe
    from rerankforge.core.models import DEFAULT_BI_ENCODER
    from rerankforge.data_prep.training_files.writing import rows, write_rows
    from rerankforge.data_prep.mining import MiningConfig, mine_negatives
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.data_prep.first_stage import FirstStage, candidates_of
    from rerankforge.eval.report import EvalSettings, evaluate, retriever_signals
    from rerankforge.reranker.scoring import Reranker
    from rerankforge.training.config import load_config
    from rerankforge.training.groups import split_dev
    from rerankforge.data_prep.training_files import read_training_rows
    from rerankforge.training.dev.dev_choices import train_choosing_on_dev
    from rerankforge.training.warm_start import WarmStartArgs, warm_start

    model = args.model or DEFAULT_BI_ENCODER
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_split = load_collection(args.data, split="train")
    test = load_collection(args.data, split="test")
    dense = build_retriever(train_split.corpus, RetrieverConfig(retriever="dense", model=model))

    # The demo's mining of every judged train query, once; each size is a subset of its rows.
    mined = out / "mined.train.jsonl"
    if not mined.is_file():
        result = mine_negatives(train_split, dense, MiningConfig(num_negatives=3, min_rank=3, max_rank=30,
                                                                sampling="random", seed=13))
        write_rows(mined, rows(result.examples, "n-tuple"))
    all_rows = read_training_rows(mined)
    _, dev_ids = split_dev(all_rows, args.dev_queries, args.seed)
    pool = sorted({str(r["query_id"]) for r in all_rows} - set(dev_ids))
    random.Random(args.seed).shuffle(pool)
    sizes = [len(pool) if s == "all" else int(s) for s in args.sizes]

    starts = {}
    if "warm" in args.starts:
        starts["warm"] = warm_start(WarmStartArgs(data=args.data, output_dir=str(out / "warm-start"), model=model,
                                                  first_stage_model=model, max_minutes=args.warm_start_minutes),
                                    dense=dense)
    if "cold" in args.starts:
        starts["cold"] = model

    settings = EvalSettings(depth=args.depth, ks=(args.depth,))
    stage = FirstStage({"dense": dense, "bm25": build_retriever(test.corpus, RetrieverConfig(retriever="bm25"))})
    first_stages = stage.search(test.split_queries(), ["hybrid"], settings.max_depth)
    curve = []

    def report(start: str, n: int, folder: str, seconds: float) -> None:
        reranker = Reranker.load(folder, batch_size=64)
        queries = test.split_queries()
        signals = stage.signals(queries, candidates_of({"hybrid": first_stages["hybrid"]}, queries, settings.max_depth),
                                retriever_signals([reranker]))
        result = evaluate(test, first_stages, [reranker], settings, signals=signals, rerank=["hybrid"])
        hybrid = next(s for s in result.systems if s.is_first_stage)
        row = {"start": start, "train_queries": n, "train_minutes": round(seconds / 60, 2),
               "hybrid": round(hybrid.means["nDCG@10"], 4)}
        for system in result.systems:
            if system.is_first_stage:
                continue
            kind = "served" if system.name.endswith("(served)") else "alone"
            comparison = next(c for c in result.comparisons if c.b == system.name and c.a == hybrid.name)
            row[kind] = round(system.means["nDCG@10"], 4)
            row[f"{kind}_p"] = round(comparison.p_randomization, 4)
        curve.append(row)
        print(json.dumps(row), flush=True)

    for start, begin in starts.items():
        for n in sizes:
            if n == 0:
                if start == "warm":
                    report(start, 0, begin, 0.0)
                continue
            folder = out / f"{start}-{n}"
            subset = set(pool[:n]) | set(dev_ids)
            train_file = out / f"mined.{n}.train.jsonl"
            if not train_file.is_file():
                write_rows(train_file, iter([r for r in all_rows if str(r["query_id"]) in subset]))
            config = load_config(["--config", str(recipe("demo_scifact.yaml")), "--train_file", str(train_file),
                                  "--data", args.data, "--model", begin, "--first_stage_model", model,
                                  "--output_dir", str(folder / "reranker"), "--max_steps", "100000",
                                  "--num_epochs", "100", "--max_minutes", str(args.minutes),
                                  "--dev_queries", str(len(dev_ids)), "--dev_query_ids", *dev_ids,
                                  "--min_train_queries", "0", "--data_license", "none"])
            started = time.perf_counter()
            train_choosing_on_dev(config)
            report(start, n, config.output_dir, time.perf_counter() - started)

    print("\nstart  queries  hybrid  alone (p)         served (p)")
    for row in curve:
        served = f"{row['served']:.4f} ({row['served_p']:.3f})" if "served" in row else "-"
        print(f"{row['start']:5}  {row['train_queries']:7}  {row['hybrid']:.4f}  "
              f"{row['alone']:.4f} ({row['alone_p']:.3f})  {served}")
    if args.json:
        Path(args.json).write_text(json.dumps(curve, indent=2) + "\n")


if __name__ == "__main__":
    main()
