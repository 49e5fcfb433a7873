"""benchmarks/gpu_check.py's CPU dry run: every section runs end to end, so the GPU check can't rot between the
sessions that have a GPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dry_run_measures_every_section(tmp_path, datasets_root):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "RERANKFORGE_DATA": str(datasets_root)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry_run", "--json", str(out),
                           "--work", str(tmp_path / "work")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] is True and "device:" in result["machine"]
    rows = result["rows"]
    measures = {(r["section"], r["measure"].split(",")[0].split(" (")[0]) for r in rows}
    for expected in [("training", "steps/s"), ("training", "pairs/s"), ("scoring", "pairs/s fp32"),
                     ("scoring", "pairs/s fp16"), ("scoring", "pairs/s bf16"), ("scoring", "rerankforge bf16 / fp32"),
                     ("scoring", "nDCG@10 bf16"), ("serving", "/v2/rerank p50 s"), ("serving", "requests/s"),
                     ("encoding", "passages/s")]:
        assert expected in measures, f"{expected} missing from {sorted(measures)}"
    bulk = [r for r in rows if r["measure"].startswith("pairs/s") and "bulk, batch" in r["measure"]]
    assert {r["measure"].rsplit(" ", 1)[1] for r in bulk} == {"8", "32"}  # the batch sweep
    for r in rows:
        assert math.isfinite(r["rerankforge"]) and r["rerankforge"] >= 0, r
        if r["measure"].startswith(("pairs/s", "steps/s", "passages/s", "requests/s")):
            assert r["rerankforge"] > 0 and (r["baseline"] is None or r["baseline"] > 0), r
            if r["target"] is not None:
                assert r["met"] == (r["ratio"] >= r["target"]), r
    assert next(r for r in rows if r["measure"] == "non-200 answers")["rerankforge"] == 0
    assert next(r for r in rows if r["section"] == "encoding")["min_cosine_between_sides"] > 0.999
    assert "DRY RUN" in done.stdout and "| training | steps/s" in done.stdout
