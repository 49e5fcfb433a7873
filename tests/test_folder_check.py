"""A broken reranker folder stops `serve` and `eval` before anything is scored: one line naming the folder, exit 2
(once, a folder without its tokenizer was served with every word [UNK] and every document scored the same)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rerankforge.cli.main import main as rerankforge


def _without_tokenizer(folder: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


def _truncated(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])


def _config(change) -> callable:
    def apply(folder: Path) -> None:
        path = folder / "config.json"
        config = json.loads(path.read_text())
        path.write_text(json.dumps(change(config)))
    return apply


def _system_file_as_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").symlink_to(Path(shutil.which("sh")).resolve())


BROKEN = {
    "no tokenizer": (_without_tokenizer, "no tokenizer"),
    "truncated weights": (_truncated, "truncated"),
    "empty weights": (lambda f: (f / "model.safetensors").write_bytes(b""), "expected safetensors weights"),
    "garbage config": (lambda f: (f / "config.json").write_text("{not json"), "expected a JSON object"),
    "list config": (lambda f: (f / "config.json").write_text("[1, 2]"), "got a JSON list"),
    "unknown model_type": (_config(lambda c: {**c, "model_type": "nonsense"}), "got 'nonsense'"),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), "no weights"),
    "two labels": (_config(lambda c: {**c, "id2label": {"0": "a", "1": "b"}}), "2 labels"),
    "vocabulary mismatch": (_config(lambda c: {**c, "vocab_size": 500}), "tokenizer and weights are not from"),
    "garbage tokenizer.json": (lambda f: (f / "tokenizer.json").write_text("\x00garbage"), "tokenizer.json"),
    "system file as weights": (_system_file_as_weights, "expected safetensors weights"),
}


@pytest.fixture(params=sorted(BROKEN))
def broken(request, tiny_reranker, tmp_path):
    folder = tmp_path / "broken reranker"
    shutil.copytree(tiny_reranker, folder)
    damage, expected = BROKEN[request.param]
    damage(folder)
    return folder, expected


def _one_line_error(capsys, folder: Path, expected: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(folder) in err[0], err
    assert expected in err[0], err


def test_serve_refuses_a_broken_folder_in_one_line(broken, capsys):
    folder, expected = broken
    assert rerankforge(["serve", "-q", "--reranker", str(folder), "--port", "9"]) == 2
    _one_line_error(capsys, folder, expected)


def test_eval_refuses_a_broken_folder_in_one_line(broken, scifact_slice, capsys):
    folder, expected = broken
    assert rerankforge(["-q", "eval", "--data", str(scifact_slice), "--split", "train", "--retriever", "bm25",
                        "--reranker", str(folder), "--no_progress"]) == 2
    _one_line_error(capsys, folder, expected)


def test_a_length_beyond_the_position_embeddings_is_refused(tiny_reranker, tmp_path, capsys):
    folder = tmp_path / "short"
    shutil.copytree(tiny_reranker, folder)
    positions = json.loads((folder / "config.json").read_text())["max_position_embeddings"]
    assert rerankforge(["serve", "-q", "--reranker", str(folder), "--port", "9", "--max_length",
                        str(positions + 1)]) == 2
    _one_line_error(capsys, folder, f"max_length {positions + 1} exceeds the {positions} positions")


def test_a_sound_folder_still_loads_and_the_default_length_fits_its_positions(tiny_reranker):
    from rerankforge.reranker.scoring import Reranker

    reranker = Reranker.load(tiny_reranker)
    positions = json.loads((Path(tiny_reranker) / "config.json").read_text())["max_position_embeddings"]
    assert reranker.max_length <= positions
    scores = reranker.score([("honey", "honey heals wounds"), ("honey", "the sky is blue"), ("honey", "x y z")])
    assert len(set(scores.tolist())) == 3
