"""Training a SciFact reranker: rerankforge vs sentence-transformers' CrossEncoderTrainer + BCE, one run.

Same base model (all-MiniLM-L6-v2), same mined training rows (minus the same held-out dev queries),
same number of optimizer steps, same number of (query, document) pairs per step. Each side uses its
own recipe as a user would run it:

  sentence-transformers: CrossEncoderTrainer, BinaryCrossEntropyLoss (pos_weight = negatives per
      positive), lr 2e-5 (its documented default), its default max length, fp32 -- or, with
      --match-settings, rerankforge's max length and precision;
  rerankforge: the config given (default configs/scifact_minilm_full.yaml), listwise loss over
      1 positive + n negatives, its max length and precision.

Prints training wall time of each and the ratio, then both models' nDCG@10 reranking the dense
top-`--depth` of SciFact test (reranker scores alone, no fusion), scored with the same engine and
each model's training max length.

Usage: python benchmarks/train_vs_sentence_transformers.py --data ../shared/datasets/scifact \
           --train-file outputs/scifact/mined.train.jsonl --run outputs/scifact/dense.test.trec --steps 40
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from rerankforge.core.models import DEFAULT_BI_ENCODER, resolve_model
from rerankforge.data_prep.runs import read_trec
from rerankforge.data_prep.sources import load_collection
from rerankforge.eval.metrics import mean, per_query
from rerankforge.reranker.scoring import Reranker
from rerankforge.training.config import load_config
from rerankforge.training.groups import build_groups, split_dev
from rerankforge.data_prep.training_files import read_training_rows


def train_rerankforge(config) -> float:
    from rerankforge.training.loop import train

    started = time.perf_counter()
    train(config)
    return time.perf_counter() - started


def train_sentence_transformers(config, rows: list[dict], out: Path, match: bool, device: str = "cpu",
                                callbacks: tuple = ()) -> tuple[float, int]:
    """CrossEncoderTrainer on the same groups as pairs; with `match`, rerankforge's max length and the precision
    it resolves to on `device`. Returns (wall seconds, max length used); the model is saved in out/final."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    import torch

    groups = build_groups(rows, config)  # the same groups (fillers included) as pairs with 0/1 labels
    pairs = [(g.query, doc, 1.0 if i == 0 else 0.0) for g in groups for i, doc in enumerate(g.docs)]
    dataset = Dataset.from_dict({"query": [p[0] for p in pairs], "passage": [p[1] for p in pairs],
                                 "label": [p[2] for p in pairs]})
    started = time.perf_counter()
    model = CrossEncoder(resolve_model(config.model), num_labels=1, device=device,
                         max_length=config.max_length if match else None)
    args = CrossEncoderTrainingArguments(
        output_dir=str(out), per_device_train_batch_size=config.batch_size * (1 + config.num_negatives),
        learning_rate=2e-5, warmup_ratio=config.warmup_ratio, max_steps=config.max_steps, seed=config.seed,
        bf16=match and _precision(config, device) == "bf16", fp16=match and _precision(config, device) == "fp16",
        use_cpu=device == "cpu", logging_steps=10, save_strategy="no",
        report_to="none", dataloader_drop_last=False)
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(config.num_negatives)))
    CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=list(callbacks)).train()
    seconds = time.perf_counter() - started
    model.save_pretrained(str(out / "final"))
    return seconds, model.max_seq_length


def _precision(config, device: str = "cpu") -> str:
    """What rerankforge trains in on `device` (`auto`: bf16 only where it is native; fp16 on a GPU without it)."""
    from rerankforge.core.hardware import resolve_precision

    return resolve_precision(config.mixed_precision, device).name


def test_ndcg(folder: str, collection, run, depth: int, max_length: int | None, precision: str) -> float:
    reranker = Reranker.load(folder, max_length=max_length, batch_size=64, precision=precision)
    reranked = reranker.rerank(run, collection.split_queries(), collection.doc_text, depth)
    return mean(per_query(collection.qrels, reranked, ("nDCG@10",)))["nDCG@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--train-file", required=True, help="mined n-tuple file of the train split")
    parser.add_argument("--run", required=True, help="first-stage TREC run of the test split")
    parser.add_argument("--config", default="configs/scifact_minilm_full.yaml")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--match-settings", action="store_true",
                        help="give sentence-transformers rerankforge's max length and precision")
    parser.add_argument("--eval-precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="precision of the test scoring (auto: bf16 where the CPU has it natively)")
    args = parser.parse_args()

    test = load_collection(args.data, split="test")
    run = read_trec(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = load_config(["--config", args.config, "--train_file", args.train_file, "--data", args.data,
                              "--max_steps", str(args.steps), "--output_dir", str(tmp / "rf"), "--eval_steps", "0",
                              "--save_steps", "0", "--dev_queries", "0", "--fit_combination", "false"])
        # Both train on the rows left after the usual dev hold-out, so the data is the same as in a real run.
        dev_queries = load_config(["--config", args.config, "--train_file", args.train_file]).dev_queries
        rows, _ = split_dev(read_training_rows(args.train_file), dev_queries, config.seed)
        trimmed = tmp / "train.jsonl"
        import json

        trimmed.write_text("".join(json.dumps(r) + "\n" for r in rows))
        config = dataclasses.replace(config, train_file=str(trimmed))

        st_seconds, st_max_length = train_sentence_transformers(config, rows, tmp / "st", args.match_settings)
        rf_seconds = train_rerankforge(config)
        st_ndcg = test_ndcg(str(tmp / "st" / "final"), test, run, args.depth, st_max_length, args.eval_precision)
        rf_ndcg = test_ndcg(str(tmp / "rf"), test, run, args.depth, config.max_length, args.eval_precision)

    first = mean(per_query(test.qrels, {q: h[:args.depth] for q, h in run.items()}, ("nDCG@10",)))["nDCG@10"]
    pairs = config.max_steps * config.batch_size * (1 + config.num_negatives)
    print(f"\n{config.max_steps} steps x {config.batch_size * (1 + config.num_negatives)} pairs = {pairs} pairs, "
          f"base {DEFAULT_BI_ENCODER}, {len(rows)} training rows")
    print(f"sentence-transformers: BCE, lr 2e-5, max length {st_max_length}, "
          f"{_precision(config) if args.match_settings else 'fp32'}")
    print(f"rerankforge:           {config.loss}, lr {config.learning_rate:g}, max length {config.max_length}, "
          f"{_precision(config)}")
    print(f"{'':22}{'sentence-transformers':>24}{'rerankforge':>14}{'ratio rf/st':>14}")
    print(f"{'training wall (s)':22}{st_seconds:24.1f}{rf_seconds:14.1f}{rf_seconds / st_seconds:14.3f}")
    print(f"{'pairs/s':22}{pairs / st_seconds:24.2f}{pairs / rf_seconds:14.2f}")
    print(f"{'test nDCG@10 (top-' + str(args.depth) + ')':22}{st_ndcg:24.4f}{rf_ndcg:14.4f}")
    print(f"dense first stage alone: nDCG@10 {first:.4f}")


if __name__ == "__main__":
    main()
