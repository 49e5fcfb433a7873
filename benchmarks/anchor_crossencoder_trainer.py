"""The sentence-transformers anchor on SciFact: `CrossEncoderTrainer` with one of its ranking losses (ListNet,
LambdaLoss, MultipleNegativesRanking) on rerankforge's mined data, scored on the dev split.

Same base model (all-MiniLM-L6-v2), the same mined rows minus the same held-out dev queries as the recipe
(`--config`, default configs/scifact_minilm_full.yaml: its dev_queries and seed), 8 queries x (1 positive + n
negatives) per optimizer step as the recipe, its max length, its learning rate and warm-up (chosen on dev for
this model and data), fp32 on a CPU without native bf16. The losses see each query's group as
sentence-transformers expects it: ListNet and LambdaLoss a list of documents with 1/0 labels, MNRL
(query, positive, negative_1..n) plus its default 4 in-batch negatives per query (so it scores 10 pairs per
query where the others score 6: a budget in wall time, not in steps, is what keeps that fair).

Run once per loss with a few steps to pick the loss on dev, then once with the picked loss and the number of
steps the wall-time budget holds at the measured rate; evaluate the saved folder on test with
`rerankforge eval --reranker OUTPUT` (a plain CrossEncoder folder). Prints the training wall time, pairs/s and
the dev nDCG@10 of the first stage and of the reranker alone on the first stage's top `--dev-depth`.

Usage: python benchmarks/anchor_crossencoder_trainer.py --loss listnet|lambdaloss|mnrl --steps 30 \
           --output outputs/scifact/st-anchor-listnet [--train-file outputs/scifact/mined.r3-30.train.jsonl]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

LOSSES = ("listnet", "lambdaloss", "mnrl")


def datasets_for(loss: str, groups):
    from datasets import Dataset

    if loss == "mnrl":
        width = max(len(g.docs) for g in groups) - 1
        columns = {"query": [g.query for g in groups], "positive": [g.docs[0] for g in groups]}
        for i in range(width):
            columns[f"negative_{i + 1}"] = [g.docs[1 + i] for g in groups]
        return Dataset.from_dict(columns)
    return Dataset.from_dict({"query": [g.query for g in groups], "docs": [list(g.docs) for g in groups],
                              "labels": [[1.0] + [0.0] * (len(g.docs) - 1) for g in groups]})


def make_loss(name: str, model):
    from sentence_transformers.cross_encoder import losses

    if name == "listnet":
        return losses.ListNetLoss(model)
    if name == "lambdaloss":
        return losses.LambdaLoss(model)
    return losses.MultipleNegativesRankingLoss(model)


def train(config, groups, loss_name: str, steps: int, output: Path) -> tuple[float, int]:
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments

    from rerankforge.core.models import resolve_model

    started = time.perf_counter()
    model = CrossEncoder(resolve_model(config.model), num_labels=1, device="cpu", max_length=config.max_length)
    args = CrossEncoderTrainingArguments(
        output_dir=str(output / "trainer"), per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, warmup_ratio=config.warmup_ratio, max_steps=steps, seed=config.seed,
        use_cpu=True, logging_steps=10, save_strategy="no", report_to="none", dataloader_drop_last=True)
    CrossEncoderTrainer(model=model, args=args, train_dataset=datasets_for(loss_name, groups),
                        loss=make_loss(loss_name, model)).train()
    seconds = time.perf_counter() - started
    model.save_pretrained(str(output))
    per_query = len(groups[0].docs) + (4 if loss_name == "mnrl" else 0)
    return seconds, steps * config.batch_size * per_query


def dev_ndcg(config, dev_ids: list[str], folder: Path, depth: int) -> tuple[float, float]:
    """(first stage, reranker alone) nDCG@10 on the dev queries, reranking the first stage's top `depth`."""
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.data_prep.first_stage import FirstStage
    from rerankforge.data_prep.retrieval import RetrieverConfig
    from rerankforge.eval.metrics import mean, per_query
    from rerankforge.reranker.scoring import Reranker

    collection = load_collection(config.data, split=config.split)
    queries = {qid: collection.queries[qid] for qid in dev_ids}
    stage = FirstStage.build(collection.corpus, [config.first_stage], RetrieverConfig(model=config.first_stage_model))
    run = {q: h for q, h in stage.search(collection.split_queries(), [config.first_stage], depth)[config.first_stage].items()
           if q in queries}
    qrels = {qid: collection.qrels[qid] for qid in dev_ids}
    reranked = Reranker.load(str(folder), max_length=config.max_length).rerank(run, queries, collection.doc_text,
                                                                                depth)
    return (mean(per_query(qrels, run, ("nDCG@10",)))["nDCG@10"],
            mean(per_query(qrels, reranked, ("nDCG@10",)))["nDCG@10"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps (8 queries each)")
    parser.add_argument("--output", required=True, help="folder for the trained CrossEncoder")
    parser.add_argument("--config", default="configs/scifact_minilm_full.yaml")
    parser.add_argument("--train-file", default=None, help="mined n-tuple file (default: the config's)")
    parser.add_argument("--dev-depth", type=int, default=50, help="first-stage candidates reranked per dev query")
    args = parser.parse_args()

    from rerankforge.core.hardware import use_cpu_threads
    from rerankforge.training.config import load_config
    from rerankforge.training.groups import build_groups, split_dev
    from rerankforge.data_prep.training_files import read_training_rows

    threads = use_cpu_threads()
    config = load_config(["--config", args.config, *(["--train_file", args.train_file] if args.train_file else [])])
    rows, dev_ids = split_dev(read_training_rows(config.train_file), config.dev_queries, config.seed)
    groups = build_groups(rows, config)
    seconds, pairs = train(config, groups, args.loss, args.steps, Path(args.output))
    first, reranked = dev_ndcg(config, dev_ids, Path(args.output), args.dev_depth)
    print(f"\nsentence-transformers CrossEncoderTrainer, {args.loss}, lr {config.learning_rate:g}, "
          f"{args.steps} steps x {config.batch_size} queries x {len(groups[0].docs)} docs, max length "
          f"{config.max_length}, {len(groups)} training groups, {threads}")
    print(f"training wall {seconds:.1f} s, {pairs / seconds:.2f} pairs/s; dev ({len(dev_ids)} queries, "
          f"{config.first_stage} top-{args.dev_depth}) nDCG@10: first stage {first:.4f}, reranker alone "
          f"{reranked:.4f}; saved {args.output}")


if __name__ == "__main__":
    main()
