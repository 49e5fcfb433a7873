"""The page's JSON API: the queries, one query, live search, the training groups, labels and suggestions, and
the charts. Every document text goes out as JSON data; the page renders it as text."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from .charts import report_charts, training_curve
from .state import InspectState

BEYOND = 10
"""First-stage documents shown below the reranking depth: what the reranker never saw."""


class LabelIn(BaseModel):
    query_id: str = Field(max_length=1000)
    doc_id: str = Field(max_length=1000)
    relevance: int = Field(ge=0, le=1000, description="0: not relevant; graded collections: 1..their top grade")
    annotator: str = Field(default="", max_length=200)


def api_router(state: InspectState) -> APIRouter:
    router = APIRouter(prefix="/api")
    router.add_api_route("/info", lambda: info(state), methods=["GET"])
    router.add_api_route("/queries", lambda: {"rows": state.report.rows(state.latest()) if state.report else []},
                         methods=["GET"])

    @router.get("/query")
    async def one_query(id: str = Query(max_length=1000)):
        return await run_in_threadpool(query_view, state, id)

    @router.get("/search")
    async def search(q: str = Query(min_length=1, max_length=4000), k: int = Query(50, ge=1, le=200),
                     top_n: int = Query(10, ge=1, le=100)):
        if state.live is None:
            raise HTTPException(409, "live search needs a reranker: start inspect with --model")
        return await run_in_threadpool(state.live.search, q, k, top_n)

    @router.get("/labels")
    def labels():
        return {"path": str(state.labels_path), "labels": [vars(label) for label in state.labels()]}

    @router.post("/labels")
    async def add_label(label: LabelIn):
        return await run_in_threadpool(state.add_label, label.query_id, label.doc_id, label.relevance,
                                       label.annotator or state.annotator)

    router.add_api_route("/suggestions", lambda: suggestions(state), methods=["GET"])

    @router.get("/training")
    def training():
        if state.training is None:
            raise HTTPException(409, "no training file: start inspect with --train_file")
        return {"path": str(state.training.path), "groups": state.training.summaries()}

    @router.get("/training/group")
    async def training_group(index: int = Query(ge=0)):
        return await run_in_threadpool(group_view, state, index)

    @router.get("/charts")
    async def charts():
        return await run_in_threadpool(lambda: {
            "training": training_curve(state.model_folder),
            "report": report_charts(state.report, state.live.reranker if state.live else None) if state.report
            else None})

    return router


def info(state: InspectState) -> dict:
    c = state.collection
    report = state.report
    return {"collection": c.name, "split": c.split, "max_grade": state.max_grade, "labels_path": str(state.labels_path),
            "annotator": state.annotator, "model": state.model_folder, "live_depth": state.live_depth,
            "live_ranking": state.live.ranking if state.live else None,
            "report": None if report is None else {"folder": str(report.folder), "depth": report.depth,
                                                   **vars(report.rankings)},
            "training_file": str(state.training.path) if state.training else None}


def query_view(state: InspectState, query_id: str) -> dict:
    """One query: the compared rankings' lists (the first stage's beyond the reranking depth too), every listed
    document with its judgment, label, rank and score in each list and -- with a model -- its live reranker score
    and probability of relevance (the first stage's top `live_depth`, scored now)."""
    report = state.report
    if report is None or query_id not in report.ndcg[report.rankings.first_stage]:
        raise HTTPException(404, f"no evaluated query {query_id!r} in this report")
    lists = report.lists(query_id, beyond=BEYOND)
    names = {"first": report.rankings.first_stage, "reranked": report.rankings.reranked,
             "served": report.rankings.served}
    docs: dict[str, dict] = {}
    for key, name in names.items():
        for rank, (doc_id, score) in enumerate(lists.get(name, []), start=1):
            docs.setdefault(doc_id, state.document(doc_id))[key] = {"rank": rank, "score": score}
    judged = state.collection.qrels.get(query_id, {})
    labels = state.label_details(query_id)
    for doc_id, doc in docs.items():
        doc["grade"], doc["label"] = judged.get(doc_id), labels.get(doc_id)
    live = None
    if state.live is not None:
        head = [d for d, _ in lists[names["first"]][:state.live_depth]]
        scores, probabilities, seconds = state.live.score(state.collection.queries[query_id], head)
        for doc_id, score, probability in zip(head, scores, probabilities):
            docs[doc_id]["live"] = {"score": score, "probability": probability}
        live = {"documents": len(head), "seconds": seconds, "backend": state.live.backend}
    return {"id": query_id, "text": state.collection.queries.get(query_id, ""), "depth": report.depth,
            "names": names, "lists": {k: [d for d, _ in lists.get(n, [])] for k, n in names.items() if n},
            "ndcg": {k: report.ndcg[n][query_id] for k, n in names.items() if n}, "docs": docs, "live": live,
            "judged": len(judged), "relevant": sum(rel > 0 for rel in judged.values())}


def group_view(state: InspectState, index: int) -> dict:
    """A training group: the positive then its negatives, each with every scorer's score (the reranker's scored
    now where a model is loaded), and the negatives flagged as likely false negatives."""
    if state.training is None:
        raise HTTPException(409, "no training file: start inspect with --train_file")
    group = state.training.group(index)
    scores = dict(group.scores)
    if state.live is not None:
        scores["reranker"] = state.live.score_texts(group.query, group.texts)
    labels = state.label_details(group.query_id)
    ids = [group.positive_id, *group.negative_ids]
    return {"index": group.index, "query_id": group.query_id, "query": group.query,
            "known_query": group.query_id in state.collection.queries,
            "documents": [{"id": doc_id, "text": text, "positive": i == 0,
                           "label": labels.get(doc_id) if doc_id else None,
                           "known": doc_id in state.collection.corpus if doc_id else False,
                           "scores": {name: values[i] for name, values in scores.items()}}
                          for i, (doc_id, text) in enumerate(zip(ids, group.texts))],
            "flagged": group.flagged(scores)}


def suggestions(state: InspectState, limit: int = 20) -> dict:
    """What to label next: the queries whose first-stage and reranked top 10 share the fewest documents (ties: the
    most unjudged documents in the reranked top 10), then the training groups' likely false negatives not yet
    labelled."""
    out: dict = {"queries": [], "false_negatives": []}
    if state.report is not None:
        rows = [{**r, "disagreement": state.report.disagreement(r["id"])} for r in state.report.rows(state.latest())]
        out["queries"] = sorted(rows, key=lambda r: (-r["disagreement"], -r["unjudged"], r["id"]))[:limit]
    if state.training is not None:
        latest = state.latest()
        for group in state.training.groups:
            for i in group.flagged():
                doc_id = group.negative_ids[i]
                if doc_id is not None and doc_id in latest.get(group.query_id, {}):
                    continue
                out["false_negatives"].append({"group": group.index, "query_id": group.query_id,
                                               "query": group.query, "doc_id": doc_id, "negative": i})
                if len(out["false_negatives"]) >= limit:
                    return out
    return out
