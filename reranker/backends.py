"""What runs a reranker's forward pass: torch, or ONNX Runtime on a file exported beside the weights.

Every backend takes the packer's padded batches (input_ids, attention_mask, and token_type_ids where the
model has them) and returns one logit per row, so scoring, batching and truncation stay the same
whichever runs the model.

- `torch`: the model itself, in fp32 or a bf16/fp16 autocast where the hardware has it natively.
- `onnx`: `onnx/model.onnx`, fp32, its attention, LayerNorm and GELU fused by onnxruntime's transformer
  optimizer at export.
- `onnx-int8`: `onnx/model_qint8_<format>.onnx`, dynamically quantised to int8 for this CPU's
  instruction set (avx2, avx512, avx512_vnni, arm64).

The files follow sentence-transformers' layout for CrossEncoder backends, so
`CrossEncoder(folder, backend="onnx")` (with `model_kwargs={"file_name": "onnx/model_qint8_avx2.onnx"}` for
int8) loads the same files. An exported file carries a fingerprint of the weights it came from; loading
it beside other weights, or a file that is corrupt or whose inputs and output do not fit the tokenizer,
fails with one line naming the file, what was expected and what was found."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator, Literal, Mapping

import numpy as np

from rerankforge.core.errors import ConfigError, ModelNotFoundError
from rerankforge.core.hardware import Precision

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
ScoringBackend = Literal["auto", "torch", "onnx", "onnx-int8"]  # the `backend` option of eval, serve and demo
BACKEND_HELP = ("auto: the fastest path `rerankforge export` checked faithful on this kind of CPU "
                "(onnx/checked_paths.json), else torch; torch: the model in fp32 (bf16/fp16 where the hardware has "
                "them natively); onnx: the ONNX Runtime export in onnx/model.onnx (fp32, fused attention); "
                "onnx-int8: its int8 quantisation for this CPU, onnx/model_qint8_<format>.onnx. `rerankforge "
                "export` writes both.")
ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
LOGITS = "logits"  # the output name optimum's ORTModelForSequenceClassification reads
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
INT8_FORMATS = ("avx512_vnni", "avx512", "avx2", "arm64")
FINGERPRINT_KEY = "rerankforge.weights_fingerprint"
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin", "adapter_model.bin")
FINGERPRINT_SPAN = 1 << 20


def int8_format() -> str:
    """The int8 format (sentence-transformers' name) for this CPU: avx512_vnni where it has VNNI (or AMX),
    avx512, avx2, or arm64; RERANKFORGE_CPU_CAPABILITY=AVX2 (or AVX512) names that format instead. It only
    names the file and picks the kernels' assumptions; any of them runs anywhere, slower."""
    import platform

    from rerankforge.core.hardware import CPU_CAPABILITY_ENV, cpu_capability, cpu_features

    forced = cpu_capability() if os.environ.get(CPU_CAPABILITY_ENV, "").strip() else None
    if forced in ("AVX2", "AVX512"):  # RERANKFORGE_CPU_CAPABILITY=AVX2: the file and recipes an AVX2 CPU gets
        return forced.lower()  # (onnxruntime's kernels still use what the CPU has: the speed is this CPU's)
    features = cpu_features()
    if features.get("avx512_vnni") or features.get("amx_int8"):
        return "avx512_vnni"
    if features.get("avx512_bw") or features.get("avx512_f"):
        return "avx512"
    if features.get("avx2"):
        return "avx2"
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    raise ConfigError(f"onnx-int8: this CPU ({platform.machine()}) has none of AVX2, AVX512 or ARM64 NEON, which "
                      f"ONNX Runtime's int8 kernels need; expected backend onnx here")


def int8_file(fmt: str) -> str:
    return f"model_qint8_{fmt}.onnx"


def backend_file(folder: str | os.PathLike, backend: str, fmt: str | None = None) -> Path:
    """Where `backend` of the reranker in `folder` lives (`onnx/model.onnx`, `onnx/model_qint8_avx2.onnx`)."""
    check_backend(backend)
    if backend in ("torch", "auto"):
        raise ValueError(f"the {backend} backend has no exported file")
    name = ONNX_FILE if backend == "onnx" else int8_file(fmt or int8_format())
    return Path(folder) / ONNX_DIR / name


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def weights_fingerprint(folder: str | os.PathLike) -> str | None:
    """A fingerprint of the weight files in `folder`: sha256 of each one's name, size, first and last MiB.
    Fine-tuning changes every tensor, so two trainings never share it, and it costs two reads of a MiB
    however large the model. None where the folder has no weight files (an export shipped on its own)."""
    files = sorted({p for pattern in WEIGHT_FILES for p in Path(folder).glob(pattern)})
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}:".encode())
        with path.open("rb") as f:
            digest.update(f.read(FINGERPRINT_SPAN))
            f.seek(max(0, size - FINGERPRINT_SPAN))
            digest.update(f.read(FINGERPRINT_SPAN))
    return digest.hexdigest()[:16]


class TorchBackend:
    """The model in torch, under `torch.inference_mode` and the chosen autocast."""

    name = "torch"

    def __init__(self, model, precision: Precision):
        self.model = model
        self.precision = precision

    @contextmanager
    def scoring(self) -> Iterator[None]:
        """Eval mode for the duration (dropout off), the model's own mode restored afterwards."""
        import torch

        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        dtype = self.precision.autocast_dtype
        try:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                yield
        finally:
            self.model.train(was_training)

    def __call__(self, batch: Mapping) -> np.ndarray:
        return self.collect([self.launch(batch)])

    def launch(self, batch: Mapping):
        """Start scoring `batch`; its logits stay where they are computed, unwaited for. On a GPU the inputs go
        from pinned memory without blocking, so the host packs the next batch while this one runs, and the one
        wait is `collect`'s."""
        device = next(self.model.parameters()).device
        if device.type == "cuda":
            inputs = {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
        else:
            inputs = {k: v.to(device) for k, v in batch.items()}
        return self.model(**inputs).logits.view(-1).float()

    def collect(self, launched: list) -> np.ndarray:
        """The launched batches' logits, in launch order, as one host array."""
        import torch

        return torch.cat(launched).cpu().numpy()

    def __str__(self) -> str:
        return f"torch, {self.precision}"


class OnnxBackend:
    """An ONNX Runtime session on one exported file, checked against the tokenizer's inputs when opened."""

    def __init__(self, session, path: Path, name: str, inputs: tuple[str, ...]):
        import onnxruntime

        self.session, self.path, self.name, self.inputs = session, path, name, inputs
        self.precision = Precision("int8" if name == "onnx-int8" else "fp32",
                                   f"{name}: {path.parent.name}/{path.name} on onnxruntime {onnxruntime.__version__}")

    @classmethod
    def open(cls, path: str | os.PathLike, name: str, inputs: tuple[str, ...], vocab_size: int | None = None,
             fingerprint: str | None = None, threads: int | None = None) -> "OnnxBackend":
        """Open `path` and check it reads exactly `inputs` (what the tokenizer gives), returns one logit per
        row, accepts token ids up to `vocab_size - 1`, and was exported from weights with `fingerprint`
        (where both it and the file carry one). Every failure is one ModelNotFoundError line."""
        path = Path(path)
        session = open_session(path, threads)
        check_signature(session, path, inputs)
        exported_from = session.get_modelmeta().custom_metadata_map.get(FINGERPRINT_KEY)
        if fingerprint and exported_from and exported_from != fingerprint:
            raise ModelNotFoundError(f"{path}: exported from other weights than the ones beside it (weights "
                                     f"fingerprint {exported_from} in the file, {fingerprint} in {path.parent.parent}); "
                                     f"re-export it: rerankforge export --model {path.parent.parent}")
        backend = cls(session, path, name, inputs)
        backend.smoke_test(vocab_size)
        return backend

    def scoring(self):
        return nullcontext()

    def __call__(self, batch: Mapping) -> np.ndarray:
        feed = {k: _as_int64(batch[k]) for k in self.inputs}
        return self.session.run([LOGITS], feed)[0].reshape(-1).astype(np.float32, copy=False)

    launch = __call__  # ONNX Runtime's run returns when the batch is scored: nothing to defer

    def collect(self, launched: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(launched)

    def smoke_test(self, vocab_size: int | None) -> None:
        """One two-row batch holding the highest token id the tokenizer can give: a file from a model with a
        smaller vocabulary, or an output that is not one logit per row, fails here rather than mid-scoring."""
        top = max(1, (vocab_size or 2) - 1)
        batch = {"input_ids": np.array([[0, top, 0], [0, 1, 0]], dtype=np.int64),
                 "attention_mask": np.array([[1, 1, 1], [1, 1, 0]], dtype=np.int64),
                 "token_type_ids": np.array([[0, 1, 1], [0, 1, 0]], dtype=np.int64)}
        try:
            out = self.session.run([LOGITS], {k: batch[k] for k in self.inputs})[0]
        except Exception as error:  # onnxruntime raises its own Fail/InvalidArgument/RuntimeException types
            raise ModelNotFoundError(f"{self.path}: does not run on this tokenizer's inputs (token ids up to "
                                     f"{top}): {_first_line(error)}; was it exported from another model?") from None
        if out.shape not in ((2, 1), (2,)):
            raise ModelNotFoundError(f"{self.path}: expected output {LOGITS!r} of shape (batch, 1), one logit per "
                                     f"pair; got shape {tuple(out.shape)} for a batch of 2")

    def __str__(self) -> str:
        return str(self.precision)


def require_onnx() -> None:
    """The onnx backends need onnx and onnxruntime (the `onnx` extra): say so in one line."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the onnx backends need {' and '.join(missing)}: pip install 'rerankforge[onnx]'")


def open_session(path: Path, threads: int | None = None):
    """An onnxruntime CPU session on `path` with every graph optimisation on; a missing or unreadable file
    is one ModelNotFoundError line, never onnxruntime's traceback."""
    require_onnx()
    import onnxruntime

    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such file; export it first: rerankforge export --model "
                                 f"{path.parent.parent} --backend "
                                 f"{'onnx' if path.name == ONNX_FILE else 'onnx-int8'}")
    from rerankforge.core.hardware import choose_cpu_threads

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or choose_cpu_threads().count
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: the cores are shared (the tokenizer, a server's batcher, other
    # processes), and on the 2-core box a spinning pool scored 10-20% fewer pairs/s under load
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise here
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # InvalidProtobuf, Fail, NoSuchFile... all from onnxruntime's C++ side
        raise ModelNotFoundError(f"{path}: not a readable ONNX model ({_first_line(error)}); re-export it: "
                                 f"rerankforge export --model {path.parent.parent}") from None


def check_signature(session, path: Path, inputs: tuple[str, ...]) -> None:
    """The file reads exactly the tokenizer's `inputs` and has a float `logits` output of width 1."""
    got = tuple(i.name for i in session.get_inputs())
    if set(got) != set(inputs):
        raise ModelNotFoundError(f"{path}: expected inputs {', '.join(inputs)} (what the tokenizer beside it "
                                 f"gives), got {', '.join(got) or 'none'}; was it exported from another model?")
    outputs = {o.name: o for o in session.get_outputs()}
    if LOGITS not in outputs:
        raise ModelNotFoundError(f"{path}: expected an output named {LOGITS!r} (one relevance logit per pair), "
                                 f"got {', '.join(outputs) or 'none'}")
    shape = outputs[LOGITS].shape
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != 1) or outputs[LOGITS].type != "tensor(float)":
        raise ModelNotFoundError(f"{path}: expected output {LOGITS!r} as floats of shape (batch, 1); got "
                                 f"{outputs[LOGITS].type} of shape {shape} -- a classifier with "
                                 f"{shape[-1] if shape else '?'} labels is not a reranker")


def model_inputs(tokenizer) -> tuple[str, ...]:
    """The inputs the packer gives a model with `tokenizer` (XLM-R has no token_type_ids)."""
    return tuple(name for name in MODEL_INPUTS if name in tokenizer.model_input_names)


def load_onnx_backend(folder: str | os.PathLike, backend: str, tokenizer, file_name: str | None = None,
                      threads: int | None = None) -> OnnxBackend:
    """The `backend` (onnx or onnx-int8) exported into `folder`, checked against `tokenizer`. `file_name`
    (relative to `folder`, e.g. `onnx/model_qint8_avx512_vnni.onnx`) picks another file than this CPU's."""
    path = Path(folder) / file_name if file_name else backend_file(folder, backend)
    if backend == "onnx-int8" and not path.is_file() and not file_name:
        others = sorted(p.name for p in (Path(folder) / ONNX_DIR).glob("model_qint8_*.onnx"))
        if others:  # an int8 file made for another CPU runs here too, only slower: say so, don't guess
            raise ModelNotFoundError(f"{path}: no such file; this CPU's int8 format is {int8_format()}, the folder "
                                     f"has {', '.join(others)} (made for another CPU): re-export here with "
                                     f"rerankforge export --model {folder} --backend onnx-int8")
    return OnnxBackend.open(path, backend, model_inputs(tokenizer), vocab_size=len(tokenizer),
                            fingerprint=weights_fingerprint(folder), threads=threads)


def _as_int64(value) -> np.ndarray:
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    return array.astype(np.int64, copy=False)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
