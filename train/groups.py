"""Training groups from a mined file: (query, positive, negatives) -> tokenized, length-grouped batches.

A group is 1 positive followed by `num_negatives` negatives. Examples short of negatives (the miner
drops likely false negatives) are filled with documents of other queries -- random documents are
valid, easy negatives -- which distillation from the file's first-stage scores masks out, since nothing
scored them (a `teacher` reranker scores them like every other document, see train/teacher.py).
The dev queries are split off here, by query id, so no dev query is ever trained on."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from rerankforge.core.errors import ConfigError, DataError
from rerankforge.reranker.packing import PairEncoder

from .config import TrainConfig
from .losses import DISTILLATION_LOSSES


@dataclass
class Group:
    query_id: str
    query: str
    docs: list[str]  # positive first
    teacher: list[float] | None  # distillation targets (first-stage or teacher scores), aligned with docs
    real: list[bool]  # False for filler negatives taken from other queries


def split_dev(rows: list[dict], dev_queries: int, seed: int,
              fixed: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """(training rows, dev query ids): `dev_queries` query ids drawn at random (or the `fixed` ones), all their
    rows held out."""
    query_ids = sorted({str(row["query_id"]) for row in rows})
    if fixed is not None:
        missing = sorted(set(map(str, fixed)) - set(query_ids))
        if missing:
            raise ConfigError(f"dev_query_ids: {len(missing)} of the {len(set(fixed))} ids are not queries of the "
                              f"training file, e.g. {missing[:3]}; expected ids of its rows")
        dev = set(map(str, fixed))
        if len(dev) >= len(query_ids):
            raise ConfigError(f"dev_query_ids: would hold out every one of the {len(query_ids)} training queries; "
                              "expected fewer")
        return [row for row in rows if str(row["query_id"]) not in dev], sorted(dev)
    if dev_queries >= len(query_ids):
        raise ConfigError(f"dev_queries: {dev_queries} would hold out every one of the {len(query_ids)} training "
                          f"queries; expected fewer")
    dev = set(random.Random(seed).sample(query_ids, dev_queries))
    return [row for row in rows if str(row["query_id"]) not in dev], sorted(dev)


def check_enough_queries(rows: list[dict], dev_ids: list[str], config: TrainConfig) -> None:
    """Too few labelled queries to learn a domain from: say so, and what to do instead, before anything runs."""
    queries = len({str(row["query_id"]) for row in rows})
    if queries >= config.min_train_queries:
        return
    raise DataError(
        f"{config.train_file}: {queries} judged training queries (after holding out {len(dev_ids)} for dev), fewer "
        f"than min_train_queries={config.min_train_queries}: too few to train a reranker on -- it would fit these "
        f"queries and rank new ones worse than the first stage. Instead: serve the first stage (bm25, dense or "
        f"hybrid) or an existing cross-encoder, measured with `rerankforge eval` on your queries; or label more "
        f"queries (a few hundred make a domain reranker); or set min_train_queries: 0 to train anyway")


def drop_labelled(rows: list[dict], config: TrainConfig) -> tuple[list[dict], dict]:
    """The training rows with `config.extra_qrels`' labels applied: negatives labelled relevant (> 0) for the row's
    query removed (with their ids and scores), rows whose positive is labelled 0 dropped; and what that changed.
    Rows are matched by their ids (`rerankforge mine` files: positive_id, negative_ids); rows without document
    ids (sentence-transformers layouts) by text, the labelled documents' and queries' texts taken from `data`."""
    from rerankforge.data_prep.labels import latest_labels, read_labels

    labels = read_labels(config.extra_qrels)
    latest = latest_labels(labels)
    by_id = all("positive_id" in row and "negative_ids" in row for row in rows)
    keyed = latest if by_id else _labels_by_text(labels, config)
    kept, dropped, removed, queries = [], 0, 0, set()
    for row in rows:
        judged = keyed.get(str(row["query_id"]))
        if not judged:
            kept.append(row)
            continue
        if judged.get(str(row["positive_id"]) if by_id else row["positive"], 1) <= 0:
            dropped += 1
            queries.add(str(row["query_id"]))
            continue
        keys = [str(d) for d in row["negative_ids"]] if by_id else row["negatives"]
        keep = [i for i, key in enumerate(keys) if judged.get(key, 0) <= 0]
        if len(keep) < len(keys):
            removed += len(keys) - len(keep)
            queries.add(str(row["query_id"]))
            row = {**row, **{column: [row[column][i] for i in keep]
                             for column in ("negatives", "negative_ids", "negative_scores")
                             if isinstance(row.get(column), list) and len(row[column]) == len(keys)}}
        kept.append(row)
    if not kept:
        raise DataError(f"{config.extra_qrels}: its labels take every training row's positive away (each labelled "
                        f"0); expected some rows left to train on")
    summary = {"path": config.extra_qrels, "judgments": sum(map(len, latest.values())),
               "matched_by": "ids" if by_id else "text", "negatives_removed": removed, "rows_dropped": dropped,
               "queries_changed": len(queries)}
    return kept, summary


def labels_line(summary: dict) -> str:
    """What `drop_labelled` changed, in one sentence for the log."""
    return (f"extra qrels {summary['path']} ({summary['judgments']} judgments, matched by {summary['matched_by']}): "
            f"{summary['negatives_removed']} negatives labelled relevant removed from the training rows, "
            f"{summary['rows_dropped']} rows whose positive is labelled 0 dropped ({summary['queries_changed']} "
            f"queries changed)")


def _labels_by_text(labels: list, config: TrainConfig) -> dict[str, dict[str, int]]:
    """The labels keyed as rows without document ids are: query id (the collection's, and the one made from the
    query's text) -> {document text -> relevance}, the texts from `config.data`."""
    from rerankforge.data_prep.labels import check_known_ids, latest_labels
    from rerankforge.data_prep.sources import load_collection
    from rerankforge.data_prep.training_files import text_query_id

    collection = load_collection(config.data, split=config.split)
    check_known_ids(labels, config.extra_qrels, collection)
    keyed: dict[str, dict[str, int]] = {}
    for qid, docs in latest_labels(labels).items():
        by_text = {collection.doc_text(doc_id): rel for doc_id, rel in docs.items()}
        for key in (qid, text_query_id(collection.queries[qid])):
            keyed.setdefault(key, {}).update(by_text)
    return keyed


def build_groups(rows: list[dict], config: TrainConfig) -> list[Group]:
    """Groups of 1 positive + `num_negatives`. Distilling without a `teacher`, the targets are the file's
    first-stage scores; with one, they are filled in later by `teacher.attach_teacher_scores`."""
    distil = config.loss in DISTILLATION_LOSSES and config.teacher is None
    if distil:
        lacking = [i for i, row in enumerate(rows) if "positive_score" not in row or "negative_scores" not in row]
        if lacking:
            raise DataError(f"{config.train_file}: loss {config.loss} distils from the file's scores (first-stage, or a "
                            f"teacher's from `rerankforge score-teacher`), expected 'positive_score' and "
                            f"'negative_scores' in every row; {len(lacking)} rows lack them (first: row "
                            f"{lacking[0] + 1})")
    rng = random.Random(config.seed)
    pool = [(str(row["query_id"]), text) for row in rows for text in [row["positive"], *row["negatives"]]]
    groups = []
    for row in rows:
        negatives = list(row["negatives"][: config.num_negatives])
        teacher = ([float(row["positive_score"])] + [float(s) for s in row["negative_scores"][: config.num_negatives]]
                   if distil else None)
        real = [True] * (1 + len(negatives))
        for _ in range(100 * config.num_negatives):  # fill from other queries' documents
            if len(negatives) == config.num_negatives:
                break
            query_id, text = rng.choice(pool)
            if query_id != str(row["query_id"]):
                negatives.append(text)
                real.append(not distil)
        while len(negatives) < config.num_negatives:  # nothing else to draw from: masked placeholders
            negatives.append(row["positive"])
            real.append(False)
        if teacher is not None:
            teacher += [min(teacher)] * (1 + config.num_negatives - len(teacher))
        groups.append(Group(str(row["query_id"]), row["query"], [row["positive"], *negatives], teacher, real))
    return groups


class TokenizedGroups(torch.utils.data.Dataset):
    """Groups tokenized once up front (no padding), as the reranker will score them: the same PairEncoder,
    query kept whole and document cut (reranker/packing.py), so training sees what serving sees; `lengths`
    drive the length-grouped batching."""

    def __init__(self, groups: list[Group], encoder: PairEncoder):
        self.groups = groups
        self.features = encoder.encode([(g.query, d) for g in groups for d in g.docs])
        self.offsets = [0]
        for g in groups:
            self.offsets.append(self.offsets[-1] + len(g.docs))
        self.lengths = [max(len(self.features[j].input_ids) for j in range(self.offsets[i], self.offsets[i + 1]))
                        for i in range(len(groups))]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict:
        g = self.groups[index]
        return {"pairs": self.features[self.offsets[index]:self.offsets[index + 1]], "real": g.real,
                "teacher": g.teacher}


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Batches of group indices: shuffled, then sorted by length within windows of 50 batches, then
    the batches shuffled -- padding drops, order stays random. Deterministic in (seed, epoch); set
    `epoch` before iterating."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, by_length: bool = True):
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.by_length = by_length
        self.epoch = 0

    def __iter__(self):
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if self.by_length:
            window = self.batch_size * 50
            order = [i for start in range(0, len(order), window)
                     for i in sorted(order[start:start + window], key=lambda i: -self.lengths[i])]
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.by_length:
            rng.shuffle(batches)
        yield from batches

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


class Collator:
    """Pads the pairs of a batch of groups to the batch's longest pair."""

    def __init__(self, encoder: PairEncoder):
        self.encoder = encoder

    def __call__(self, items: list[dict]) -> dict:
        pairs = [pair for item in items for pair in item["pairs"]]
        inputs = self.encoder.collate(pairs)
        group = len(items[0]["pairs"])
        batch = {"inputs": dict(inputs), "mask": torch.tensor([item["real"] for item in items], dtype=torch.bool),
                 "group_size": group}
        if items[0]["teacher"] is not None:
            batch["teacher"] = torch.tensor([item["teacher"] for item in items], dtype=torch.float32)
        return batch
