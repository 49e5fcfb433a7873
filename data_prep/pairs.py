"""Training-pair formats (JSONL, CSV, Hugging Face datasets) turned into a `Collection`.

Pairs data has no corpus or ids of its own, so one is built: every unique passage text (positive or
negative) becomes a document, identical texts share one id, and rows sharing a query text become
one query with several positives. That lets pairs data flow through the same mining, training and
evaluation code as a BEIR collection. Labelled negatives go to `Collection.given_negatives`.

Ids: documents get "d0", "d1", ... and queries "q0", "q1", ... in first-seen order, unless the data
gives ids (JSONL `query_id`, `positive_id(s)`). Ids are assigned after all rows are read, so
generated ids skip every given id and never collide with one. A text given two different ids
keeps the first; one id given to two different texts is an error.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerankforge.core.errors import DataError, located
from rerankforge.core.text import is_blank
from .beir import check_id, iter_lines, read_jsonl
from .collection import Collection, Document

QUERY_COLUMNS = ("query", "anchor", "question")
POSITIVE_COLUMNS = ("positive", "positives", "answer", "document", "pos")
NEGATIVE_COLUMNS = ("negative", "negatives", "neg")
CSV_NEGATIVES_SEPARATOR = " || "


@dataclass
class _TextIds:
    """Texts in first-seen order with the id the data gave them (None: generate one at the end)."""

    prefix: str
    id_field: str
    ids: dict[str, str | None] = field(default_factory=dict)
    given: dict[str, str] = field(default_factory=dict)
    """every given id -> the text it was first given for (to catch one id naming two texts)."""

    def add(self, text: str, given_id: str | None, where: str) -> None:
        if given_id is None:
            self.ids.setdefault(text, None)
            return
        earlier = self.given.setdefault(given_id, text)
        if earlier != text:
            raise DataError(
                f"{where}: {self.id_field} {given_id!r} names two different texts; expected one text per id, "
                f"got {earlier[:60]!r} earlier and {text[:60]!r} here"
            )
        if self.ids.get(text) is None:
            self.ids[text] = given_id

    def assign(self) -> dict[str, str]:
        """text -> final id: given ids kept, the rest numbered with `prefix`, skipping taken ids."""
        numbers = itertools.count()
        final: dict[str, str] = {}
        for text, given_id in self.ids.items():
            if given_id is None:
                given_id = next(f"{self.prefix}{n}" for n in numbers if f"{self.prefix}{n}" not in self.given)
            final[text] = given_id
        return final


class _PairsBuilder:
    """Collects rows keyed by text, then builds the Collection once every row has been validated."""

    def __init__(self) -> None:
        self.queries = _TextIds("q", "query_id")
        self.docs = _TextIds("d", "positive_id")
        self.positives: dict[str, dict[str, None]] = {}
        self.negatives: dict[str, dict[str, None]] = {}

    def add(
        self,
        where: str,
        query: str,
        positives: Sequence[str],
        negatives: Sequence[str] = (),
        query_id: str | None = None,
        positive_ids: Sequence[str] | None = None,
    ) -> None:
        self.queries.add(query, query_id, where)
        ids: Sequence[str | None] = positive_ids if positive_ids is not None else [None] * len(positives)
        for text, doc_id in zip(positives, ids, strict=True):
            self.docs.add(text, doc_id, where)
            self.positives.setdefault(query, {})[text] = None
        for text in negatives:
            self.docs.add(text, None, where)
            self.negatives.setdefault(query, {})[text] = None

    def build(self, name: str, split: str, source: str) -> Collection:
        if not self.positives:
            raise DataError(f"{source}: no pairs found; expected rows with a query and a positive passage")
        qid = self.queries.assign()
        did = self.docs.assign()
        # A text labelled positive for a query is not also one of its negatives (a false negative).
        negatives = {
            qid[q]: [did[t] for t in texts if t not in self.positives[q]]
            for q, texts in self.negatives.items()
        }
        return Collection(
            name=name,
            corpus={doc_id: Document(title="", text=text) for text, doc_id in did.items()},
            queries={query_id: text for text, query_id in qid.items()},
            qrels={qid[q]: {did[t]: 1 for t in texts} for q, texts in self.positives.items()},
            split=split,
            given_negatives={q: docs for q, docs in negatives.items() if docs},
        )


def load_pairs_jsonl(path: str | Path, split: str = "train") -> Collection:
    """Load JSON Lines pairs (`.jsonl`, `.jsonl.gz`, or `.json` with one object per line).

    Each object: `query` (string), `positive` (string) or `positives` (list of strings), optional
    `negative` (string) or `negatives` (list of strings), optional `query_id` and `positive_id` /
    `positive_ids` (one per positive). Other fields are ignored."""
    path = _existing_file(path)
    builder = _PairsBuilder()
    for line_no, obj in read_jsonl(path):
        where = located(path, line_no)
        positives = _one_or_many(obj, "positive", "positives", where, required=True)
        builder.add(
            where,
            query=_text(_field(obj, "query", where), "query", where),
            positives=positives,
            negatives=_one_or_many(obj, "negative", "negatives", where, required=False),
            query_id=_id(obj["query_id"], "query_id", where) if "query_id" in obj else None,
            positive_ids=_positive_ids(obj, len(positives), where),
        )
    return builder.build(_stem(path), split, str(path))


def load_pairs_csv(path: str | Path, split: str = "train") -> Collection:
    """Load CSV pairs: a header row with `query` and `positive` columns, one pair per row.

    Negatives are optional: a `negative` cell holds one passage, a `negatives` cell holds several
    separated by " || " (so a passage containing " || " must go in `negative`). Empty negative cells
    are fine; empty query or positive cells are errors. Other columns are ignored."""
    path = _existing_file(path)
    reader = csv.reader(line for _, line in iter_lines(path, newline=""))
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in ("query", "positive") if name not in header]
    if missing:
        raise DataError(
            f"{located(path, 1)}: header lacks column(s) {', '.join(missing)}; expected 'query' and "
            f"'positive' (optional 'negative', 'negatives'), found header {header}"
        )
    column = {
        name: header.index(name) for name in ("query", "positive", "negative", "negatives") if name in header
    }
    builder = _PairsBuilder()
    for row_no, cells in enumerate(reader, start=1):
        if not any(cell.strip() for cell in cells):
            continue
        where = f"{located(path, reader.line_num)} (row {row_no})"
        if len(cells) != len(header):
            raise DataError(f"{where}: expected {len(header)} cells as in the header, got {len(cells)}")
        builder.add(
            where,
            query=_text(cells[column["query"]], "query", where),
            positives=[_text(cells[column["positive"]], "positive", where)],
            negatives=_csv_negatives(cells, column),
        )
    return builder.build(_stem(path), split, str(path))


def load_pairs_hf(dataset_or_name: Any, split: str = "train", config: str | None = None) -> Collection:
    """Load pairs from a Hugging Face `datasets.Dataset` (or `DatasetDict`), or a name for
    `datasets.load_dataset(name, config, split=split)`.

    Columns: the query is the first present of (query, anchor, question), positives the first of
    (positive, positives, answer, document, pos), negatives (optional) the first of (negative,
    negatives, neg). A cell may hold one string or a list of strings."""
    import datasets  # heavy import, only paid by callers that use Hugging Face data

    from rerankforge.core.progress import sync_libraries

    sync_libraries()  # --no_progress reaches datasets' bars too

    label = dataset_or_name if isinstance(dataset_or_name, str) else None
    dataset = _hf_dataset(dataset_or_name, split, config, datasets)
    label = label or dataset.info.dataset_name or "dataset"
    query_col = _pick_column(dataset.column_names, QUERY_COLUMNS, "query", label, required=True)
    positive_col = _pick_column(dataset.column_names, POSITIVE_COLUMNS, "positive", label, required=True)
    negative_col = _pick_column(dataset.column_names, NEGATIVE_COLUMNS, "negative", label, required=False)
    columns = [c for c in (query_col, positive_col, negative_col) if c]
    builder = _PairsBuilder()
    row = 0
    for batch in dataset.select_columns(columns).iter(batch_size=1000):
        for i, query in enumerate(batch[query_col]):
            where = f"{label} row {row}"
            builder.add(
                where,
                query=_text(query, query_col, where),
                positives=_cell_texts(batch[positive_col][i], positive_col, where, required=True),
                negatives=_cell_texts(batch[negative_col][i], negative_col, where) if negative_col else [],
            )
            row += 1
    return builder.build(label.rsplit("/", 1)[-1], split, label)


def _existing_file(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"pairs file not found: {path}")
    return path


def _stem(path: Path) -> str:
    """File name without `.gz` and its format extension: `train.jsonl.gz` -> `train`."""
    return Path(path.name.removesuffix(".gz")).stem


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}; got fields {sorted(obj)}")
    return obj[key]


def _text(value: Any, name: str, where: str) -> str:
    """A non-blank string: a blank query or passage is a data error, not something to train on."""
    if not isinstance(value, str):
        raise DataError(f"{where}: {name!r} must be a string, got {type(value).__name__} {value!r:.60}")
    if is_blank(value):
        raise DataError(f"{where}: {name!r} must be a non-empty text, got {value!r}")
    return value


def _text_list(value: Any, name: str, where: str) -> list[str]:
    if not isinstance(value, list):
        raise DataError(
            f"{where}: {name!r} must be a list of strings, got {type(value).__name__} {value!r:.60}"
        )
    return [_text(item, f"{name}[{i}]", where) for i, item in enumerate(value)]


def _one_or_many(obj: dict[str, Any], one: str, many: str, where: str, required: bool) -> list[str]:
    """`one` (a string) or `many` (a list of strings), not both."""
    if one in obj and many in obj:
        raise DataError(f"{where}: expected either {one!r} or {many!r}, got both")
    if one in obj:
        return [_text(obj[one], one, where)]
    if many in obj:
        texts = _text_list(obj[many], many, where)
        if required and not texts:
            raise DataError(f"{where}: {many!r} must hold at least one passage, got []")
        return texts
    if required:
        raise DataError(
            f"{where}: missing positive passage; expected field {one!r} (string) or {many!r} "
            f"(list of strings), got fields {sorted(obj)}"
        )
    return []


def _id(value: Any, name: str, where: str) -> str:
    """A given id: a non-empty string, or an integer (converted, as in BEIR files)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return check_id(value, name, where)
    raise DataError(
        f"{where}: {name!r} must be a non-empty string or integer, got {type(value).__name__} {value!r:.60}"
    )


def _positive_ids(obj: dict[str, Any], count: int, where: str) -> list[str] | None:
    """`positive_id` (one) or `positive_ids` (list), as many as there are positives."""
    if "positive_id" in obj and "positive_ids" in obj:
        raise DataError(f"{where}: expected either 'positive_id' or 'positive_ids', got both")
    if "positive_id" in obj:
        values = [obj["positive_id"]]
    elif "positive_ids" in obj:
        values = obj["positive_ids"]
        if not isinstance(values, list):
            raise DataError(f"{where}: 'positive_ids' must be a list, got {type(values).__name__}")
    else:
        return None
    if len(values) != count:
        raise DataError(f"{where}: expected {count} positive id(s), one per positive, got {len(values)}")
    return [_id(v, "positive_id", where) for v in values]


def _csv_negatives(cells: list[str], column: dict[str, int]) -> list[str]:
    negatives = []
    if "negative" in column and cells[column["negative"]].strip():
        negatives.append(cells[column["negative"]])
    if "negatives" in column:
        parts = cells[column["negatives"]].split(CSV_NEGATIVES_SEPARATOR)
        negatives.extend(part for part in parts if part.strip())
    return negatives


def _hf_dataset(dataset_or_name: Any, split: str, config: str | None, datasets: Any) -> Any:
    """A `datasets.Dataset` from an object or a name; load failures become DataErrors."""
    if isinstance(dataset_or_name, str):
        try:
            dataset_or_name = datasets.load_dataset(dataset_or_name, config, split=split)
        except (OSError, ValueError, datasets.exceptions.DatasetsError) as e:
            where = dataset_or_name + (f" (config {config!r})" if config else "")
            raise DataError(f"could not load Hugging Face dataset {where}, split {split!r}: {e}") from e
    if isinstance(dataset_or_name, datasets.DatasetDict):
        if split not in dataset_or_name:
            raise DataError(f"dataset has no split {split!r}; splits found: {', '.join(dataset_or_name)}")
        dataset_or_name = dataset_or_name[split]
    if not isinstance(dataset_or_name, datasets.Dataset):
        raise DataError(
            "expected a datasets.Dataset, a DatasetDict or a dataset name, "
            f"got {type(dataset_or_name).__name__}"
        )
    return dataset_or_name


def _pick_column(
    found: list[str], candidates: tuple[str, ...], role: str, label: str, required: bool
) -> str | None:
    for name in candidates:
        if name in found:
            return name
    if required:
        raise DataError(
            f"{label}: no {role} column; expected one of {', '.join(candidates)}, found columns {found}"
        )
    return None


def _cell_texts(value: Any, column: str, where: str, required: bool = False) -> list[str]:
    """A Hugging Face cell holding one passage (string) or several (list of strings)."""
    if value is None and not required:
        return []
    texts = [_text(value, column, where)] if isinstance(value, str) else _text_list(value, column, where)
    if required and not texts:
        raise DataError(f"{where}: {column!r} must hold at least one passage, got []")
    return texts
