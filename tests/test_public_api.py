"""The public API: `from rerankforge import ...` as the README shows it, run as written on a SciFact slice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    section = (REPO / "README.md").read_text().split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_importing_rerankforge_is_light_and_names_what_it_exports():
    probe = ("import sys, rerankforge; print('torch' in sys.modules, 'transformers' in sys.modules); "
             "print(sorted(rerankforge.__all__))")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert shown.splitlines()[0] == "False False"
    for name in ("Reranker", "Pipeline", "SearchIndex", "mine_negatives", "train", "evaluate"):
        assert name in shown
    import rerankforge

    with pytest.raises(AttributeError, match="has no attribute 'Rerankr'; it exports .*Reranker"):
        rerankforge.Rerankr  # noqa: B018


def test_python_dash_m_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "rerankforge", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "mine" in done.stdout and "eval" in done.stdout


def test_an_unknown_option_names_the_ones_taken():
    import rerankforge

    with pytest.raises(TypeError, match=r"mine_negatives\(\) got unexpected option\(s\) num_negative; it takes .*"
                                        r"num_negatives"):
        rerankforge.mine_negatives("scifact", "x.jsonl", num_negative=7)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path, scifact_slice, monkeypatch, capsys):
    """Its "scifact" is the slice (through RERANKFORGE_DATA); "my_docs" a few of its abstracts as .txt."""
    import json

    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "scifact").symlink_to(scifact_slice)
    monkeypatch.setenv("RERANKFORGE_DATA", str(tmp_path / "datasets"))
    (tmp_path / "my_docs").mkdir()
    for line in (scifact_slice / "corpus.jsonl").read_text().splitlines()[:12]:
        doc = json.loads(line)
        (tmp_path / "my_docs" / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}")
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md (Use it from Python)", "exec"), {})
    printed = capsys.readouterr().out
    for system in ("bm25", "hybrid", "hybrid >> reranker", "hybrid >> reranker (served)"):
        assert re.search(rf"^{re.escape(system)}\s+nDCG@10 [01]\.\d{{4}}$", printed, re.M), system
    assert len(re.findall(r"^\d\.\d\d  ", printed, re.M)) == 3  # top_n=3 passages, each with its relevance
    assert (tmp_path / "out" / "reranker" / "model.safetensors").is_file()
