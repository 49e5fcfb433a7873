"""A full disk under every writer: a clear error, nothing half-written, earlier outputs intact.

For each long command (mine, index, export, score-teacher, generate-queries, calibrate, eval, train: the commands
and fixtures of benchmarks/kill_anywhere.py), on a SciFact slice with tiny random models:
1. a reference run on the real disk, and the size S of what it writes;
2. for each level in --free (fractions of S), a fresh tmpfs (needs root) holding the command's inputs (for
   export and calibrate, the model folder they add to) and an earlier output that the run must not touch, then
   filled so that only level x S bytes stay free; the command run with its outputs on it. It must either end as
   the reference did (exit 0, the same outputs), or stop with exit 1 and one `error: no space left on device
   ...` line and no traceback; either way, every file under a final name equals the reference's (nothing
   half-written), no temporary file is left, and the earlier files are byte-identical.

Prints one row per command and level, and exits 1 if any check failed.

    sudo python benchmarks/disk_full.py [--commands mine train ...] [--free 0 0.05 0.4 0.8 2.0] [--work DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kill_anywhere import COMMANDS, files, fixtures, outputs_of, run, same  # noqa: E402

EARLIER = "earlier/keep.bin"
"""An earlier output on the same disk: a full disk must leave it as it was."""
RESUMABLE = r"(^|/)checkpoints/step-\d+/[^/.][^/]*$|(^|/)cache/[0-9a-f]+/shard-\d+\.npy$"
"""Complete files a stopped run keeps to resume from (a training's checkpoints, the embedding cache's shards):
not leftovers; each is written whole or not at all (the kill -9 campaign checks that they resume)."""


def digest(folder: Path) -> dict[str, str]:
    return {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files(folder).items()}


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def mount(folder: Path, size_bytes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"cannot mount a tmpfs on {folder} (needs root): {done.stderr.strip()}")


def fill(folder: Path, leave: int) -> None:
    """Write a filler so that `leave` bytes (rounded to pages) stay free on `folder`'s disk."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / "filler", "wb") as filler:
        filler.write(b"\0" * max(0, free - leave))


def attempt(command, fx: dict, base: Path, expected: dict, known: set[str], reference_size: int,
            level: float) -> dict:
    disk, log = base / command.name / "disk", base / command.name / f"log-{level}"
    shutil.rmtree(log, ignore_errors=True)
    log.mkdir(parents=True)
    staging = base / command.name / "staging"  # what the disk holds beforehand, sized first
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    command.prepare(staging, fx)
    (staging / EARLIER).parent.mkdir(parents=True)
    (staging / EARLIER).write_bytes(os.urandom(256 << 10))
    before_size = size(staging)
    mount(disk, before_size + reference_size + (16 << 20))
    try:
        shutil.copytree(staging, disk, dirs_exist_ok=True)
        before = digest(disk)
        fill(disk, int(level * max(reference_size, 256 << 10)))  # tmpfs counts whole pages
        code, _ = run(command.argv(disk, fx), log)
        text = (log / "log.txt").read_text(errors="replace")
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        got = outputs_of(disk, command)
        # under a final name, complete or absent: a training's checkpoints (each complete, kept to resume) and a
        # hidden journal a resumable command appends to are checked by the kill -9 campaign, not here
        after = digest(disk)
        half = [k for k, p in got.items() if k in expected and "checkpoints/" not in k
                and not Path(k).name.startswith(".") and not same(p, expected[k], command.compare)
                and before.get(k) != after.get(k, "")]  # export and calibrate rewrite files they were given
        leftovers = sorted(k for k in after if k not in before and k != "filler" and k not in known
                           and not re.search(RESUMABLE, k) and "wandb/" not in k)
        changed = [k for k in before if k not in after or (after[k] != before[k] and not _output(k, command))]
        if code == 0:
            clear = not [k for k in expected if k not in got]
            outcome = "completed"
        else:
            clear = (code == 1 and len(errors) == 1 and errors[0].startswith("error: no space left on device")
                     and "Traceback" not in text)
            outcome = f"exit {code}"
        return {"command": command.name, "free": level, "outcome": outcome, "clear": clear,
                "error": errors[-1][:110] if errors else "", "half_written": half, "leftovers": leftovers,
                "earlier_changed": changed,
                "ok": clear and not half and not leftovers and not changed}
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
        shutil.rmtree(staging, ignore_errors=True)


def _output(key: str, command) -> bool:
    """A file the command itself writes (export and calibrate add to the model folder they are given)."""
    return command.name in ("export", "calibrate") and key.startswith("model/") and key.endswith(
        ("rerankforge.json", ".onnx", "README.md"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", nargs="+", default=[c.name for c in COMMANDS],
                        choices=[c.name for c in COMMANDS])
    parser.add_argument("--free", nargs="+", type=float, default=[0, 0.05, 0.4, 0.8, 2.0],
                        help="Free space on the disk, as fractions of what the reference run writes.")
    parser.add_argument("--work", default="outputs/disk-full")
    args = parser.parse_args()
    base = Path(args.work).resolve()
    fx = fixtures(base / "fixtures")
    rows = []
    print("| command | writes (MB) | free | outcome | clear error | half-written | leftovers | earlier changed |")
    print("|---|---|---|---|---|---|---|---|")
    for command in (c for c in COMMANDS if c.name in args.commands):
        # the reference runs where the attempts will (paths a command records, e.g. train's output_dir, then agree)
        disk, reference = base / command.name / "disk", base / command.name / "reference"
        for folder in (disk, reference):
            shutil.rmtree(folder, ignore_errors=True)
        disk.mkdir(parents=True)
        command.prepare(disk, fx)
        prepared = size(disk)
        code, _ = run(command.argv(disk, fx), disk)
        if code != 0:
            raise SystemExit(f"{command.name}: the reference run failed (exit {code}); see {disk / 'log.txt'}")
        disk.rename(reference)
        expected = outputs_of(reference, command)
        known = {k for k in files(reference) if k != "log.txt" and not k.startswith("rf-cache/")}
        written = size(reference) - prepared - (reference / "log.txt").stat().st_size
        for level in args.free:
            row = attempt(command, fx, base, expected, known, written, level)
            rows.append(row)
            print(f"| {command.name} | {written / 1e6:.1f} | {level:.0%} | {row['outcome']} | "
                  f"{'yes' if row['clear'] else 'NO: ' + row['error']} | {len(row['half_written'])} | "
                  f"{len(row['leftovers'])} | {len(row['earlier_changed'])} |", flush=True)
            for key in ("half_written", "leftovers", "earlier_changed"):
                if row[key]:
                    print(f"    {key}: {row[key][:6]}", flush=True)
            if not row["clear"] and row["error"]:
                print(f"    error: {row['error']}", flush=True)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
