"""The reranker folder's rerankforge.json: written and read through RerankerSettings, and refused with the
file and key named when its content is bad (eval and serve read it from folders they did not write)."""

import json
import shutil

import pytest

from rerankforge.core.errors import DataError
from rerankforge.reranker.folder import SETTINGS, RerankerSettings, read_settings, write_settings


def test_settings_round_trip_in_the_format_train_has_always_written(tmp_path):
    assert read_settings(tmp_path) == RerankerSettings()  # a CrossEncoder folder from elsewhere: defaults
    chosen = RerankerSettings(max_length=96, fusion_weight=0.35, fusion_chosen_on="dev split (3 train queries)")
    write_settings(tmp_path, chosen)
    assert (tmp_path / SETTINGS).read_text() == json.dumps(
        {"max_length": 96, "fusion_weight": 0.35, "fusion_chosen_on": "dev split (3 train queries)"}, indent=2) + "\n"
    assert read_settings(tmp_path) == chosen
    write_settings(tmp_path, RerankerSettings(max_length=96))  # nothing chosen: the key is left out
    assert json.loads((tmp_path / SETTINGS).read_text()) == {"max_length": 96, "fusion_weight": 1.0}
    (tmp_path / SETTINGS).write_text('{"fusion_weight": 1, "written_by_a_later_version": true}')
    assert read_settings(tmp_path) == RerankerSettings(fusion_weight=1)


@pytest.mark.parametrize("content, message", [
    ("{not json", "expected a JSON object, got unreadable JSON"),
    ("[0.5]", "expected a JSON object, got list"),
    ('{"fusion_weight": "0.5"}', "fusion_weight: expected a number from 0 to 1, got '0.5'"),
    ('{"fusion_weight": 1.5}', "fusion_weight: expected a number from 0 to 1, got 1.5"),
    ('{"max_length": 0}', "max_length: expected a positive whole number or null, got 0"),
    ('{"max_length": 128.0}', "max_length: expected a positive whole number or null, got 128.0"),
    ('{"fusion_chosen_on": 3}', "fusion_chosen_on: expected a string or null, got 3"),
])
def test_bad_settings_name_the_file_and_key(tmp_path, content, message):
    (tmp_path / SETTINGS).write_text(content)
    with pytest.raises(DataError) as error:
        read_settings(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / SETTINGS}: ") and message in str(error.value)


def test_eval_refuses_a_reranker_with_bad_settings_in_one_line(tiny_reranker, scifact_slice, tmp_path, capsys):
    from rerankforge.cli.main import main as rerankforge

    folder = tmp_path / "reranker"
    shutil.copytree(tiny_reranker, folder)
    (folder / SETTINGS).write_text('{"max_length": 96, "fusion_weight": "high"}\n')
    run_file = tmp_path / "bm25.trec"
    assert rerankforge(["retrieve", "--data", str(scifact_slice), "--retriever", "bm25", "--output", str(run_file)]) == 0
    capsys.readouterr()
    assert rerankforge(["eval", "--data", str(scifact_slice), "--run", str(run_file), "--reranker", str(folder),
                        "--output", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert f"{folder / SETTINGS}: fusion_weight: expected a number from 0 to 1, got 'high'" in err
    assert "Traceback" not in err and not (tmp_path / "report").exists()
