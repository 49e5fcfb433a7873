"""A training file's groups for the page: each (query, positive) with its negatives and their scores, and the
negatives that are likely false negatives.

A negative is flagged where a scorer puts it at or above the group's positive: the teacher (the scores of a file
`rerankforge score-teacher` wrote), the first stage (the scores `rerankforge mine` keeps), and -- when a group is
opened with a reranker loaded -- the reranker. Mined negatives that are in fact relevant are the main known cause
of weak rerankers on domain data; these are the documents to look at first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rerankforge.core.errors import DataError


@dataclass
class Group:
    index: int
    query_id: str
    query: str
    positive_id: str | None
    negative_ids: list[str | None]
    texts: list[str]
    """The positive's text, then each negative's."""
    scores: dict[str, list[float]] = field(default_factory=dict)
    """scorer ("first stage", "teacher") -> the positive's score, then each negative's."""

    def flagged(self, scores: dict[str, list[float]] | None = None) -> list[int]:
        """Negatives (0-based) some scorer scores at or above the positive."""
        out = set()
        for values in (scores or self.scores).values():
            out.update(i for i, value in enumerate(values[1:]) if value >= values[0])
        return sorted(out)


class TrainingView:
    def __init__(self, path: str | Path):
        from rerankforge.data_prep.training_files.reading import read_training_rows

        self.path = Path(path)
        rows = read_training_rows(path)
        self.groups = [_group(i, row) for i, row in enumerate(rows)]
        if not self.groups:
            raise DataError(f"--train_file: {path} holds no training groups")

    def summaries(self) -> list[dict]:
        return [{"index": g.index, "query_id": g.query_id, "query": g.query, "positive_id": g.positive_id,
                 "negatives": len(g.negative_ids), "flagged": len(g.flagged()), "scorers": list(g.scores)}
                for g in self.groups]

    def group(self, index: int) -> Group:
        if not 0 <= index < len(self.groups):
            raise DataError(f"group: expected 0..{len(self.groups) - 1}, got {index}")
        return self.groups[index]


def _group(index: int, row: dict) -> Group:
    negatives = list(row["negatives"])
    ids = list(row.get("negative_ids") or [None] * len(negatives))
    scores: dict[str, list[float]] = {}
    if row.get("positive_score") is not None and row.get("negative_scores") is not None:
        # a teacher-scored file keeps the first stage's scores under first_stage_*; a mined one has only those
        scores["teacher" if row.get("teacher") else "first stage"] = [row["positive_score"], *row["negative_scores"]]
    if "first_stage_negative_scores" in row:
        scores["first stage"] = [row["first_stage_positive_score"], *row["first_stage_negative_scores"]]
    scores = {k: [float(x) for x in v] for k, v in scores.items() if len(v) == len(negatives) + 1}
    return Group(index, str(row["query_id"]), row["query"], row.get("positive_id"), ids,
                 [row["positive"], *negatives], scores)
