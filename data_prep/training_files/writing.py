"""Writing mined examples as training files (JSONL or parquet), loadable with `datasets`; reading.py reads them.

Formats: `n-tuple` (one row per query-positive pair with all its negatives, the default),
`triplet` (one row per negative), `labeled-pair` (one row per query-document pair with a 0/1 label,
for pointwise losses). Two layouts of each:

- `rerankforge` (what `rerankforge train` reads best): every row carries the ids beside the texts, and the
  first-stage scores.
- `sentence-transformers`: exactly the columns `sentence_transformers.util.mine_hard_negatives` returns for a
  (query, positive) dataset -- text columns in the order its CrossEncoderTrainer losses read them, nothing else:
  n-tuple `query, positive, negative_1..negative_n` (rows short of n negatives are dropped, as it does), triplet
  `query, positive, negative`, labeled-pair `query, positive, label` (the document column keeps the positive
  column's name there too, though it holds negatives). With `output_scores`, the first-stage scores as it
  writes them: n-tuple and triplet gain `scores` ([positive, negative...]); labeled-pair's `label` becomes
  `score`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from rerankforge.core.errors import ConfigError
from rerankforge.core.files import atomic_path
from rerankforge.core.outputs import check_output_file
from ..mining import MinedExample

FORMATS = ("n-tuple", "triplet", "labeled-pair")
LAYOUTS = ("rerankforge", "sentence-transformers")
SUFFIXES = (".jsonl", ".parquet")


def check_output_path(path: str | os.PathLike, output_format: str) -> Path:
    """Validate the output path (and its summary's, beside it) and format before any work is done."""
    path = Path(path)
    if output_format not in FORMATS:
        raise ConfigError(f"output format must be one of {', '.join(FORMATS)}; got {output_format!r}")
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"--output {path}: the extension picks the file type and must be one of "
                          f"{', '.join(SUFFIXES)}; got {path.suffix or 'none'!r}")
    check_output_file(path, "--output")
    check_output_file(summary_path(path), "--output")
    return path


def summary_path(output: str | os.PathLike) -> Path:
    """`mined.jsonl` -> `mined.summary.json`."""
    output = Path(output)
    return output.with_name(f"{output.stem}.summary.json")


def rows(examples: list[MinedExample], output_format: str) -> Iterator[dict]:
    if output_format == "n-tuple":
        for example in examples:
            yield asdict(example)
    elif output_format == "triplet":
        for e in examples:
            for negative_id, negative, score in zip(e.negative_ids, e.negatives, e.negative_scores):
                yield {"query_id": e.query_id, "query": e.query, "positive_id": e.positive_id,
                       "positive": e.positive, "negative_id": negative_id, "negative": negative,
                       "positive_score": e.positive_score, "negative_score": score}
    elif output_format == "labeled-pair":
        seen: set[tuple[str, str]] = set()
        for e in examples:
            pairs = [(e.positive_id, e.positive, 1, e.positive_score)]
            pairs += [(d, t, 0, s) for d, t, s in zip(e.negative_ids, e.negatives, e.negative_scores)]
            for doc_id, text, label, score in pairs:
                if (e.query_id, doc_id) not in seen:
                    seen.add((e.query_id, doc_id))
                    yield {"query_id": e.query_id, "query": e.query, "doc_id": doc_id, "document": text,
                           "label": label, "score": score}
    else:
        raise ConfigError(f"output format must be one of {', '.join(FORMATS)}; got {output_format!r}")


def sentence_transformers_rows(examples: list[MinedExample], output_format: str, num_negatives: int,
                               output_scores: bool = False) -> Iterator[dict]:
    """Rows as `mine_hard_negatives(Dataset({"query", "positive"}), output_format=..., output_scores=...)`
    returns them (see the module docstring); `num_negatives` is the n of an n-tuple's negative_1..negative_n."""
    if output_format == "n-tuple":
        for e in examples:
            if len(e.negatives) < num_negatives:
                continue  # a fixed number of columns: mine_hard_negatives drops such rows too
            row = {"query": e.query, "positive": e.positive,
                   **{f"negative_{i}": text for i, text in enumerate(e.negatives[:num_negatives], start=1)}}
            if output_scores:
                row["scores"] = [e.positive_score, *e.negative_scores[:num_negatives]]
            yield row
    elif output_format == "triplet":
        for e in examples:
            for negative, score in zip(e.negatives, e.negative_scores):
                row = {"query": e.query, "positive": e.positive, "negative": negative}
                if output_scores:
                    row["scores"] = [e.positive_score, score]
                yield row
    elif output_format == "labeled-pair":
        value = "score" if output_scores else "label"
        for query_examples in _by_query(examples):  # a query's positives first, then its negatives, once each
            first = query_examples[0]
            pairs = {e.positive_id: (e.positive, 1, e.positive_score) for e in query_examples}
            for e in query_examples:
                for doc_id, text, score in zip(e.negative_ids, e.negatives, e.negative_scores):
                    pairs.setdefault(doc_id, (text, 0, score))
            for text, label, score in pairs.values():
                yield {"query": first.query, "positive": text, value: score if output_scores else label}
    else:
        raise ConfigError(f"output format must be one of {', '.join(FORMATS)}; got {output_format!r}")


def short_of_negatives(examples: list[MinedExample], num_negatives: int) -> int:
    """Examples a sentence-transformers n-tuple file leaves out (fewer than `num_negatives` negatives)."""
    return sum(1 for e in examples if len(e.negatives) < num_negatives)


def _by_query(examples: list[MinedExample]) -> list[list[MinedExample]]:
    groups: dict[str, list[MinedExample]] = {}
    for e in examples:
        groups.setdefault(e.query_id, []).append(e)
    return list(groups.values())


def write_rows(path: str | os.PathLike, records: Iterator[dict]) -> int:
    """Write rows atomically (temp file + rename) as JSONL or parquet; returns the row count."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            return _write_parquet(str(tmp), list(records))
        count = 0
        with tmp.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    return count


def _write_parquet(path: str, records: list[dict]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return len(records)
