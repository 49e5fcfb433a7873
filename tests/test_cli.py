"""The command lines as a user runs them: `mine-negatives`, `rerankforge retrieve|mine|eval`, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rerankforge.cli.main import main as rerankforge
from rerankforge.data_prep.cli import mine_negatives_main


def _judged_pairs(folder: Path, split: str) -> int:
    lines = (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
    return sum(1 for line in lines if int(line.split("\t")[2]) > 0)


def test_mine_negatives_writes_one_row_per_judged_pair(scifact_slice, tiny_bi_encoder, tmp_path, capsys):
    output = tmp_path / "mined.jsonl"
    code = mine_negatives_main(["--data", str(scifact_slice), "--split", "train", "--model", tiny_bi_encoder,
                                "--num-negatives", "4", "--output", str(output), "--no_show_progress"])
    assert code == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == _judged_pairs(scifact_slice, "train")
    qrels = {}
    for line in (scifact_slice / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, doc_id, score = line.split("\t")
        qrels.setdefault(qid, set()).add(doc_id)
    assert not any(set(r["negative_ids"]) & qrels[r["query_id"]] for r in rows)
    summary = json.loads((tmp_path / "mined.summary.json").read_text())
    assert summary["examples"] == len(rows) and set(summary["positive_recall"]) == {"@10", "@50", "@100"}
    printed = capsys.readouterr().out
    assert "R@50=" in printed and "R@100=" in printed and f"wrote {len(rows)} rows" in printed


def test_mine_bm25_parquet_triplets(scifact_slice, tmp_path):
    import datasets

    output = tmp_path / "triplets.parquet"
    code = rerankforge(["mine", "--data", str(scifact_slice), "--retriever", "bm25", "--format", "triplet",
                        "--num_negatives", "3", "--sampling", "random", "--relative_margin", "none",
                        "--output", str(output)])
    assert code == 0
    loaded = datasets.load_dataset("parquet", data_files=str(output), split="train")
    assert len(loaded) == 3 * _judged_pairs(scifact_slice, "train")
    assert {"query_id", "positive_id", "negative_id", "negative_score"} <= set(loaded.column_names)


def test_retrieve_then_eval(scifact_slice, tmp_path, capsys):
    run_file = tmp_path / "bm25.trec"
    assert rerankforge(["retrieve", "--data", str(scifact_slice), "--split", "test", "--retriever", "bm25",
                        "--k", "50", "--output", str(run_file)]) == 0
    lines = run_file.read_text().splitlines()
    qid, q0, doc_id, rank, score, tag = lines[0].split()
    assert (q0, rank, tag) == ("Q0", "1", "bm25")
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(run_file)]) == 0
    table = capsys.readouterr().out
    assert "nDCG@10" in table and "\nbm25 " in table


def test_console_scripts_are_installed():
    for script in ("rerankforge", "mine-negatives"):
        path = shutil.which(script) or str(Path(sys.executable).parent / script)
        result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "usage:" in result.stdout


def _copy_beir(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _mine_fails(data: Path | str, output: Path, capsys, *extra: str) -> str:
    code = rerankforge(["mine", "--data", str(data), "--output", str(output), "--retriever", "bm25", *extra])
    assert code == 2
    return capsys.readouterr().err


def test_malformed_jsonl_line(scifact_slice, tmp_path, capsys):
    data = _copy_beir(scifact_slice, tmp_path / "data")
    lines = (data / "corpus.jsonl").read_text().splitlines()
    lines[2] = lines[2][:40]
    (data / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    err = _mine_fails(data, tmp_path / "out.jsonl", capsys)
    assert "corpus.jsonl:3" in err and "JSON" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_qrels_with_unknown_doc_id(scifact_slice, tmp_path, capsys):
    data = _copy_beir(scifact_slice, tmp_path / "data")
    with (data / "qrels" / "train.tsv").open("a") as f:
        f.write("0\tno-such-doc\t1\n")
    err = _mine_fails(data, tmp_path / "out.jsonl", capsys)
    assert "no-such-doc" in err and "train.tsv" in err


def test_empty_corpus(scifact_slice, tmp_path, capsys):
    data = _copy_beir(scifact_slice, tmp_path / "data")
    (data / "corpus.jsonl").write_text("")
    assert "empty" in _mine_fails(data, tmp_path / "out.jsonl", capsys)


def test_missing_path(tmp_path, capsys):
    err = _mine_fails(tmp_path / "nowhere", tmp_path / "out.jsonl", capsys)
    assert "no such file or folder" in err and "nowhere" in err


def test_unknown_model_offline_keeps_existing_output(scifact_slice, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output = tmp_path / "out.jsonl"
    output.write_text("previous results\n")
    code = rerankforge(["mine", "--data", str(scifact_slice), "--model", "acme/reranker-that-is-not-here",
                        "--output", str(output)])
    assert code == 2
    err = capsys.readouterr().err
    assert "acme/reranker-that-is-not-here" in err and "cannot be downloaded" in err and "--model" in err
    assert output.read_text() == "previous results\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_bad_option_values(scifact_slice, tmp_path, capsys):
    err = _mine_fails(scifact_slice, tmp_path / "out.txt", capsys)
    assert "--output" in err and ".jsonl" in err and "'.txt'" in err
    err = _mine_fails(scifact_slice, tmp_path / "out.jsonl", capsys, "--num-negatives", "0")
    assert "num_negatives must be >= 1" in err


def _commands() -> list[str]:
    import argparse

    from rerankforge.cli.main import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(subparsers.choices)


@pytest.mark.parametrize("command", [*_commands(), "mine-negatives"])
def test_every_command_help_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        if command == "mine-negatives":
            mine_negatives_main(["--help"])
        else:
            rerankforge([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--" in out
    assert "option_strings" not in out and "Traceback" not in out  # a help text read as a %-format


def test_help_texts_keep_percent_signs(capsys):
    from dataclasses import dataclass, field

    from rerankforge.core.commands import dataclass_parser

    @dataclass
    class Options:
        share: float = field(default=0.5, metadata={"help": "Share of the data, e.g. 50% or 100%."})

    dataclass_parser(Options, prog="demo").print_help()
    assert "e.g. 50% or 100%. (default: 0.5)" in " ".join(capsys.readouterr().out.split())


def test_ids_with_whitespace_stop_retrieve_before_a_run_is_written(scifact_slice, tmp_path, capsys):
    data = _copy_beir(scifact_slice, tmp_path / "data")
    lines = (data / "corpus.jsonl").read_text().splitlines()
    row = json.loads(lines[4])
    row["_id"] = f"doc {row['_id']}"
    lines[4] = json.dumps(row)
    (data / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    run_file = tmp_path / "bm25.trec"
    assert rerankforge(["retrieve", "--data", str(data), "--retriever", "bm25", "--output", str(run_file)]) == 2
    err = capsys.readouterr().err
    assert "corpus.jsonl:5: field '_id' must be one token without whitespace" in err and repr(row["_id"]) in err
    assert not run_file.exists()


def test_run_writer_refuses_ids_no_reader_could_split(tmp_path):
    from rerankforge.core.errors import DataError
    from rerankforge.data_prep.runs import read_trec, write_trec

    with pytest.raises(DataError, match="one token without whitespace, got 'doc 2'"):
        write_trec(tmp_path / "run.trec", {"q1": [("d1", 2.0), ("doc 2", 1.0)]}, tag="t")
    assert not (tmp_path / "run.trec").exists()
    write_trec(tmp_path / "run.trec", {"q1": [("d1", 2.0), ("d2", 1.0)]}, tag="t")
    assert read_trec(tmp_path / "run.trec") == {"q1": [("d1", 2.0), ("d2", 1.0)]}


def _bad_outputs(tmp_path: Path, name: str) -> dict[str, str]:
    """Output paths no command can write, each with what its error must say."""
    folder = tmp_path / f"a_folder{Path(name).suffix}"  # named as the command wants its files named
    folder.mkdir()
    (tmp_path / "a_file.txt").write_text("keep me\n")
    return {str(folder): "is a folder",
            str(tmp_path / "a_file.txt" / name): "a_file.txt is a file, so it cannot hold"}


@pytest.mark.parametrize("command,name", [("retrieve", "run.trec"), ("mine", "mined.jsonl")])
def test_unwritable_output_file_is_one_line_before_any_work(command, name, tmp_path, capsys):
    for output, words in _bad_outputs(tmp_path, name).items():
        # --data does not exist: the output is checked first, before anything is loaded
        code = rerankforge([command, "--data", str(tmp_path / "no-data"), "--retriever", "bm25", "--output", output])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"error: --output {output}: ") and words in err, err
        assert len(err.splitlines()) == 1
    assert (tmp_path / "a_file.txt").read_text() == "keep me\n"


def test_unwritable_eval_report_folder_is_one_line_before_any_work(tmp_path, capsys):
    (tmp_path / "a_file.txt").write_text("keep me\n")
    for output, words in ((tmp_path / "a_file.txt", "is a file; expected a folder"),
                          (tmp_path / "a_file.txt" / "report", "a_file.txt is a file, so it cannot hold report")):
        code = rerankforge(["eval", "--data", str(tmp_path / "no-data"), "--retriever", "bm25", "--output", str(output)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"error: --output {output}: ") and words in err, err
    assert (tmp_path / "a_file.txt").read_text() == "keep me\n"


def test_train_output_dir_that_is_a_file_stops_before_training(tmp_path, capsys):
    train_file = tmp_path / "mined.jsonl"
    train_file.write_text("{}\n")
    for output_dir in (train_file, train_file / "reranker"):
        assert rerankforge(["train", "--train_file", str(train_file), "--output_dir", str(output_dir)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: output_dir {output_dir}: ") and "is a file" in err, err
    assert train_file.read_text() == "{}\n"


# --- conventions every command follows: --version, env, -q/-v, --no_progress, exit codes, list options


def test_version_and_env_report(capsys):
    import torch
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        rerankforge(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"rerankforge {version('rerankforge')}"
    assert rerankforge(["env"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.removeprefix("- ").split(": ", 1) for line in out.splitlines())
    assert lines["torch"].startswith(torch.__version__)
    assert lines["CPU capability"].startswith(torch.backends.cpu.get_cpu_capability())
    assert lines["precision auto (cpu)"].startswith("fp32 (auto: this CPU (AVX2)")  # conftest forces AVX2
    assert "CPU thread(s) per process" in lines["CPU threads"] and lines["MPS"] in ("available", "not available")
    assert {"rerankforge", "Python", "Platform", "CUDA devices", "transformers", "sentence-transformers", "accelerate",
            "peft", "faiss", "bm25s", "datasets", "huggingface_hub", "onnxruntime", "wandb"} <= set(lines)
    assert lines["bm25s"] == version("bm25s")


def _eval_bm25(scifact_slice, *extra: str) -> list[str]:
    return ["eval", "--data", str(scifact_slice), "--retriever", "bm25", "--no_progress", *extra]


def test_quiet_and_verbose_set_what_reaches_stderr_not_the_result(scifact_slice, capsys):
    assert rerankforge(_eval_bm25(scifact_slice)) == 0
    out, err = capsys.readouterr()
    assert "\nbm25 " in out and "using " in err and "CPU thread(s)" not in out  # info: stderr, result: stdout
    assert "first stage over" not in err and "debug:" not in err  # no debug messages, bm25s' included
    command = _eval_bm25(scifact_slice)
    for argv in (["-q", *command], [*command, "--quiet"], ["--log_level", "warning", *command],
                 [*command, "--log-level=WARNING"]):  # the output options go before or after the command
        assert rerankforge(argv) == 0
        out, err = capsys.readouterr()
        assert "\nbm25 " in out and "using " not in err, (argv, err)
    assert rerankforge([*command, "-v"]) == 0
    err = capsys.readouterr().err
    assert "first stage over " in err and "documents: RetrieverConfig(" in err and "using " in err
    assert "Building index" not in err  # -v: rerankforge's debug messages, not every library's


def test_no_progress_leaves_no_bars(scifact_slice, tmp_path, capsys):
    import huggingface_hub.utils

    run_file = tmp_path / "bm25.trec"
    args = ["retrieve", "--data", str(scifact_slice), "--retriever", "bm25", "--output", str(run_file)]
    assert rerankforge([*args, "--no_progress"]) == 0
    out, err = capsys.readouterr()
    assert "wrote the top-100" in out and "it/s" not in err and "%|" not in err, err
    assert huggingface_hub.utils.are_progress_bars_disabled()
    assert rerankforge(args) == 0  # the next command shows them again (bm25s' here)
    assert "it/s" in capsys.readouterr().err
    assert not huggingface_hub.utils.are_progress_bars_disabled()


def test_exit_codes_2_for_wrong_input_1_for_a_failure_at_run_time(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    folder = tmp_path / "reranker"
    folder.mkdir()
    (folder / "config.json").write_text("{}\n")

    def unreachable(self, *args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
    assert rerankforge(["push", "--folder", str(folder), "--hub_model_id", "me/reranker"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: upload of") and "ConnectionError: network is unreachable" in err
    assert rerankforge(["push", "--folder", str(folder), "--hub_model_id", "no-org"]) == 2
    assert "expected 'org/name', got 'no-org'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # argparse: a usage error
        rerankforge(["push", "--folder"])
    assert usage.value.code == 2
    # train and serve parse their own command lines, with the same codes and options
    assert rerankforge(["-q", "train", "--train_file", str(tmp_path / "missing.jsonl")]) == 2
    assert "train_file: no such file" in capsys.readouterr().err
    assert rerankforge(["serve", "--reranker", "x", "--port", "0", "-v", "--no_progress"]) == 2
    assert "port must be in 1..65535, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("ks, expected", [(["10", "20"], (10, 20)), (["10,20"], (10, 20)),
                                          (["5", "10,20"], (5, 10, 20))])
def test_list_options_take_spaces_or_commas(ks, expected, scifact_slice, monkeypatch, capsys):
    from rerankforge.eval import report

    seen, evaluate = [], report.evaluate
    monkeypatch.setattr(report, "evaluate", lambda *args, **kwargs: seen.append(args[3]) or evaluate(*args, **kwargs))
    assert rerankforge(_eval_bm25(scifact_slice, "--depth", "20", "--k", *ks, "--top_n", *ks)) == 0
    assert seen[0].ks == tuple(sorted({*expected, 20})) and seen[0].top_ns == expected  # the main depth joins
    assert rerankforge(_eval_bm25(scifact_slice, "--k", "10", "x")) == 2
    assert "--k: expected positive integers separated by spaces or commas" in capsys.readouterr().err
