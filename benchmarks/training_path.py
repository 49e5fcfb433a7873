"""Which files of the package a training run executes, from the command line to the saved model (issue 27).

A 6-update `rerankforge train` with an 8-query dev split on kill_anywhere's fixtures (a SciFact slice, tiny random
models), run under `sys.setprofile`: every package file in which some function was called, with the count of its
functions called, and the total. Usage: python benchmarks/training_path.py [--fixtures DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("api", "cli", "core", "data_prep", "reranker", "train", "eval", "serve")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", default=str(Path(tempfile.gettempdir()) / "rerankforge-fixtures"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import kill_anywhere

    fx = kill_anywhere.fixtures(Path(args.fixtures))
    seen: dict[str, set[str]] = {}

    def profile(frame, event, arg):
        if event == "call":
            path = Path(frame.f_code.co_filename)
            if path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] in FOLDERS:
                seen.setdefault(str(path.relative_to(ROOT)), set()).add(frame.f_code.co_name)

    from rerankforge.training.cli import train_main

    with tempfile.TemporaryDirectory() as out:
        sys.setprofile(profile)
        threading.setprofile(profile)
        code = train_main(["--train_file", fx["mined"], "--data", fx["slice"], "--first_stage_model", fx["bi"],
                           "--model", fx["bert"], "--output_dir", out, "--dev_queries", "8", "--dev_depth", "10",
                           "--num_negatives", "3", "--max_length", "64", "--batch_size", "4", "--max_steps", "6",
                           "--small_data_queries", "0", "--data_license", "none", "-q"])
        sys.setprofile(None)
        threading.setprofile(None)
    files = sorted(f for f, names in seen.items() if names - {"<module>"})
    for f in files:
        print(f"{f}  ({len(seen[f] - {'<module>'})} functions)")
    by_folder = {folder: sum(f.startswith(folder + "/") for f in files) for folder in FOLDERS}
    print(f"\nexit {code}: {len(files)} files executed; " + ", ".join(f"{k} {v}" for k, v in by_folder.items() if v))


if __name__ == "__main__":
    main()
