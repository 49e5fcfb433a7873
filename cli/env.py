"""`rerankforge env`: the versions and hardware facts a bug report needs, ready to paste (like `accelerate env`).

Versions come from the installed distributions' metadata (nothing optional is imported); torch is imported, for
what it sees of the machine: CPU capability, CUDA / MPS devices, and what the precision `auto` and the thread
choice resolve to here (data_prep/hardware.py)."""

from __future__ import annotations

import logging
import os
import platform
from importlib.metadata import PackageNotFoundError, version

from rerankforge.core.commands import add_command

logger = logging.getLogger(__name__)

ENV_HELP = "Print versions, hardware and settings for a bug report (copy-paste it into the issue)."

# what is reported, as `name: distributions that provide it` (the first one installed is named)
LIBRARIES = {
    "transformers": ("transformers",),
    "sentence-transformers": ("sentence-transformers",),
    "accelerate": ("accelerate",),
    "peft": ("peft",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss"),
    "bm25s": ("bm25s",),
    "datasets": ("datasets",),
    "huggingface_hub": ("huggingface-hub",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
    "wandb": ("wandb",),
}
# environment variables that change what rerankforge does on this machine
SETTINGS = ("RERANKFORGE_CPU_THREADS", "RERANKFORGE_CPU_CAPABILITY", "RERANKFORGE_DATA", "OMP_NUM_THREADS",
            "CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "HF_HOME")


def rerankforge_version() -> str:
    return installed("rerankforge") or "unknown (not installed: run from a source tree)"


def installed(*distributions: str) -> str | None:
    """The version of the first of `distributions` that is installed (with its name where it is not the first)."""
    for name in distributions:
        try:
            found = version(name)
        except PackageNotFoundError:
            continue
        return found if name == distributions[0] else f"{found} ({name})"
    return None


def add_env_parser(subparsers) -> None:
    add_command(subparsers, "env", ENV_HELP, [], run_env)


def run_env() -> int:
    logger.info("Copy-paste the lines below into the issue:\n")
    print("\n".join(f"- {name}: {value}" for name, value in report().items()))
    return 0


def report() -> dict[str, str]:
    """name -> value, in the order printed."""
    lines = {"rerankforge": rerankforge_version(),
             "Python": f"{platform.python_version()} ({platform.python_implementation()})",
             "Platform": platform.platform()}
    lines.update(_torch())
    lines.update({name: installed(*dists) or "not installed" for name, dists in LIBRARIES.items()})
    settings = {name: os.environ[name] for name in SETTINGS if os.environ.get(name)}
    lines["Settings"] = ", ".join(f"{k}={v}" for k, v in settings.items()) or "none of " + ", ".join(SETTINGS)
    return lines


def _torch() -> dict[str, str]:
    try:
        import torch
    except ImportError:
        return {"torch": "not installed"}
    from rerankforge.core.errors import ConfigError
    from rerankforge.core.hardware import choose_cpu_threads, cpu_capability, resolve_precision

    lines = {"torch": torch.__version__ + (f" (CUDA {torch.version.cuda})" if torch.version.cuda else "")}
    try:
        seen = cpu_capability()
    except ConfigError as error:  # a bad RERANKFORGE_CPU_CAPABILITY: say so, the report goes on
        seen = f"? ({error})"
    dispatch = torch.backends.cpu.get_cpu_capability()
    lines["CPU capability"] = dispatch + ("" if seen == dispatch else f" (rerankforge sees {seen})")
    cuda = torch.cuda.is_available()
    lines["CUDA devices"] = "; ".join(_cuda_device(torch, i) for i in range(torch.cuda.device_count())) if cuda else (
        "none" + ("" if torch.version.cuda else " (a CPU build of torch)"))
    mps = getattr(torch.backends, "mps", None)
    lines["MPS"] = "available" if mps is not None and mps.is_available() else "not available"
    for device in ("cuda", "cpu") if cuda else ("cpu",):
        try:
            lines[f"precision auto ({device})"] = str(resolve_precision("auto", device))
        except ConfigError as error:
            lines[f"precision auto ({device})"] = f"? ({error})"
    try:
        threads = str(choose_cpu_threads())
    except ConfigError as error:
        threads = f"? ({error})"
    lines["CPU threads"] = f"{threads}; {os.cpu_count()} logical CPU(s)"
    return lines


def _cuda_device(torch, index: int) -> str:
    major, minor = torch.cuda.get_device_capability(index)
    memory = torch.cuda.get_device_properties(index).total_memory / 2**30
    return f"{index}: {torch.cuda.get_device_name(index)} (compute capability {major}.{minor}, {memory:.0f} GiB)"
