"""Checkpoints: where training stands, saved so that a rerun resumes exactly, and read back without running code.

A checkpoint folder (`checkpoints/step-N`) holds what accelerate's `save_state` writes -- the model as
safetensors; optimizer, scheduler and RNG states as torch files -- plus `train_state.json` (the loop's
position, best dev score and history) and the kept-best weights. A checkpoint folder can come from
someone else, and unpickling runs whatever the file asks for, so a resume first loads every pickle in the
folder with torch's weights-only unpickler (which builds tensors and plain values, nothing else) and
refuses the checkpoint if one needs more. The loop's own state is JSON. Checkpoints written before this
format kept that state as a pickle accelerate loads unrestricted (`custom_checkpoint_0.pkl`); they are
refused too."""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from rerankforge.core.errors import DataError, disk_full, disk_full_error
from rerankforge.core.files import atomic_path, atomic_write_text

CHECKPOINTS = "checkpoints"
STATE_FILE = "train_state.json"
BEST = ".best"
BEST_WEIGHTS = "best.safetensors"
# accelerate's `register_for_checkpointing` objects: read back with `torch.load(weights_only=False)`.
OLD_STATE = re.compile(r"custom_checkpoint_\d+\.pkl")
PICKLE_SUFFIXES = {".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt"}
NOT_PICKLE_SUFFIXES = {".safetensors", ".json"}  # read by their own parsers, never unpickled


@dataclass
class TrainState:
    """Where training stands; saved with every checkpoint so a rerun resumes exactly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_ndcg: float | None = None
    best_step: int | None = None
    evals_without_gain: int = 0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the updates so far, across resumptions (what max_minutes counts)
    window_loss: float = 0.0  # the summed loss of the batches since the last logged row, and their count: a
    window_batches: int = 0  # resumed run logs the same mean loss as one never stopped

    @classmethod
    def read(cls, path: Path) -> TrainState:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: expected the training state as JSON, got an unreadable file ({error})") from None
        names = [f.name for f in fields(cls)]
        if isinstance(saved, dict):
            saved.setdefault("seconds", 0.0)  # checkpoints written before time budgets
            saved.setdefault("window_loss", 0.0)  # ... and before the logged loss window was kept
            saved.setdefault("window_batches", 0)
        if not isinstance(saved, dict) or sorted(saved) != sorted(names):
            got = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
            raise DataError(f"{path}: expected a JSON object with keys {', '.join(names)}; got {got}")
        for name, (valid, expected) in STATE_VALUES.items():
            if not valid(saved[name]):
                raise DataError(f"{path}: {name} expects {expected}, got {repr(saved[name])[:80]}")
        return cls(**saved)

    def write(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(vars(self), indent=1) + "\n")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


COUNT = (_is_count, "a whole number >= 0")
STATE_VALUES = {  # what each TrainState field may hold in train_state.json
    "step": COUNT, "epoch": COUNT, "batch_in_epoch": COUNT, "evals_without_gain": COUNT,
    "best_step": (lambda v: v is None or _is_count(v), "a whole number >= 0 or null"),
    "best_ndcg": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)), "a number or null"),
    "seconds": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0"),
    "window_loss": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                    "a finite number"),
    "window_batches": COUNT,
    "history": (lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v), "a list of objects"),
}


def latest_checkpoint(output_dir: Path) -> Path | None:
    done = [p for p in (output_dir / CHECKPOINTS).glob("step-*") if p.is_dir()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def read_checkpoint(checkpoint: Path) -> TrainState:
    """The training state of `checkpoint`, once every pickle in it is known to load without running code.
    Called before any model loads, so a bad checkpoint stops the run at once."""
    files = sorted(p for p in checkpoint.rglob("*") if p.is_file())
    old = [p for p in files if OLD_STATE.fullmatch(p.name)]
    if old:
        raise DataError(f"{old[0]}: a checkpoint in an old, unsafe format (the training state as a pickle a resume "
                        f"would load unrestricted, so a crafted file could run code); expected {STATE_FILE}. "
                        f"{_start_over(checkpoint.parent)}")
    for path in files:
        if _is_pickle(path):
            _check_weights_only(path, checkpoint.parent)
    if not (checkpoint / STATE_FILE).is_file():
        raise DataError(f"{checkpoint}: expected a rerankforge checkpoint holding {STATE_FILE}, got none. "
                        f"{_start_over(checkpoint.parent)}")
    state = TrainState.read(checkpoint / STATE_FILE)
    where = checkpoint / STATE_FILE
    if checkpoint.name != f"step-{state.step}":
        raise DataError(f"{where}: step expects {checkpoint.name.removeprefix('step-')} (the step its checkpoint "
                        f"was saved at), got {state.step}. {_start_over(checkpoint.parent)}")
    if state.best_step is not None and state.best_step > state.step:
        raise DataError(f"{where}: best_step expects a step at most {state.step}, got {state.best_step}. "
                        f"{_start_over(checkpoint.parent)}")
    return state


def _start_over(checkpoints: Path) -> str:
    return f"Delete {checkpoints} to start the training over"


def _is_pickle(path: Path) -> bool:
    """A torch file (zip archive or legacy pickle) or any other pickle: what a resume may unpickle."""
    if path.suffix in NOT_PICKLE_SUFFIXES:
        return False
    with path.open("rb") as f:
        head = f.read(4)
    return path.suffix in PICKLE_SUFFIXES or head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _check_weights_only(path: Path, checkpoints: Path) -> None:
    """Loads `path` as accelerate's `load_state` does (torch.load, weights_only=True, its numpy allowances for
    RNG states), memory-mapped so large optimizer states cost no copy. Files other loaders read unrestricted
    (torch.distributed.checkpoint's metadata, DeepSpeed's states) are refused unless they pass too."""
    from accelerate.utils import load

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # noqa: BLE001 -- whatever the reason, the file is not loaded
        message = str(error)
        found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", message)
        reason = found.group(1) if found else (message.strip().splitlines() or [type(error).__name__])[0]
        # Its first sentence: torch goes on with advice (allowlist the global, load with weights_only=False)
        # that is not for files from elsewhere.
        reason = reason.split(". ")[0]
        raise DataError(f"{path}: expected a torch file of tensors and plain values (what a resume loads with "
                        f"weights_only=True), got one that does not load that way ({reason}); unpickling it "
                        f"unrestricted could run code, so the run does not resume from it. "
                        f"{_start_over(checkpoints)}") from None


def save_checkpoint(accelerator, output_dir: Path, state: TrainState) -> None:
    """`save_state` (model as safetensors) and the training state as JSON into a temp folder renamed when
    complete: a kill mid-save leaves the previous checkpoint intact. Only the newest checkpoint is kept."""
    root = output_dir / CHECKPOINTS
    final, tmp = root / f"step-{state.step}", root / f".tmp-step-{state.step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state.write(tmp / STATE_FILE)
            best = output_dir / BEST / BEST_WEIGHTS
            if best.is_file():  # the kept-best weights belong to the state: a resume must not see newer ones
                shutil.copyfile(best, tmp / BEST_WEIGHTS)
    except Exception as error:  # a full disk (safetensors raises neither OSError nor RuntimeError): no half-written
        # checkpoint left behind
        shutil.rmtree(tmp, ignore_errors=True)
        if disk_full(error, root):
            raise disk_full_error(tmp) from None
        raise
    if accelerator.is_main_process:
        tmp.rename(final)
        prune_checkpoints(final)
    accelerator.wait_for_everyone()


def prune_checkpoints(kept: Path) -> None:
    """Remove every checkpoint but `kept`, the latest: the older ones, and one a kill left half-deleted."""
    for old in kept.parent.glob("step-*"):
        if old != kept:
            shutil.rmtree(old, ignore_errors=True)


def resume(accelerator, checkpoint: Path, output_dir: Path) -> None:
    """Model, optimizer, scheduler and RNG states back from `checkpoint` (checked by `read_checkpoint`); the
    kept-best weights it holds put back, so they agree with its best dev score: weights kept after the
    checkpoint was written (the run then died) belong to steps the resumed run repeats."""
    accelerator.load_state(str(checkpoint), load_kwargs={"weights_only": True})
    if accelerator.is_main_process:
        best = output_dir / BEST
        shutil.rmtree(best, ignore_errors=True)
        saved = checkpoint / BEST_WEIGHTS
        if saved.is_file():
            best.mkdir(parents=True)
            shutil.copyfile(saved, best / BEST_WEIGHTS)


def save_best(model, folder: Path) -> None:
    """The trainable weights at the best dev score (for LoRA: adapters + head), written atomically."""
    from safetensors.torch import save_file

    tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    # A fixed temporary name: a run resumed after a kill overwrites the killed one's half-written file.
    with atomic_path(folder / BEST_WEIGHTS, temp_name=f"{BEST_WEIGHTS}.tmp") as tmp:
        save_file(tensors, str(tmp))


def restore_best(model, folder: Path) -> None:
    """Put the weights `save_best` kept back into `model`."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(folder / BEST_WEIGHTS))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)
