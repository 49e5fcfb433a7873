"""Mining SciFact train: rerankforge vs sentence-transformers' `util.mine_hard_negatives`, one run.

Same bi-encoder (all-MiniLM-L6-v2, max length 256, batch 64), same corpus (title + text), same
candidate window (top 100), same false-negative filter (relative margin 0.05), 8 negatives, top
sampling, faiss exact search. Each side is timed from loading the model to having the negatives:

  cold  -- empty embedding caches: both encode the corpus and the queries;
  warm  -- the second run, each with its own embedding cache (sentence-transformers' `cache_folder`).

Prints wall times, the ratios rerankforge / sentence-transformers, and how far the chosen negatives
agree. Usage:  python benchmarks/mine_vs_sentence_transformers.py [--data DIR] [--warm-repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rerankforge.core.models import DEFAULT_BI_ENCODER, resolve_model
from rerankforge.data_prep.dense import DenseRetriever
from rerankforge.data_prep.embeddings import Encoder, EncoderSettings
from rerankforge.data_prep.mining import MiningConfig, mine_negatives
from rerankforge.data_prep.sources import load_collection

NUM_NEGATIVES, MAX_RANK, MARGIN, MAX_LENGTH, BATCH = 8, 100, 0.05, 256, 64


def rerankforge_mine(collection, cache_dir: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    encoder = Encoder(EncoderSettings(DEFAULT_BI_ENCODER, max_length=MAX_LENGTH), batch_size=BATCH,
                      cache_dir=cache_dir, show_progress=False)
    retriever = DenseRetriever(collection.corpus, encoder)
    config = MiningConfig(num_negatives=NUM_NEGATIVES, max_rank=MAX_RANK, relative_margin=MARGIN)
    result = mine_negatives(collection, retriever, config)
    seconds = time.perf_counter() - started
    return seconds, {(e.query, e.positive): e.negatives for e in result.examples}


def sentence_transformers_mine(collection, cache_dir: Path) -> tuple[float, dict]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    pairs = [(collection.queries[q], collection.doc_text(p))
             for q in collection.judged_query_ids() for p in collection.positives(q)]
    dataset = Dataset.from_dict({"query": [q for q, _ in pairs], "positive": [p for _, p in pairs]})
    corpus = [doc.full_text for doc in collection.corpus.values()]
    started = time.perf_counter()
    model = SentenceTransformer(resolve_model(DEFAULT_BI_ENCODER), device="cpu")
    model.max_seq_length = MAX_LENGTH
    mined = mine_hard_negatives(dataset, model, corpus=corpus, range_min=0, range_max=MAX_RANK,
                                relative_margin=MARGIN, num_negatives=NUM_NEGATIVES, sampling_strategy="top",
                                output_format="n-tuple", batch_size=BATCH, use_faiss=True, verbose=False,
                                cache_folder=str(cache_dir))
    seconds = time.perf_counter() - started
    columns = [f"negative_{i}" for i in range(1, NUM_NEGATIVES + 1)]
    return seconds, {(row["query"], row["positive"]): [row[c] for c in columns] for row in mined}


def overlap(ours: dict, theirs: dict) -> tuple[float, int]:
    """Mean fraction of sentence-transformers' negatives that rerankforge also chose, over common pairs."""
    common = [pair for pair in theirs if pair in ours]
    shares = [len(set(ours[p]) & set(theirs[p])) / len(theirs[p]) for p in common]
    return statistics.fmean(shares), len(common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="scifact", help="BEIR folder or dataset name (default: scifact)")
    parser.add_argument("--warm-repeats", type=int, default=3, help="warm runs per side (median reported)")
    args = parser.parse_args()
    collection = load_collection(args.data, split="train")

    with tempfile.TemporaryDirectory() as ours_cache, tempfile.TemporaryDirectory() as st_cache:
        st_cold, st_negatives = sentence_transformers_mine(collection, Path(st_cache))
        rf_cold, rf_negatives = rerankforge_mine(collection, Path(ours_cache))
        st_warm = [sentence_transformers_mine(collection, Path(st_cache))[0] for _ in range(args.warm_repeats)]
        rf_warm = [rerankforge_mine(collection, Path(ours_cache))[0] for _ in range(args.warm_repeats)]

    agreement, common = overlap(rf_negatives, st_negatives)
    st_w, rf_w = statistics.median(st_warm), statistics.median(rf_warm)
    print(f"\nSciFact train: {len(rf_negatives)} (query, positive) pairs, {len(collection.corpus)} documents, "
          f"{NUM_NEGATIVES} negatives, top-{MAX_RANK}, relative margin {MARGIN}")
    print(f"{'':24}{'sentence-transformers':>24}{'rerankforge':>14}{'ratio rf/st':>14}")
    print(f"{'cold (s)':24}{st_cold:24.1f}{rf_cold:14.1f}{rf_cold / st_cold:14.3f}")
    print(f"{'warm, median (s)':24}{st_w:24.2f}{rf_w:14.2f}{rf_w / st_w:14.3f}")
    print(f"{'rf warm / st cold':24}{'':24}{'':14}{rf_w / st_cold:14.3f}")
    print(f"warm runs: st {[round(s, 2) for s in st_warm]}  rf {[round(s, 2) for s in rf_warm]}")
    print(f"pairs sentence-transformers kept (it drops pairs short of negatives): {len(st_negatives)}")
    print(f"negative overlap on {common} common pairs: {agreement:.3f} of sentence-transformers' negatives "
          f"also chosen by rerankforge")


if __name__ == "__main__":
    main()
