"""The data behind the page's charts: training (dev nDCG@10 by step, with the first stage's line) from a
reranker folder's metrics.json; from a report, the reranker's scores by label, the calibration curve,
precision and recall by threshold, nDCG@10 by reranking depth and the tokens sent by top-n."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rerankforge.reranker.calibration import SIGMOID, precision_recall_at

from .report_view import ReportView

THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]
BINS = 10


def training_curve(model_folder: str | Path | None) -> dict | None:
    """Dev nDCG@10 (and MRR@10) by update, the first stage's on the same dev queries, and the training loss."""
    path = Path(model_folder) / "metrics.json" if model_folder else None
    if path is None or not path.is_file():
        return None
    history = json.loads(path.read_text(encoding="utf-8")).get("history", [])
    dev = [h for h in history if "dev/nDCG@10" in h]
    first = next((h["dev/first_stage_nDCG@10"] for h in history if "dev/first_stage_nDCG@10" in h), None)
    loss = [h for h in history if "train/loss" in h]
    return {"steps": [h["step"] for h in dev], "ndcg": [h["dev/nDCG@10"] for h in dev], "first_stage": first,
            "loss_steps": [h["step"] for h in loss], "loss": [h["train/loss"] for h in loss]}


def report_charts(view: ReportView, reranker=None) -> dict:
    """Score distributions, calibration and thresholds over every reranked candidate of the report's depth (a
    candidate is relevant where the qrels judge it so), with the model's calibration where a model is loaded, and
    the report's depth curve and token budget."""
    out: dict = {"depth_curve": view.metrics.get("depth_curve", {}), "budget": view.metrics.get("budget", {}),
                 "budget_tokenizer": view.metrics.get("budget_tokenizer")}
    name = view.rankings.reranked
    if name is None:
        return out
    scores, grades = [], []
    for qid in view.query_ids:
        judged = view.collection.qrels.get(qid, {})
        for doc_id, score in view.lists(qid)[name]:
            scores.append(score)
            grades.append(judged.get(doc_id))
    by_label = {"relevant": [s for s, g in zip(scores, grades) if g is not None and g > 0],
                "judged not relevant": [s for s, g in zip(scores, grades) if g == 0],
                "unjudged": [s for s, g in zip(scores, grades) if g is None]}
    labels = np.array([int(g is not None and g > 0) for g in grades])
    probabilities = np.asarray((reranker.probability if reranker is not None else SIGMOID.probability)(scores))
    edges = np.linspace(0, 1, BINS + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, BINS - 1)
    bins = [{"predicted": float(probabilities[which == b].mean()), "observed": float(labels[which == b].mean()),
             "count": int((which == b).sum())} for b in range(BINS) if (which == b).any()]
    thresholds = []
    for t in THRESHOLDS:
        precision, recall = precision_recall_at(probabilities, labels, t)
        thresholds.append({"threshold": t, "precision": precision, "recall": recall})
    out.update(scores_by_label=by_label, calibration=bins, thresholds=thresholds,
               calibration_source="the model's calibration" if reranker is not None else "plain sigmoid")
    return out
