"""Does the served ranking's gate hold on test? Repeated random dev splits, the in-sample gate against the fold gate.

The gate decides, on a dev split of train queries, what `serve` ranks by: the first stage as it ranks, a weighting,
or the reranker. A dev split unlike the test queries can fool it (on SciFact, BM25 is far stronger on the train
queries than on the test queries). This benchmark holds one reranker fixed and draws --splits random dev splits of
--dev-queries train queries the reranker never trained on; on each it runs both gates and scores what each keeps
on the test split's hybrid top---depth:

- before (benchmarks/gate_in_sample.py, rerankforge's earlier gate): every weighting of reranker, dense and BM25
  on a simplex grid, fitted and judged on the same dev queries (one-sided randomization p < 0.05);
- after (train/dev/combining.py), its two rankings: the reranker weighed against the first stage's order,
  fitted on four folds of dev and judged on the fifth, kept where the out-of-fold scores beat the first stage
  (p < 0.05); the served ranking (/search, eval), which also weighs dense and BM25 scores where their out-of-fold
  gain over that is clear (p < 0.05); and the request ranking (what the rerank endpoints serve): the served
  ranking where it weighs no dense score (a request's documents are scored for BM25 from the corpus's
  statistics), else the first;
- after at looser levels (p < 0.2, p < 0.5), the evidence the level was chosen on: each kept ranking is also
  scored on the pool's queries outside the dev split ("held-out train"), which no gate saw.

Each kept ranking is compared on test with the best first stage there (dense, BM25 or hybrid, whichever scores
best on test: the strictest bar), by a two-sided paired randomization test. The table counts the splits where it
falls below that by more than 0.005 and where it is significantly worse (p < 0.05).

The reranker: `--reranker warm` is the collection's warm start (`rerankforge warm-start`: trained on the corpus
alone, so every judged train query is unseen and a dev split can be drawn from all of them); `--reranker
labelled` trains the demo recipe (configs/demo_scifact.yaml, --minutes) from that warm start on --train-share of
the judged train queries, and draws the dev splits from the rest. Test queries are only scored, never chosen on.

Usage: python benchmarks/gate_robustness.py --data scifact --reranker labelled --output-dir outputs/gate-scifact
           [--warm-start FOLDER] [--splits 20] [--dev-queries N] [--depth 20] [--json gate.json]
Steps are cached in --output-dir (the warm start, the mined file, the trained reranker).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

RETRIEVERS = ("dense", "bm25", "hybrid")
GATES = ("before", "after", "after request", "after p<0.2", "after p<0.5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--output-dir", default="outputs/gate-robustness")
    parser.add_argument("--model", default=None, help="bi-encoder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--reranker", choices=["warm", "labelled"], default="labelled")
    parser.add_argument("--warm-start", default=None, help="an existing warm-start folder (else one is trained)")
    parser.add_argument("--train-share", type=float, default=0.5, help="labelled: train queries trained on")
    parser.add_argument("--minutes", type=float, default=3.5, help="labelled: the training's time budget")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--dev-queries", type=int, nargs="+", default=None,
                        help="queries per dev split, one study each (default: the demo's for this collection: 10%% "
                             "of its train queries, 3 to 80)")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from rerankforge.cli.demo import dev_queries
    from rerankforge.core.models import DEFAULT_BI_ENCODER
    from rerankforge.data_prep.first_stage import FirstStage
    from rerankforge.data_prep.retrieval import RetrieverConfig
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.reranker.scoring import Reranker

    model = args.model or DEFAULT_BI_ENCODER
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_split, test = load_collection(args.data, split="train"), load_collection(args.data, split="test")
    stage = FirstStage.build(train_split.corpus, ["dense", "bm25"], RetrieverConfig(model=model))
    judged = sorted(train_split.judged_query_ids())
    folder, pool = reranker_and_pool(args, out, model, stage, judged)
    sizes = args.dev_queries or [dev_queries(len(judged), 0.1, 80)]
    print(f"{args.data}: reranker {folder} ({args.reranker}); {len(pool)} unseen judged train queries, "
          f"{args.splits} dev splits of {' / '.join(map(str, sizes))}", flush=True)

    reranker = Reranker.load(folder, batch_size=64)
    dev = Side.build(stage, reranker, train_split, pool, args.depth)
    held = Side.build(stage, reranker, test, list(test.split_queries()), args.depth)
    studies = []
    for size in sizes:
        rows = [one_split(dev, held, random.Random(args.seed + s).sample(pool, min(size, len(pool))), s, pool)
                for s in range(args.splits)]
        studies.append({"summary": summarise(args.data, args.reranker, size, rows), "splits": rows})
    if args.json:
        Path(args.json).write_text(json.dumps(studies, indent=2) + "\n")


class Side:
    """One side of the study (the dev pool or the test split): each query's hybrid top-`depth` in hybrid's order,
    every signal of those candidates, and each first stage's own run."""

    def __init__(self, collection, queries, candidates, signals, runs):
        self.collection, self.queries, self.candidates, self.signals, self.runs = (
            collection, queries, candidates, signals, runs)

    @classmethod
    def build(cls, stage, reranker, collection, query_ids: list[str], depth: int) -> "Side":
        queries = {q: collection.queries[q] for q in query_ids}
        runs = stage.search(queries, list(RETRIEVERS), max(depth, 10))
        candidates = {q: [d for d, _ in runs["hybrid"][q][:depth]] for q in queries}
        signals = stage.signals(queries, candidates, ["dense", "bm25"])
        signals["first_stage"] = {q: dict(runs["hybrid"][q][:depth]) for q in queries}
        started = time.perf_counter()
        signals["reranker"] = reranker.score_run(runs["hybrid"], queries, collection.doc_text, depth)
        print(f"  scored {sum(map(len, candidates.values()))} pairs in {time.perf_counter() - started:.0f} s",
              flush=True)
        return cls(collection, queries, candidates, signals, runs)

    def qrels(self, queries) -> dict:
        return {q: self.collection.qrels[q] for q in queries}

    def ndcg(self, combiner, queries=None) -> dict[str, float]:
        from rerankforge.eval.metrics import per_query

        queries = list(self.queries) if queries is None else queries
        run = {q: combiner.rank(self.candidates[q], {s: v[q] for s, v in self.signals.items()}) for q in queries}
        return per_query(self.qrels(queries), run, ("nDCG@10",))["nDCG@10"]

    def first_stage_ndcg(self, kind: str) -> dict[str, float]:
        from rerankforge.eval.metrics import per_query

        return per_query(self.qrels(self.queries), self.runs[kind], ("nDCG@10",))["nDCG@10"]


def one_split(dev: Side, test: Side, dev_ids: list[str], split: int, pool: list[str]) -> dict:
    """Every gate fitted on the dev queries `dev_ids`, and what each keeps scored on test and on the pool's other
    queries (held-out train: hybrid's order against the kept ranking)."""
    import functools

    import gate_in_sample

    from rerankforge.eval.significance import compare
    from rerankforge.reranker.combiner import Combiner
    from rerankforge.training.dev.combining import fit_combination

    candidates = {q: dev.candidates[q] for q in dev_ids}
    signals = {s: {q: v[q] for q in dev_ids} for s, v in dev.signals.items()}
    first = {kind: test.first_stage_ndcg(kind) for kind in RETRIEVERS}
    best = max(RETRIEVERS, key=lambda kind: statistics.mean(first[kind].values()))
    row: dict = {"split": split, "dev_queries": len(dev_ids), "best_first_stage": best,
                 "best_first_stage_test": statistics.mean(first[best].values())}
    rest = sorted(set(pool) - set(dev_ids))
    rest_first = statistics.mean(dev.ndcg(Combiner({"position": 1.0}), rest).values()) if rest else float("nan")
    # as training fits it over a hybrid first stage: the request ranking may weigh BM25 (the model gets the
    # corpus's statistics); the in-sample gate of before fitted no request ranking
    after = functools.partial(fit_combination, request_bm25=True)
    fits = {"before": gate_in_sample.fit_combination, "after": after,
            "after p<0.2": functools.partial(after, alpha=0.2), "after p<0.5": functools.partial(after, alpha=0.5)}
    fitted = {name: fit(candidates, signals, dev.qrels(dev_ids), "dev split", "hybrid") for name, fit in fits.items()}
    kept_by = {name: result.combiner for name, result in fitted.items()}
    kept_by["after request"] = fitted["after"].request
    for name in GATES:
        kept = kept_by[name]
        scores = test.ndcg(kept)
        comparison = compare("nDCG@10", best, first[best], name, scores)
        held_out = statistics.mean(dev.ndcg(kept, rest).values()) if rest else float("nan")
        row[name] = {"kept": kept.describe(), "test": statistics.mean(scores.values()),
                     "difference": statistics.mean(scores.values()) - row["best_first_stage_test"],
                     "p": comparison.p_randomization, "held_out_train_difference": held_out - rest_first}
    print(f"  split {split:2}: best first stage {best} {row['best_first_stage_test']:.4f}; "
          + "; ".join(f"{n} {row[n]['kept']} -> {row[n]['test']:.4f} ({row[n]['difference']:+.4f}, p "
                      f"{row[n]['p']:.3f}; held-out train {row[n]['held_out_train_difference']:+.4f})"
                      for n in GATES), flush=True)
    return row


def summarise(data: str, kind: str, size: int, rows: list[dict]) -> dict:
    summary = {"data": data, "reranker": kind, "dev_queries": size, "splits": len(rows)}
    print(f"\n{data} ({kind} reranker), {len(rows)} random dev splits of {size} queries; test nDCG@10 of what each "
          f"gate keeps, against the best first stage on test")
    print("gate          mean test  min test  below by >0.005  significantly worse  kept the reranker  "
          "held-out train vs hybrid (mean, worst)")
    for name in GATES:
        tests = [r[name]["test"] for r in rows]
        below = sum(r[name]["difference"] < -0.005 for r in rows)
        worse = sum(r[name]["difference"] < 0 and r[name]["p"] < 0.05 for r in rows)
        reranked = sum("reranker" in r[name]["kept"] for r in rows)
        train_side = [r[name]["held_out_train_difference"] for r in rows]
        summary[name] = {"mean_test": statistics.mean(tests), "min_test": min(tests), "below_by_0.005": below,
                         "significantly_worse": worse, "kept_reranker": reranked,
                         "held_out_train_mean_difference": statistics.mean(train_side),
                         "held_out_train_worst_difference": min(train_side)}
        print(f"{name:12}  {statistics.mean(tests):9.4f}  {min(tests):8.4f}  {below:>8} of {len(rows):<6} "
              f"{worse:>10} of {len(rows):<8} {reranked:>6} of {len(rows):<9} {statistics.mean(train_side):+.4f}, "
              f"{min(train_side):+.4f}")
    print(f"best first stage on test: {rows[0]['best_first_stage']} {rows[0]['best_first_stage_test']:.4f}")
    return summary


def reranker_and_pool(args, out: Path, model: str, stage, judged: list[str]) -> tuple[str, list[str]]:
    """The reranker folder, and the judged train queries it never trained on."""
    from rerankforge.training.warm_start import WarmStartArgs, warm_start

    warm = args.warm_start or warm_start(WarmStartArgs(data=args.data, output_dir=str(out / "warm-start"),
                                                       model=model, first_stage_model=model),
                                         dense=stage.retriever("dense"))
    if args.reranker == "warm":
        return str(warm), judged
    order = list(judged)
    random.Random(args.seed).shuffle(order)
    trained_on = set(order[:round(len(order) * args.train_share)])
    folder = out / "labelled" / "reranker"
    if not (folder / "rerankforge.json").is_file():
        train_labelled(args, out, model, stage, trained_on, str(warm), str(folder))
    return str(folder), sorted(set(judged) - trained_on)


def train_labelled(args, out: Path, model: str, stage, trained_on: set[str], warm: str, folder: str) -> None:
    """The demo recipe on the `trained_on` queries' mined groups (no dev split: the study fits on its own)."""
    from rerankforge.configs import recipe
    from rerankforge.data_prep.training_files.writing import rows, write_rows
    from rerankforge.data_prep.mining import MiningConfig, mine_negatives
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.training.config import load_config
    from rerankforge.data_prep.training_files import read_training_rows
    from rerankforge.training.loop import train

    mined = out / "mined.train.jsonl"
    if not mined.is_file():  # the demo's mining: dense ranks 3-30, 3 random negatives per positive
        result = mine_negatives(load_collection(args.data, split="train"), stage.retriever("dense"),
                                MiningConfig(num_negatives=3, min_rank=3, max_rank=30, sampling="random", seed=13))
        write_rows(mined, rows(result.examples, "n-tuple"))
    subset = out / "mined.labelled.train.jsonl"
    write_rows(subset, iter([r for r in read_training_rows(mined) if str(r["query_id"]) in trained_on]))
    train(load_config(["--config", str(recipe("demo_scifact.yaml")), "--train_file", str(subset),
                       "--data", args.data, "--model", warm, "--first_stage_model", model, "--output_dir", folder,
                       "--max_minutes", str(args.minutes), "--dev_queries", "0", "--data_license", "none"]))


if __name__ == "__main__":
    main()
