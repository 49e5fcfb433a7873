"""An eval report folder read for the page: which of its rankings are compared, each query's nDCG@10 in them,
and one query's lists side by side.

The report's own files are the source (metrics.json names the rankings, runs/*.trec hold them with their
scores); the figures are recomputed from the runs and the collection's qrels, so they are the report's to the
last digit, and labels added since are shown beside them, never mixed into them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rerankforge.core.errors import DataError
from rerankforge.core.rankings import Run
from rerankforge.data_prep.collection import Collection
from rerankforge.data_prep.runs import read_trec
from rerankforge.eval.metrics import per_query
from rerankforge.eval.report_files import slug

PRIMARY = "nDCG@10"
TIE = 1e-9
"""Changes of nDCG@10 smaller than this are ties (float noise of equal rankings)."""


@dataclass(frozen=True)
class Rankings:
    """The report's rankings the page compares: a first stage, its reranker alone, and the served ranking."""

    first_stage: str
    reranked: str | None
    served: str | None

    def names(self) -> list[str]:
        return [n for n in (self.first_stage, self.reranked, self.served) if n is not None]


class ReportView:
    """A report folder over `collection` (its split's qrels): per-query figures and side-by-side lists."""

    def __init__(self, folder: str | Path, collection: Collection, first_stage: str | None = None,
                 reranker: str | None = None):
        self.folder = Path(folder)
        metrics_path = self.folder / "metrics.json"
        if not metrics_path.is_file():
            raise DataError(f"--report: {self.folder} is not a report folder (expected metrics.json in it, as "
                            "`rerankforge eval --output FOLDER` writes)")
        try:
            self.metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
            systems = self.metrics["systems"]
            self.depth = int(self.metrics["settings"]["depth"])
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"{metrics_path}: expected the metrics.json `rerankforge eval` writes (with systems and "
                            f"settings.depth), got one it cannot read ({error!r})") from None
        if self.metrics.get("split") not in (None, collection.split):
            raise DataError(f"--split: the report is of split {self.metrics['split']!r}, got {collection.split!r}")
        self.collection = collection
        self.rankings = choose_rankings(systems, first_stage, reranker, metrics_path)
        self.runs: dict[str, Run] = {name: read_trec(self.folder / "runs" / f"{slug(name)}.trec")
                                     for name in self.rankings.names()}
        self.ndcg = {name: per_query(collection.qrels, run, (PRIMARY,), run_name=name)[PRIMARY]
                     for name, run in self.runs.items()}
        self.query_ids = list(self.ndcg[self.rankings.first_stage])

    def rows(self, labels: dict[str, dict[str, int]]) -> list[dict]:
        """One row per evaluated query: its text, nDCG@10 in each ranking and the changes, the outcome of the
        reranker alone and of the served ranking (win / loss / tie), the unjudged documents in the reranked
        top 10 and the labels it has."""
        r, qrels = self.rankings, self.collection.qrels
        out = []
        for qid in self.query_ids:
            first = self.ndcg[r.first_stage][qid]
            row = {"id": qid, "text": self.collection.queries.get(qid, ""), "first": first,
                   "labels": len(labels.get(qid, {}))}
            for key, name in (("reranked", r.reranked), ("served", r.served)):
                if name is not None:
                    value = self.ndcg[name][qid]
                    row[key], row[f"{key}_change"] = value, value - first
                    row[f"{key}_outcome"] = outcome(value - first)
            top = self.runs[r.reranked or r.first_stage].get(qid, [])[:10]
            judged = {**qrels.get(qid, {}), **labels.get(qid, {})}
            row["unjudged"] = sum(doc_id not in judged for doc_id, _ in top)
            out.append(row)
        return out

    def lists(self, query_id: str, beyond: int = 0) -> dict[str, list[tuple[str, float]]]:
        """Each compared ranking's top `depth` (the reranker's depth) for one query, best first, with scores; the
        first stage's `beyond` more (what the reranker did not see). `read_trec` keeps each list best first."""
        return {name: run.get(query_id, [])[:self.depth + (beyond if name == self.rankings.first_stage else 0)]
                for name, run in self.runs.items()}

    def disagreement(self, query_id: str) -> float:
        """1 - the share of documents the first stage's and the reranker's top 10 have in common."""
        lists = self.lists(query_id)
        first = {d for d, _ in lists[self.rankings.first_stage][:10]}
        other = {d for d, _ in lists[self.rankings.reranked or self.rankings.first_stage][:10]}
        return 1.0 - len(first & other) / max(len(first | other), 1) if first | other else 0.0


def outcome(change: float) -> str:
    return "win" if change > TIE else "loss" if change < -TIE else "tie"


def choose_rankings(systems: dict, first_stage: str | None, reranker: str | None, where: Path) -> Rankings:
    """The first stage asked for (default: the first one a reranker reranked), the reranker asked for on it
    (default: the first), alone and served."""
    names = list(systems)
    firsts = [n for n in names if systems[n].get("reranker") is None]
    if first_stage is not None and first_stage not in firsts:
        raise DataError(f"--first_stage: expected one of the report's first stages ({', '.join(firsts)}), got "
                        f"{first_stage!r}")
    reranked_on = {n: [m for m in names if systems[m].get("first_stage") == n and systems[m].get("reranker")
                       and (reranker is None or systems[m]["reranker"] == reranker)] for n in firsts}
    if first_stage is None:
        first_stage = next((n for n in firsts if reranked_on[n]), firsts[0] if firsts else None)
    if first_stage is None:
        raise DataError(f"{where}: no first-stage ranking in the report (systems: {', '.join(names)})")
    candidates = reranked_on[first_stage]
    if reranker is not None and not candidates:
        found = sorted({systems[m]["reranker"] for m in names if systems[m].get("reranker")})
        raise DataError(f"--reranker_name: expected a reranker of the report ({', '.join(found) or 'none'}), got "
                        f"{reranker!r}")
    alone = next((m for m in candidates if systems[m].get("combination") in (None, "1.00 reranker")
                  and not m.endswith(")")), None)
    served = next((m for m in candidates if m.endswith(" (served)")), None)
    return Rankings(first_stage, alone or (candidates[0] if candidates else None), served)
