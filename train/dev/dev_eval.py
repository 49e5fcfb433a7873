"""In-loop evaluation on the dev queries held out from the training split (never the test split):
rerank their first-stage top-k and score nDCG@10 / MRR@10 with the same metrics code as `eval`; after
training, fit on them the served ranking (combining.py) and the calibration."""

from __future__ import annotations

from dataclasses import dataclass

from rerankforge.core.errors import DataError, preview
from rerankforge.core.lexical import BM25Statistics
from rerankforge.core.processes import processes
from rerankforge.data_prep.collection import Collection
from rerankforge.core.rankings import Run
from rerankforge.data_prep.training_files import TEXT_ID_PREFIX, text_query_id
from rerankforge.eval.metrics import mean, per_query
from rerankforge.reranker.calibration import (SIGMOID, Calibration, expected_calibration_error, fit_platt,
                                              min_relevance_table, targets_table, thresholds_of)
from rerankforge.reranker.combiner import Combiner
from rerankforge.reranker.scoring import Reranker

from .combining import Fit, fit_combination
from ..config import TrainConfig

DEV_METRICS = ("nDCG@10", "MRR@10")


@dataclass
class DevSet:
    collection: Collection
    queries: dict[str, str]
    run: Run  # first-stage top-k of each dev query
    depth: int
    signals: dict[str, dict[str, dict[str, float]]]
    """The first stage's signals of every candidate: "dense" and/or "bm25" -> query id -> {doc id -> score}."""
    first_stage_kind: str | None = None
    """Which first stage made the candidates: hybrid, dense or bm25."""
    bm25_statistics: BM25Statistics | None = None
    """The first stage's BM25 statistics (core/lexical.py), where it has a BM25 part that keeps them: then rerank
    requests can be scored for BM25 too, and the request ranking may weigh it."""

    @classmethod
    def build(cls, config: TrainConfig, query_ids: list[str], show_progress: bool = True) -> "DevSet":
        from rerankforge.data_prep.first_stage import FirstStage
        from rerankforge.data_prep.retrieval import RetrieverConfig
        from rerankforge.data_prep.sources import load_collection

        collection = load_collection(config.data, split=config.split)
        judged = set(collection.judged_query_ids())
        query_ids = _collection_ids(query_ids, collection, judged, config)
        if config.extra_qrels:  # the dev queries judged with the labels too (which queries are dev stays)
            from rerankforge.data_prep.labels import overlay_labels

            collection = overlay_labels(collection, config.extra_qrels).collection
        queries = {qid: collection.queries[qid] for qid in query_ids}
        stage = FirstStage.build(collection.corpus, [config.first_stage],
                                 RetrieverConfig(model=config.first_stage_model, show_progress=show_progress))
        run = stage.search(queries, [config.first_stage], config.dev_depth)[config.first_stage]
        candidates = {qid: [d for d, _ in hits] for qid, hits in run.items()}
        signals = stage.signals(queries, candidates, stage.parts)
        bm25 = getattr(stage.parts.get("bm25"), "statistics", None)
        return cls(collection, queries, run, config.dev_depth, signals, config.first_stage, bm25)

    def qrels(self):
        return {qid: self.collection.qrels[qid] for qid in self.queries}

    def first_stage(self) -> dict[str, float]:
        return mean(per_query(self.qrels(), self.run, DEV_METRICS))

    def score(self, reranker: Reranker) -> dict[str, dict[str, float]]:
        """The reranker's scores of every dev candidate: query id -> {doc id -> score} (under a launcher, with
        `calibrate`, each process scores a share of the queries: core/processes.py)."""
        team = processes()
        part = {qid: self.run[qid] for qid in team.share(list(self.run))}
        return team.gather_dict(reranker.score_run(part, self.queries, self.collection.doc_text, self.depth),
                                list(self.run))

    def evaluate(self, scores: dict[str, dict[str, float]]) -> dict[str, float]:
        """The reranker alone (no fusion with the first stage), from its `score`s."""
        return mean(self.per_query(scores))

    def per_query(self, scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        """What `evaluate` averages: metric -> {query id -> value} of the reranker alone."""
        reranked = {qid: Combiner.reranker_only().rank(self.candidates[qid], {"reranker": scores[qid]})
                    for qid in self.run}
        return per_query(self.qrels(), reranked, DEV_METRICS)

    def calibrate(self, scores: dict[str, dict[str, float]], where: str = "dev split") -> tuple[Calibration, dict]:
        """Platt scaling fitted on every dev candidate (relevant: judged relevant in the qrels), with the
        expected calibration error of the plain sigmoid and of the fit, and the precision / recall of
        `min_relevance` thresholds -- all on the dev candidates the fit saw (eval measures them on test)."""
        qrels = self.qrels()
        flat = [(score, int(qrels[qid].get(doc, 0) > 0)) for qid, docs in scores.items() for doc, score in docs.items()]
        values, labels = [s for s, _ in flat], [y for _, y in flat]
        fitted = fit_platt(values, labels)
        probabilities = fitted.probability(values)
        targets = targets_table(probabilities, labels)
        calibration = Calibration(fitted.scale, fitted.bias, fitted.fitted_on, thresholds_of(targets))
        return calibration, {
            "scale": calibration.scale, "bias": calibration.bias,
            "fitted_on": f"{where} ({len(self.queries)} queries, {len(values)} candidates, {sum(labels)} relevant)",
            "ece_sigmoid": expected_calibration_error(SIGMOID.probability(values), labels),
            "ece_calibrated": expected_calibration_error(probabilities, labels),
            "min_relevance": min_relevance_table(probabilities, labels, [t / 10 for t in range(1, 10)]),
            "targets": targets}

    def fit_combination(self, scores: dict[str, dict[str, float]], where: str = "dev split") -> Fit:
        """The served ranking fitted on these dev queries: weights of the reranker's `scores` and the first
        stage's signals (combining.py), or the first stage alone where dev does not show the reranker helps."""
        as_ranked = {qid: dict(hits[:self.depth]) for qid, hits in self.run.items()}
        return fit_combination(self.candidates, {"reranker": scores, **self.signals, "first_stage": as_ranked},
                               self.qrels(), where, self.first_stage_kind, request_bm25=self.bm25_statistics is not None)

    @property
    def candidates(self) -> dict[str, list[str]]:
        return {qid: [d for d, _ in hits[:self.depth]] for qid, hits in self.run.items()}


def _collection_ids(query_ids: list[str], collection: Collection, judged: set[str], config: TrainConfig) -> list[str]:
    """The dev queries as judged queries of the collection. A training file without query ids (a
    sentence-transformers or Hugging Face dataset) names its queries by their text (`text_query_id`): those
    are found by the same text among the judged queries."""
    by_text: dict[str, str] = {}
    if any(q not in judged and q.startswith(TEXT_ID_PREFIX) for q in query_ids):
        for qid in sorted(judged):
            by_text.setdefault(text_query_id(collection.queries[qid]), qid)
    found = [q if q in judged else by_text.get(q, q) for q in query_ids]
    unknown = [q for q in found if q not in judged]
    if not unknown:
        return found
    where = f"judged queries of {config.data}/{config.split}"
    if all(q.startswith(TEXT_ID_PREFIX) for q in unknown):
        raise DataError(
            f"train_file {config.train_file} has no query_id column, so the dev queries held out of it are found by "
            f"their text among the {where}; {len(unknown)} of the {len(query_ids)} are not ({preview(unknown, 3)}). "
            f"Expected `data` (and `split`) to name the collection the file was mined from; or set dev_queries: 0 to "
            f"train without a dev split (then no keep-best, calibration or fitted combination)")
    raise DataError(f"train_file names query ids that are not {where}: {preview(unknown)}; is `data` the collection "
                    f"the file was mined from?")
