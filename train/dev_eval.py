"""In-loop evaluation on the dev queries held out from the training split (never the test split):
rerank their first-stage top-k and score nDCG@10 / MRR@10 with the same metrics code as `eval`."""

from __future__ import annotations

from dataclasses import dataclass

from rerankforge.data_prep.collection import Collection
from rerankforge.data_prep.errors import DataError, preview
from rerankforge.data_prep.runs import Run
from rerankforge.eval.metrics import mean, per_query
from rerankforge.reranker.calibration import (SIGMOID, Calibration, expected_calibration_error, fit_platt,
                                              min_relevance_table)
from rerankforge.reranker.fusion import fuse
from rerankforge.reranker.scoring import Reranker

from .config import TrainConfig

DEV_METRICS = ("nDCG@10", "MRR@10")


@dataclass
class DevSet:
    collection: Collection
    queries: dict[str, str]
    run: Run  # first-stage top-k of each dev query
    depth: int

    @classmethod
    def build(cls, config: TrainConfig, query_ids: list[str], show_progress: bool = True) -> "DevSet":
        from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
        from rerankforge.data_prep.sources import load_collection

        collection = load_collection(config.data, split=config.split)
        judged = set(collection.judged_query_ids())
        unknown = [q for q in query_ids if q not in judged]
        if unknown:
            raise DataError(f"train_file names query ids that are not judged queries of {config.data}/{config.split}: "
                            f"{preview(unknown)}; is `data` the collection the file was mined from?")
        queries = {qid: collection.queries[qid] for qid in query_ids}
        retriever = build_retriever(collection.corpus, RetrieverConfig(
            retriever="dense", model=config.first_stage_model, show_progress=show_progress))
        return cls(collection, queries, retriever.search(queries, config.dev_depth), config.dev_depth)

    def qrels(self):
        return {qid: self.collection.qrels[qid] for qid in self.queries}

    def first_stage(self) -> dict[str, float]:
        return mean(per_query(self.qrels(), self.run, DEV_METRICS))

    def score(self, reranker: Reranker) -> dict[str, dict[str, float]]:
        """The reranker's scores of every dev candidate: query id -> {doc id -> score}."""
        return reranker.score_run(self.run, self.queries, self.collection.doc_text, self.depth)

    def evaluate(self, scores: dict[str, dict[str, float]]) -> dict[str, float]:
        """The reranker alone (no fusion with the first stage), from its `score`s."""
        reranked = {qid: fuse(self.run[qid][:self.depth], scores[qid], 1.0) for qid in self.run}
        return mean(per_query(self.qrels(), reranked, DEV_METRICS))

    def calibrate(self, scores: dict[str, dict[str, float]], where: str = "dev split") -> tuple[Calibration, dict]:
        """Platt scaling fitted on every dev candidate (relevant: judged relevant in the qrels), with the
        expected calibration error of the plain sigmoid and of the fit, and the precision / recall of
        `min_relevance` thresholds -- all on the dev candidates the fit saw (eval measures them on test)."""
        qrels = self.qrels()
        flat = [(score, int(qrels[qid].get(doc, 0) > 0)) for qid, docs in scores.items() for doc, score in docs.items()]
        values, labels = [s for s, _ in flat], [y for _, y in flat]
        calibration = fit_platt(values, labels)
        probabilities = calibration.probability(values)
        return calibration, {
            "scale": calibration.scale, "bias": calibration.bias,
            "fitted_on": f"{where} ({len(self.queries)} queries, {len(values)} candidates, {sum(labels)} relevant)",
            "ece_sigmoid": expected_calibration_error(SIGMOID.probability(values), labels),
            "ece_calibrated": expected_calibration_error(probabilities, labels),
            "min_relevance": min_relevance_table(probabilities, labels, [t / 10 for t in range(1, 10)])}

    def choose_fusion_weight(self, scores: dict[str, dict[str, float]]) -> tuple[float, dict[float, float]]:
        """The weight of `fuse` (reranker vs first stage) with the best dev nDCG@10, from 0.0 to 1.0 in
        steps of 0.05 (ties go to the larger weight), and the nDCG@10 of every weight tried."""
        curve = {}
        for step in range(20, -1, -1):
            weight = step / 20
            fused = {qid: fuse(self.run[qid][:self.depth], scores[qid], weight) for qid in self.run}
            curve[weight] = mean(per_query(self.qrels(), fused, ("nDCG@10",)))["nDCG@10"]
        best = max(curve, key=lambda w: (curve[w], w))
        return best, curve
