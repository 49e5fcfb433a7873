"""Run several `rerankforge` command lines one after another in this process, as `python -m rerankforge` would run
each: `python tests/launched_commands.py '[["mine", ...], ["eval", ...]]'`. Under `accelerate launch` the processes
start (and pay for imports) once for all of them. Stops at the first command that fails, with its exit code.
`differences` compares two runs' outputs (tests/test_processes.py, benchmarks/data_parallel_stages.py)."""

import json
import math
import sys
from pathlib import Path

from rerankforge.cli.main import main


def differences(one: Path, two: Path, file: str, rel: float = 1e-5) -> list[str]:
    """Where two runs' copies of an output (`file` in the run folders `one` and `two`) differ -- numbers by more
    than `rel`, the run folders named the same, times left out: [] when they agree."""
    a, b = _values(one / file, one), _values(two / file, two)
    if a.keys() != b.keys():
        return [f"keys: {sorted(map(str, a.keys() ^ b.keys()))[:5]}"]
    return [f"{key}: {a[key]!r} vs {b[key]!r}" for key in a if not _close(a[key], b[key], rel)][:5]


def _values(path: Path, folder: Path) -> dict:
    """A file's content to compare across runs, flat (so pytest.approx compares every number in it): JSON(L)
    parsed, TREC runs as {(query, doc): score}; the run's folder named the same, times left out."""
    if path.suffix == ".npy":
        import numpy as np

        return _flat(np.load(path).tolist())
    text = path.read_text().replace(str(folder), "RUN")
    if path.suffix == ".jsonl":
        return _flat([json.loads(line) for line in text.splitlines()])
    if path.suffix == ".json":
        return {k: v for k, v in _flat(json.loads(text)).items() if not any(w in k for w in TIMES)}
    return {(qid, doc): float(score) for qid, _, doc, _, score, _ in (line.split() for line in text.splitlines())}


TIMES = ("seconds", "latency", "_ms", "per_s")


def _close(a, b, rel: float) -> bool:
    """The same to `rel` (numbers), or equal."""
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-6) if numbers else a == b


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}{i}.").items()}
    return {prefix: value}


if __name__ == "__main__":
    for argv in json.loads(sys.argv[1]):
        code = main(argv)
        if code:
            sys.exit(code)
