"""Reading a training file as (query, positive, negatives) rows, whichever of the accepted layouts it has.

Where from: a .jsonl (or .json) / .parquet / .csv file, a folder `datasets` saved (`save_to_disk`; a
DatasetDict gives its train split), or `hf:NAME[:CONFIG]`, a Hub dataset's train split (`datasets.load_dataset`).

Which layouts, told apart by their columns. Ids, scores and labels aside, the text columns are read by
position, as sentence-transformers' CrossEncoderTrainer reads them (the first is the query):

    n-tuple, rerankforge  query_id, query, positive, negatives (a list) [, positive_score, negative_scores]
    n-tuple / triplet     query, positive, negative_1 .. negative_n (or one `negative`) [, scores]
                          -- what mine_hard_negatives and `rerankforge mine --layout sentence-transformers`
                          write; rows of the same (query, positive) are merged into one
    labeled-pair          query, document, label [, score]: grouped by query, label > 0 are its positives,
                          0 its negatives; one row per positive, with all the query's negatives
    labeled-list          query, [documents], [labels]: the same, one row holding a query's pairs

Rows without a query_id get one made from their text (`text_query_id`): the same text gets the same id in any
file, so the dev split held out by id is stable, and the dev evaluation finds the collection's query of that
text (train/dev_eval.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

from rerankforge.core.errors import DataError, located, preview
from rerankforge.core.text import is_blank

logger = logging.getLogger(__name__)

TEXT_ID_PREFIX = "text-"
ID_COLUMNS = ("query_id", "positive_id", "negative_id", "negative_ids", "doc_id", "corpus_id", "positive_rank")
SCORE_COLUMNS = ("score", "scores", "positive_score", "negative_score", "negative_scores")
LABEL_COLUMNS = ("label", "labels")
RERANKFORGE_NTUPLE = ("query_id", "query", "positive", "negatives")
LAYOUTS = ("n-tuple (query_id, query, positive, negatives), as `rerankforge mine` writes it; n-tuple (query, positive, "
           "negative_1..negative_n) or triplet (query, positive, negative), as sentence-transformers' "
           "mine_hard_negatives writes them; labeled-pair (query, document, label); labeled-list (query, [documents], "
           "[labels])")

Located = list[tuple[str, dict]]
"""Rows, each with where it is ('file:line' or 'source row N') for error messages."""


def text_query_id(text: str) -> str:
    """A stable query id made from the query's text (whitespace runs count as one space)."""
    return TEXT_ID_PREFIX + hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def read_training_rows(source: str | os.PathLike) -> list[dict]:
    """Rows of `source` with query_id, query, positive, negatives -- plus positive_score and negative_scores
    where it has first-stage (or teacher) scores -- checked, with errors naming the row."""
    name, located_rows = _located_rows(source)
    if not located_rows:
        raise DataError(f"{name}: no training rows")
    for where, row in located_rows:
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    where, first = located_rows[0]
    if "negatives" in first:
        return _rerankforge_rows(located_rows)
    columns = list(first)
    texts = _text_columns(columns)
    if "label" in columns or "labels" in columns:
        return _labeled_rows(name, located_rows, texts)
    if "score" in columns and len(texts) == 2:
        raise DataError(f"{where}: a labeled-pair row with a 'score' but no 'label' (mine_hard_negatives writes that "
                        f"with output_scores=True): scores don't say which documents are relevant; expected 0/1 "
                        f"labels (mine without output_scores); got columns {', '.join(columns)}")
    if len(texts) >= 3:
        return _positional_rows(located_rows, texts)
    hint = (" -- (query, positive) pairs without negatives: mine them first (`rerankforge mine --data FILE`, or "
            "sentence_transformers.util.mine_hard_negatives)" if len(texts) == 2 else "")
    raise DataError(f"{where}: expected one of these layouts: {LAYOUTS}; got columns {', '.join(columns)}{hint}")


# ---------------------------------------------------------------- where rows come from

def _located_rows(source: str | os.PathLike) -> tuple[str, Located]:
    text = os.fspath(source)
    if text.startswith("hf:"):
        return text, _dataset_rows(text, _hub_dataset(text))
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path), _dataset_rows(str(path), _disk_dataset(path))
    if not path.is_file():
        raise DataError(f"no such file or folder: {text} (expected a .jsonl/.parquet/.csv file, a `datasets` "
                        f"save_to_disk folder, or hf:NAME for a Hugging Face Hub dataset)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return str(path), [(f"{path} row {i}", row) for i, row in enumerate(pq.read_table(path).to_pylist(), start=1)]
    if path.suffix == ".csv":
        import pyarrow.csv as pcsv

        try:
            table = pcsv.read_csv(path)
        except Exception as error:  # pyarrow's ArrowInvalid says which row
            raise DataError(f"{path}: expected a CSV file with a header line, could not parse it ({error})") from None
        return str(path), [(f"{path} row {i}", row) for i, row in enumerate(table.to_pylist(), start=1)]
    return str(path), _json_rows(path)


def _json_rows(path: Path) -> Located:
    """JSON lines (any suffix but .parquet and .csv), or one JSON array in a .json file."""
    if path.suffix == ".json" and path.read_text(encoding="utf-8").lstrip().startswith("["):
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{located(path, e.lineno)}: expected a JSON array of objects, got invalid JSON "
                            f"({e.msg})") from None
        return [(f"{path} item {i}", item) for i, item in enumerate(items, start=1)]
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{located(path, line_no)}: expected one JSON object per line, got invalid "
                                f"JSON ({e.msg})") from None
            rows.append((located(path, line_no), row))
    return rows


def _disk_dataset(path: Path):
    """The Dataset a `save_to_disk` folder holds (a DatasetDict's train split, or its only one)."""
    if not ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
        held = sorted(p.name for p in path.iterdir())
        raise DataError(f"{path}: expected a folder written by `datasets` save_to_disk (state.json or "
                        f"dataset_dict.json), got a folder with {preview(held, 8) if held else 'nothing'}")
    from datasets import load_from_disk

    return _train_split(str(path), load_from_disk(str(path)))


def _hub_dataset(text: str):
    """hf:NAME[:CONFIG] -> its train split, via datasets.load_dataset (the Hub, or a local dataset folder)."""
    name, _, config = text.removeprefix("hf:").partition(":")
    if not name:
        raise DataError(f"expected hf:NAME or hf:NAME:CONFIG, got {text!r}")
    from datasets import load_dataset

    try:
        dataset = load_dataset(name, config or None)
    except Exception as error:  # offline, no such dataset, no access: one line, not a traceback
        raise DataError(f"{text}: could not load the dataset ({type(error).__name__}: {error})") from None
    return _train_split(text, dataset)


def _train_split(name: str, dataset):
    from datasets import DatasetDict

    if not isinstance(dataset, DatasetDict):
        return dataset
    if "train" in dataset:
        return dataset["train"]
    if len(dataset) == 1:
        return next(iter(dataset.values()))
    raise DataError(f"{name}: expected a train split (or a single split), got splits {', '.join(dataset)}")


def _dataset_rows(name: str, dataset) -> Located:
    return [(f"{name} row {i}", row) for i, row in enumerate(dataset.to_list(), start=1)]


# ---------------------------------------------------------------- layouts

def _rerankforge_rows(located_rows: Located) -> list[dict]:
    """The n-tuple layout `rerankforge mine` writes: rows kept as they are (ids made where there are none)."""
    has_ids = "query_id" in located_rows[0][1]
    required = RERANKFORGE_NTUPLE if has_ids else RERANKFORGE_NTUPLE[1:]
    for where, row in located_rows:
        missing = [k for k in required if k not in row]
        if missing:
            raise DataError(f"{where}: expected fields {', '.join(required)} (an n-tuple file from `rerankforge "
                            f"mine`), missing {', '.join(missing)}; got fields {', '.join(row)}")
        if not isinstance(row["negatives"], list):
            raise DataError(f"{where}: expected 'negatives' to be a list of texts, got "
                            f"{type(row['negatives']).__name__}")
        for key in ("query", "positive"):
            _check_text(where, key, row[key])
        if not has_ids:
            row["query_id"] = text_query_id(row["query"])
    return [row for _, row in located_rows]


def _text_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c not in ID_COLUMNS + SCORE_COLUMNS + LABEL_COLUMNS]


def _positional_rows(located_rows: Located, texts: list[str]) -> list[dict]:
    """query, positive, negative... columns (n-tuple or triplet); rows of one (query, positive) merged."""
    merged: dict[tuple[str, str], dict] = {}
    for where, row in located_rows:
        _check_columns(where, row, texts)
        for column in texts:
            _check_text(where, column, row[column])
        query, positive, negatives = row[texts[0]], row[texts[1]], [row[c] for c in texts[2:]]
        scores = _row_scores(where, row, len(texts) - 1)
        query_id = str(row["query_id"]) if row.get("query_id") is not None else text_query_id(query)
        out = merged.setdefault((query_id, positive), {"query_id": query_id, "query": query, "positive": positive,
                                                       "negatives": []})
        if scores is not None:
            out.setdefault("positive_score", scores[0])
            out.setdefault("negative_scores", [])
        for i, negative in enumerate(negatives):
            if negative != positive and negative not in out["negatives"]:
                out["negatives"].append(negative)
                if scores is not None:
                    out["negative_scores"].append(scores[1 + i])
    return list(merged.values())


def _row_scores(where: str, row: dict, expected: int) -> list[float] | None:
    """[positive, negative...] scores of a positional row: `scores` (sentence-transformers), or positive_score
    with negative_score / negative_scores (rerankforge's triplet and n-tuple); None when it has none."""
    if "scores" in row:
        scores = row["scores"]
    elif "positive_score" in row and ("negative_score" in row or "negative_scores" in row):
        rest = row.get("negative_scores", [row.get("negative_score")])
        scores = [row["positive_score"], *(rest if isinstance(rest, list) else [rest])]
    else:
        return None
    if not isinstance(scores, list) or len(scores) != expected or not all(_is_number(s) for s in scores):
        raise DataError(f"{where}: expected the scores to be {expected} numbers (the positive's, then each "
                        f"negative's), got {scores!r}")
    return [float(s) for s in scores]


def _labeled_rows(name: str, located_rows: Located, texts: list[str]) -> list[dict]:
    """labeled-pair / labeled-list rows grouped by query: a row per positive, with all the query's negatives."""
    label_column = "label" if "label" in located_rows[0][1] else "labels"
    if len(texts) != 2:
        raise DataError(f"{located_rows[0][0]}: a labeled row needs two text columns (query, document) beside "
                        f"'{label_column}', got {len(texts)}: {', '.join(texts) or 'none'}")
    queries: dict[str, dict] = {}
    for where, row in located_rows:
        _check_columns(where, row, [*texts, label_column])
        query = row[texts[0]]
        _check_text(where, texts[0], query)
        query_id = str(row["query_id"]) if row.get("query_id") is not None else text_query_id(query)
        group = queries.setdefault(query_id, {"query": query, "positives": {}, "negatives": {}})
        for document, label, score in _labeled_pairs(where, row, texts[1], label_column):
            kind = "positives" if label > 0 else "negatives"
            group[kind].setdefault(document, score)
    rows, without_positive = [], 0
    for query_id, group in queries.items():
        if not group["positives"]:
            without_positive += 1
            continue
        negatives = {d: s for d, s in group["negatives"].items() if d not in group["positives"]}
        for positive, score in group["positives"].items():
            row = {"query_id": query_id, "query": group["query"], "positive": positive, "negatives": list(negatives)}
            if score is not None and all(s is not None for s in negatives.values()):
                row.update(positive_score=score, negative_scores=list(negatives.values()))
            rows.append(row)
    if not rows:
        raise DataError(f"{name}: none of its {len(queries)} queries has a document labelled relevant (label > 0); "
                        f"expected a positive per query to train on")
    if without_positive:
        logger.warning("%s: %d of %d queries have no document labelled relevant and are left out", name,
                       without_positive, len(queries))
    return rows


def _labeled_pairs(where: str, row: dict, document_column: str,
                   label_column: str) -> list[tuple[str, int, float | None]]:
    """(document, label, score) of a labeled-pair row, or of each item of a labeled-list row."""
    documents, labels, scores = row[document_column], row[label_column], row.get("score", row.get("scores"))
    if label_column == "label":
        documents, labels, scores = [documents], [labels], [scores]
    elif not (isinstance(documents, list) and isinstance(labels, list) and len(documents) == len(labels)):
        raise DataError(f"{where}: a labeled-list row needs '{document_column}' and 'labels' as lists of the same "
                        f"length, got {type(documents).__name__} and {type(labels).__name__}")
    if not isinstance(scores, list) or len(scores) != len(documents):
        scores = [None] * len(documents)
    pairs = []
    for document, label, score in zip(documents, labels, scores):
        _check_text(where, document_column, document)
        pairs.append((document, _label(where, label_column, label), float(score) if _is_number(score) else None))
    return pairs


def _label(where: str, column: str, value) -> int:
    if isinstance(value, bool):
        return int(value)
    if _is_number(value) and value >= 0 and float(value).is_integer():
        return int(value)
    raise DataError(f"{where}: expected '{column}' to be 0 (not relevant) or 1 (or a graded relevance 2, 3, ...), "
                    f"got {value!r}")


def _check_columns(where: str, row: dict, needed: list[str]) -> None:
    missing = [c for c in needed if c not in row]
    if missing:
        raise DataError(f"{where}: expected columns {', '.join(needed)} (as in the first row), missing "
                        f"{', '.join(missing)}; got {', '.join(row)}")


def _check_text(where: str, column: str, value) -> None:
    if not isinstance(value, str) or is_blank(value):
        got = f"{type(value).__name__} {value!r}"[:80] if not isinstance(value, str) else "an empty text"
        raise DataError(f"{where}: expected text in column '{column}', got {got}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
