"""Mined data both ways between rerankforge and sentence-transformers: `rerankforge mine --layout
sentence-transformers` writes what `mine_hard_negatives` writes, and its CrossEncoderTrainer trains on it;
`rerankforge train` reads sentence-transformers' mined files and Hugging Face datasets of those shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerankforge.core.errors import DataError
from rerankforge.data_prep.training_files.writing import rows, sentence_transformers_rows, write_rows
from rerankforge.data_prep.training_files import text_query_id
from rerankforge.data_prep.training_files import read_training_rows

NUM_NEGATIVES = 4
FORMATS = ("n-tuple", "triplet", "labeled-pair")


@pytest.fixture(scope="module")
def mined(scifact_slice):
    """BM25 hard negatives of the SciFact slice's train split (as the mined_slice fixture mines them)."""
    from rerankforge.data_prep.mining import MiningConfig, mine_negatives
    from rerankforge.data_prep.retrieval import RetrieverConfig, build_retriever
    from rerankforge.data_prep.sources import load_collection

    collection = load_collection(scifact_slice, split="train")
    retriever = build_retriever(collection.corpus, RetrieverConfig(retriever="bm25", show_progress=False))
    return mine_negatives(collection, retriever, MiningConfig(num_negatives=NUM_NEGATIVES)).examples


def _write(tmp_path: Path, examples, output_format: str, output_scores: bool = False, suffix: str = ".jsonl") -> Path:
    path = tmp_path / f"st-{output_format}-{output_scores}{suffix}"
    write_rows(path, sentence_transformers_rows(examples, output_format, NUM_NEGATIVES, output_scores))
    return path


def _load(path: Path, cache: Path):
    import datasets

    kind = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=str(cache))


# ---------------------------------------------------------------- rerankforge -> sentence-transformers

@pytest.mark.parametrize("output_scores", [False, True])
@pytest.mark.parametrize("output_format", FORMATS)
def test_columns_equal_what_mine_hard_negatives_writes(tmp_path, mined, tiny_bi_encoder, output_format,
                                                       output_scores):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    pairs = Dataset.from_dict({"query": [e.query for e in mined[:6]], "positive": [e.positive for e in mined[:6]]})
    corpus = list(dict.fromkeys(text for e in mined[:10] for text in e.negatives))
    theirs = mine_hard_negatives(pairs, SentenceTransformer(tiny_bi_encoder, device="cpu"), corpus=corpus,
                                 num_negatives=NUM_NEGATIVES, output_format=output_format,
                                 output_scores=output_scores, verbose=False)
    ours = _load(_write(tmp_path, mined, output_format, output_scores), tmp_path / "hf-cache")
    assert ours.column_names == theirs.column_names
    for column in ours.column_names:  # same kinds of values: texts, 0/1 labels, a float, lists of floats
        assert type(ours[0][column]) is type(theirs[0][column]), column
    if "scores" in ours.column_names:
        assert len(ours[0]["scores"]) == len(theirs[0]["scores"])


def test_n_tuple_rows_short_of_negatives_are_left_out_as_mine_hard_negatives_does(mined):
    written = list(sentence_transformers_rows(mined, "n-tuple", NUM_NEGATIVES, output_scores=True))
    full = [e for e in mined if len(e.negatives) >= NUM_NEGATIVES]
    assert len(written) == len(full) and written
    assert written[0]["scores"] == [full[0].positive_score, *full[0].negative_scores]
    labeled = list(sentence_transformers_rows(mined, "labeled-pair", NUM_NEGATIVES))
    assert {r["label"] for r in labeled} == {0, 1}
    assert len({(r["query"], r["positive"]) for r in labeled}) == len(labeled)  # each pair once


def _tiny_cross_encoder(tiny_bert: str):
    from sentence_transformers.cross_encoder import CrossEncoder

    return CrossEncoder(tiny_bert, num_labels=1, max_length=64, device="cpu")


def _loss(name: str, model):
    from sentence_transformers.cross_encoder import losses

    return {"bce": losses.BinaryCrossEntropyLoss, "mse": losses.MSELoss, "margin_mse": losses.MarginMSELoss,
            "mnrl": losses.MultipleNegativesRankingLoss, "cached_mnrl": losses.CachedMultipleNegativesRankingLoss,
            }[name](model)


@pytest.mark.parametrize("output_format, output_scores, loss, suffix", [
    ("labeled-pair", False, "bce", ".jsonl"),
    ("labeled-pair", True, "mse", ".parquet"),
    ("n-tuple", False, "mnrl", ".parquet"),
    ("n-tuple", True, "margin_mse", ".jsonl"),
    ("triplet", False, "cached_mnrl", ".jsonl"),
    ("triplet", True, "margin_mse", ".parquet"),
])
def test_cross_encoder_trainer_trains_on_the_file(tmp_path, mined, tiny_bert, output_format, output_scores, loss,
                                                  suffix):
    import math

    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    dataset = _load(_write(tmp_path, mined, output_format, output_scores, suffix), tmp_path / "hf-cache")
    model = _tiny_cross_encoder(tiny_bert)
    args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "ce"), per_device_train_batch_size=4,
                                         max_steps=1, use_cpu=True, report_to="none", save_strategy="no",
                                         logging_steps=1, seed=0)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset.select(range(8)),
                                  loss=_loss(loss, model))
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)


def test_mine_command_writes_the_sentence_transformers_layout(tmp_path, scifact_slice):
    from rerankforge.data_prep.cli import mine_negatives_main

    output = tmp_path / "st.parquet"
    assert mine_negatives_main(["--data", str(scifact_slice), "--retriever", "bm25", "--num_negatives", "3",
                                "--format", "n-tuple", "--layout", "sentence-transformers", "--output_scores",
                                "true", "--output", str(output), "--no_show_progress"]) == 0
    loaded = _load(output, tmp_path / "hf-cache")
    assert loaded.column_names == ["query", "positive", "negative_1", "negative_2", "negative_3", "scores"]
    summary = json.loads((tmp_path / "st.summary.json").read_text())["output"]
    assert summary["layout"] == "sentence-transformers" and summary["output_scores"] is True
    assert summary["rows"] == len(loaded) and "examples_dropped_short_of_negatives" in summary
    assert not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------- sentence-transformers -> rerankforge

def _groups(rows_: list[dict]) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(r["query"], r["positive"]): tuple(r["negatives"]) for r in rows_}


def test_every_layout_reads_back_to_the_same_training_rows(tmp_path, mined):
    ours = read_training_rows(_write_rerankforge(tmp_path, mined, "n-tuple"))
    full = {k: v for k, v in _groups(ours).items() if len(v) == NUM_NEGATIVES}
    with_negatives = {k: v for k, v in _groups(ours).items() if v}

    n_tuple = read_training_rows(_write(tmp_path, mined, "n-tuple", output_scores=True))
    assert _groups(n_tuple) == full
    by_pair = {(r["query"], r["positive"]): r for r in ours}
    for row in n_tuple:  # scores come back as the distillation targets; ids are made from the query text
        assert row["positive_score"] == pytest.approx(by_pair[row["query"], row["positive"]]["positive_score"])
        assert row["negative_scores"] == pytest.approx(by_pair[row["query"], row["positive"]]["negative_scores"])
        assert row["query_id"] == text_query_id(row["query"])
    assert _groups(read_training_rows(_write(tmp_path, mined, "triplet", suffix=".parquet"))) == with_negatives
    assert _groups(read_training_rows(_write_rerankforge(tmp_path, mined, "triplet"))) == with_negatives

    labeled = read_training_rows(_write(tmp_path, mined, "labeled-pair"))  # grouped by query: all its negatives per positive
    union: dict[str, set[str]] = {}
    for row in ours:
        union.setdefault(row["query"], set()).update(row["negatives"])
    assert {(r["query"], r["positive"]) for r in labeled} == set(_groups(ours))
    assert all(set(r["negatives"]) == union[r["query"]] for r in labeled)
    assert {r["query_id"] for r in read_training_rows(_write_rerankforge(tmp_path, mined, "labeled-pair"))} == {
        r["query_id"] for r in ours}


def _write_rerankforge(tmp_path: Path, examples, output_format: str) -> Path:
    path = tmp_path / f"rf-{output_format}.jsonl"
    write_rows(path, rows(examples, output_format))
    return path


def test_datasets_folders_csv_and_local_hf_datasets_are_read(tmp_path, monkeypatch):
    import datasets

    table = {"query": ["what is a", "what is a", "what is a", "what is b", "what is b"],
             "answer": ["a is a letter", "b is another", "c", "b is another", "a is a letter"],
             "label": [1, 0, 0, 1, 0]}
    expected = [{"query_id": text_query_id("what is a"), "query": "what is a", "positive": "a is a letter",
                 "negatives": ["b is another", "c"]},
                {"query_id": text_query_id("what is b"), "query": "what is b", "positive": "b is another",
                 "negatives": ["a is a letter"]}]
    datasets.Dataset.from_dict(table).save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(table)}).save_to_disk(str(tmp_path / "saved_dict"))
    assert read_training_rows(tmp_path / "saved") == expected
    assert read_training_rows(tmp_path / "saved_dict") == expected
    csv = tmp_path / "pairs.csv"
    csv.write_text("query,answer,label\n" + "".join(f"{q},{a},{y}\n" for q, a, y in zip(*table.values())))
    assert read_training_rows(csv) == expected
    # hf:NAME goes through datasets.load_dataset; here NAME is a local folder of data files (no Hub in tests)
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "train.jsonl").write_text("".join(
        json.dumps(dict(zip(table, values))) + "\n" for values in zip(*table.values())))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    assert read_training_rows(f"hf:{tmp_path / 'hub'}") == expected


@pytest.mark.parametrize("lines, message", [
    ([{"query": "q", "passage": "p", "label": 1}, {"query": "q", "passage": "p2"}],
     r"x.jsonl:2: expected columns query, passage, label \(as in the first row\), missing label; got query, passage"),
    ([{"query": "q", "passage": "p", "label": 0.7}], r"x.jsonl:1: expected 'label' to be 0 .* or 1 .*, got 0.7"),
    ([{"query": "q", "passage": "p", "score": 0.7}], r"x.jsonl:1: a labeled-pair row with a 'score' but no 'label'"),
    ([{"query": "q", "positive": "p", "negative": "n", "scores": [1.5]}],
     r"x.jsonl:1: expected the scores to be 2 numbers \(the positive's, then each negative's\), got \[1.5\]"),
    ([{"query": "q", "positive": "p", "negative": 0.5}],
     r"x.jsonl:1: expected text in column 'negative', got float 0.5"),
    ([{"query": "q", "positive": "p", "negative_1": "n"}, {"query": "q", "positive": "p", "negative_1": 3}],
     r"x.jsonl:2: expected text in column 'negative_1', got int 3"),
    ([{"query": "q", "positive": "p"}], r"x.jsonl:1: expected one of these layouts: .* got columns query, positive -- "
                                        r"\(query, positive\) pairs without negatives: mine them first"),
    ([{"query": "q", "passage": "p", "label": 0}], r"x.jsonl: none of its 1 queries has a document labelled relevant"),
])
def test_bad_rows_are_named_with_what_was_expected(tmp_path, lines, message):
    path = tmp_path / "x.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataError, match=message):
        read_training_rows(path)


def test_a_folder_datasets_did_not_write_is_named(tmp_path):
    (tmp_path / "beir").mkdir()
    (tmp_path / "beir" / "corpus.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match=r"beir: expected a folder written by `datasets` save_to_disk .* got a folder "
                                        r"with 'corpus.jsonl'"):
        read_training_rows(tmp_path / "beir")


# ---------------------------------------------------------------- rerankforge train on them

def _train_args(train_file, data: Path, model: str, out: Path, *extra: str) -> list[str]:
    return ["--train_file", str(train_file), "--data", str(data), "--first_stage", "bm25", "--model", model,
            "--output_dir", str(out), "--dev_queries", "6", "--dev_depth", "10", "--num_negatives", "3",
            "--max_length", "64", "--batch_size", "4", "--eval_batch_size", "16", "--max_steps", "2",
            "--eval_steps", "2", "--save_steps", "0", "--log_steps", "1", "--small_data_queries", "0", *extra]


def test_train_reads_a_sentence_transformers_file_with_dev_queries_found_by_text(tmp_path, mined, scifact_slice,
                                                                                 tiny_bert):
    from rerankforge.training.cli import train_main

    st_file = _write(tmp_path, mined, "n-tuple", output_scores=True)
    out = tmp_path / "out"
    assert train_main(_train_args(st_file, scifact_slice, tiny_bert, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["dev_first_stage"]["nDCG@10"] > 0  # dev ran on the collection's queries


def test_train_reads_a_datasets_folder(tmp_path, mined, scifact_slice, tiny_bert):
    import datasets

    from rerankforge.training.cli import train_main

    labeled = list(sentence_transformers_rows(mined, "labeled-pair", NUM_NEGATIVES))
    datasets.Dataset.from_list(labeled).save_to_disk(str(tmp_path / "labeled"))
    out = tmp_path / "out"
    assert train_main(_train_args(tmp_path / "labeled", scifact_slice, tiny_bert, out, "--dev_queries", "0",
                                  "--loss", "bce")) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2


def test_dev_queries_not_in_data_say_how_to_fix_it(tmp_path, mined, scifact_slice, tiny_bert, capsys, monkeypatch):
    from rerankforge.training import model as model_module
    from rerankforge.training.cli import train_main

    renamed = [{"query": f"{e.query} (paraphrased)", "positive": e.positive,
                **{f"negative_{i}": t for i, t in enumerate(e.negatives, start=1)}}
               for e in mined if len(e.negatives) >= NUM_NEGATIVES]
    path = tmp_path / "elsewhere.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in renamed))
    monkeypatch.setattr(model_module, "load_model", lambda *a: pytest.fail("a model loaded"))
    assert train_main(_train_args(path, scifact_slice, tiny_bert, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "has no query_id column, so the dev queries held out of it are found by their text" in err
    assert "6 of the 6 are not" in err and "dev_queries: 0" in err
