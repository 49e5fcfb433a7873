"""The quality / speed curve of distilled students: a teacher and its students side by side, in one run.

For the teacher (a reranker trained with `rerankforge train`), each student folder given (trained with
`teacher:` and `student_layers:`, e.g. configs/scifact_minilm_distill_l3.yaml) and, with --cut, the
teacher merely cut to its first L layers (no training: what distillation starts from), prints

  - dev nDCG@10 reranking the dense top-`dev_depth` of the teacher's dev split (the train queries held out
    by its train_config.json: train_file, dev_queries, seed -- never the test split), the reranker alone
    and fused with the first stage at the weight best on dev (as training chooses it);
  - pairs/s scoring those candidates: torch fp32, every model through the same engine and packer settings
    (the teacher's max_length, --batch-size rows and --max-batch-tokens per forward pass), after a
    warm-up batch, best of --repeats passes (the models take turns, so load on a shared machine hits
    them alike).

Each student's own train_config.json must hold out the same dev queries (same train_file content,
dev_queries, seed), or its dev figure would not be comparable -- or honest; the script stops if not.

Usage: python benchmarks/distill_curve.py --teacher outputs/scifact/reranker-minilm-full \
           --students outputs/scifact/student-l3 outputs/scifact/student-l2 --cut 2 3 \
           [--train-file outputs/scifact/mined.r3-30.train.jsonl] [--repeats 2] [--json curve.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def train_config(folder: str, train_file: str | None = None):
    """The TrainConfig a reranker folder was trained with (its train_config.json), `train_file` replacing
    the saved path (relative to wherever the run started)."""
    from rerankforge.training.config import TrainConfig

    saved = json.loads((Path(folder) / "train_config.json").read_text())
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in saved.items() if k in known})
    if train_file:
        config.train_file = train_file
    if not Path(config.train_file).is_file():
        raise SystemExit(f"{folder}/train_config.json: train_file {config.train_file} not found from here; "
                         f"pass --train-file")
    return config


def dev_ids(config) -> list[str]:
    from rerankforge.training.groups import split_dev
    from rerankforge.data_prep.training_files import read_training_rows

    return split_dev(read_training_rows(config.train_file), config.dev_queries, config.seed)[1]


def load(folder: str, layers: int | None = None):
    """(model, tokenizer): a reranker folder, or with `layers` its first layers only (embeddings, those
    layers and the head copied, as a distillation student starts)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerankforge.reranker.folder import new_head_expected

    cut = {"num_hidden_layers": layers} if layers else {}
    with new_head_expected():
        model = AutoModelForSequenceClassification.from_pretrained(folder, **cut)
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def timed_score(reranker, dev) -> tuple[dict, float]:
    """The dev scores and the pairs/s of scoring them, after one warm-up batch."""
    first = next(iter(dev.run))
    reranker.score([(dev.queries[first], dev.collection.doc_text(d)) for d, _ in dev.run[first][:reranker.batch_size]])
    started = time.perf_counter()
    scores = dev.score(reranker)
    seconds = time.perf_counter() - started
    return scores, sum(len(s) for s in scores.values()) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="trained reranker folder (with train_config.json)")
    parser.add_argument("--students", nargs="*", default=[], help="student folders distilled from it")
    parser.add_argument("--cut", nargs="*", type=int, default=[], help="also the teacher cut to L layers, untrained")
    parser.add_argument("--train-file", default=None, help="the teacher's training file, if its saved path is "
                                                           "relative to another folder")
    parser.add_argument("--dev-depth", type=int, default=None, help="candidates per dev query (default: the "
                                                                    "teacher's dev_depth)")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per forward pass at most")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="padded tokens per forward pass "
                                                                           "(default: the engine's)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per model (best kept)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()

    import torch

    from rerankforge.reranker.scoring import DEFAULT_MAX_BATCH_TOKENS, Reranker
    from rerankforge.training.dev.dev_eval import DevSet

    config = train_config(args.teacher, args.train_file)
    if args.dev_depth:
        config.dev_depth = args.dev_depth
    ids = dev_ids(config)
    for student in args.students:
        theirs = dev_ids(train_config(student, args.train_file))
        if theirs != ids:
            raise SystemExit(f"{student}: its dev split ({len(theirs)} queries) is not the teacher's ({len(ids)}); "
                             f"expected the same train_file, dev_queries and seed")
    dev = DevSet.build(config, ids, show_progress=False)
    models = [("teacher", args.teacher, None)] + [(Path(s).name, s, None) for s in args.students] + [
        (f"teacher cut to {n} (untrained)", args.teacher, n) for n in args.cut]

    rows = []
    for name, folder, layers in models:
        model, tokenizer = load(folder, layers)
        reranker = Reranker(model, tokenizer, max_length=config.max_length, batch_size=args.batch_size,
                            precision="no", max_batch_tokens=args.max_batch_tokens or DEFAULT_MAX_BATCH_TOKENS)
        scores, rate = timed_score(reranker, dev)
        fit = dev.fit_combination(scores)
        rows.append({"model": name, "folder": folder, "layers": model.config.num_hidden_layers,
                     "dev_nDCG@10": dev.evaluate(scores)["nDCG@10"],
                     "dev_nDCG@10_fused": fit.evidence["dev_nDCG@10_with_reranker"],
                     "fusion_weight": fit.combiner.weights.get("reranker", 0.0) / sum(fit.combiner.weights.values()),
                     "pairs_per_s": rate, "reranker": reranker})
    for _ in range(args.repeats - 1):
        for row in rows:
            row["pairs_per_s"] = max(row["pairs_per_s"], timed_score(row["reranker"], dev)[1])

    teacher = rows[0]
    print(f"dev split: {len(dev.queries)} train queries held out ({config.train_file}, seed {config.seed}); "
          f"{config.first_stage} top-{config.dev_depth}; first stage alone nDCG@10 {dev.first_stage()['nDCG@10']:.4f}")
    print(f"scoring: torch fp32, {torch.get_num_threads()} threads, max_length {config.max_length}, "
          f"{args.batch_size} rows / {args.max_batch_tokens or DEFAULT_MAX_BATCH_TOKENS} tokens per pass, "
          f"best of {args.repeats}")
    print(f"{'model':<34} {'layers':>6} {'nDCG@10':>8} {'vs teacher':>10} {'fused':>7} {'w':>5} {'pairs/s':>8} "
          f"{'speed-up':>8}")
    for row in rows:
        print(f"{row['model'][:34]:<34} {row['layers']:>6} {row['dev_nDCG@10']:>8.4f} "
              f"{row['dev_nDCG@10'] - teacher['dev_nDCG@10']:>+10.4f} {row['dev_nDCG@10_fused']:>7.4f} "
              f"{row['fusion_weight']:>5.2f} {row['pairs_per_s']:>8.1f} "
              f"{row['pairs_per_s'] / teacher['pairs_per_s']:>7.2f}x")
    if args.json:
        from rerankforge.core.files import atomic_write_text

        atomic_write_text(args.json, json.dumps([{k: v for k, v in r.items() if k != "reranker"} for r in rows],
                                                indent=2) + "\n")


if __name__ == "__main__":
    main()
