"""Rankings ("runs") and the standard TREC run file format: `qid Q0 docid rank score tag`."""

from __future__ import annotations

import os
from pathlib import Path

from rerankforge.core.errors import DataError, located
from rerankforge.core.files import atomic_write_text
from rerankforge.core.rankings import Run



def is_token(text: str) -> bool:
    """One non-empty token without whitespace: what every field of a TREC run or qrels line must be."""
    return text.split() == [text]


def write_trec(path: str | os.PathLike, run: Run, tag: str) -> None:
    """Write `run` as a TREC run file (atomically). `tag` must be one token. Scores keep full precision
    (the shortest exact form), so trec_eval, which orders by score, sees no ties that rounding made."""
    if not is_token(tag):
        raise DataError(f"run tag must be one non-empty token without spaces, got {tag!r}")
    # Loaders reject such ids with their file and line; this keeps any other source of a run from
    # writing a file that no reader (trec_eval, `eval`) could split into its six fields.
    for qid, hits in run.items():
        bad = next((x for x in (qid, *(doc_id for doc_id, _ in hits)) if not is_token(x)), None)
        if bad is not None:
            raise DataError(f"{path}: ids in a TREC run must be one token without whitespace, got {bad!r} "
                            f"(query {qid!r}); nothing written")
    lines = [
        f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}\n"
        for qid, hits in run.items()
        for rank, (doc_id, score) in enumerate(hits, start=1)
    ]
    atomic_write_text(path, "".join(lines))


def read_trec(path: str | os.PathLike) -> Run:
    """Read a TREC run file; hits are ordered by score (desc), ties by the file's rank column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"run file not found: {path}")
    rows: dict[str, list[tuple[float, int, str]]] = {}
    seen: set[tuple[str, str]] = set()
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise DataError(
                    f"{located(path, line_no)}: expected 6 fields 'qid Q0 docid rank score tag', "
                    f"got {len(parts)}: {line.strip()[:80]!r}"
                )
            qid, _, doc_id, rank, score, _ = parts
            try:
                rank_value, score_value = int(rank), float(score)
            except ValueError:
                raise DataError(
                    f"{located(path, line_no)}: rank must be an integer and score a number, "
                    f"got rank={rank!r} score={score!r}"
                ) from None
            if (qid, doc_id) in seen:
                raise DataError(f"{located(path, line_no)}: document {doc_id!r} listed twice for query {qid!r}")
            seen.add((qid, doc_id))
            rows.setdefault(qid, []).append((-score_value, rank_value, doc_id))
    if not rows:
        raise DataError(f"{path}: run file is empty")
    return {qid: [(doc_id, -neg) for neg, _, doc_id in sorted(hits)] for qid, hits in rows.items()}


def truncate(run: Run, k: int) -> Run:
    """Keep each query's top-k."""
    return {qid: hits[:k] for qid, hits in run.items()}
