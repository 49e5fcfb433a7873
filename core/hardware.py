"""What suits the machine: the numeric precision to train and score in, and how many CPU threads to use.

Precision. bf16 autocast pays only where the hardware computes in bf16: CUDA GPUs that support it and
CPUs with AVX512-BF16 or AMX. Elsewhere it is emulated -- on an AVX2 CPU a MiniLM training step took
33 s under bf16 against 3.1 s in fp32 -- so `auto` (the default everywhere) picks bf16 only where it is
native, fp16 on a CUDA GPU without bf16, and fp32 otherwise; an explicit bf16/fp16 that would be
emulated still runs, with one warning saying why and what it costs.

`torch.backends.cpu.get_cpu_capability()` names only the vector width torch dispatches to (DEFAULT,
AVX2, AVX512, ...), never AVX512-BF16 or AMX, so the bf16 features come from cpuinfo
(`torch.cpu.get_capabilities()`). RERANKFORGE_CPU_CAPABILITY=AVX2 (or any name below) replaces what was
detected: it forces the no-native path on a bf16 machine, e.g. to measure it.

Threads. A process should use the cores it may run on -- the affinity mask, a container's CPU quota
(cgroups), physical cores rather than hyper-threads -- shared among the processes of one machine, so
that processes x threads never exceeds the cores. OMP_NUM_THREADS set by the user is honoured, except
the `1` that `accelerate launch` writes when it was not asked for CPU training (it would leave all but
one core idle); RERANKFORGE_CPU_THREADS=N overrides everything."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ConfigError

CPU_CAPABILITY_ENV = "RERANKFORGE_CPU_CAPABILITY"
CPU_THREADS_ENV = "RERANKFORGE_CPU_THREADS"

# CPU capabilities, best first. AMX CPUs (Sapphire Rapids on) also have AVX512-BF16 and AVX512-FP16.
NATIVE_BF16_CPU = ("AMX", "AVX512_BF16")
NATIVE_FP16_CPU = ("AMX",)
KNOWN_CPU_CAPABILITIES = (*NATIVE_BF16_CPU, "AVX512", "AVX2", "DEFAULT", "NO AVX", "VSX", "Z VECTOR", "SVE256",
                          "SVE128")
PRECISIONS = ("auto", "fp32", "no", "bf16", "fp16")  # "no" is accelerate's name for fp32
ScoringPrecision = Literal["auto", "fp32", "bf16", "fp16"]  # the `precision` option of eval, serve and demo
PRECISION_HELP = ("auto: bf16 where the hardware has it natively (CUDA GPUs with bf16, CPUs with AVX512-BF16 or "
                  "AMX), fp16 on other GPUs, else fp32. bf16 where it would be emulated (e.g. an AVX2 CPU: ~10x "
                  "slower) runs with a warning.")
EMULATION_COST = "on an AVX2 CPU a MiniLM training step took about 10x as long as in fp32"


class EmulatedPrecisionWarning(RuntimeWarning):
    """bf16/fp16 was asked for explicitly on hardware that only emulates it (slow)."""


@dataclass(frozen=True)
class Precision:
    """The precision chosen for one device, and why (printed at the start of every command)."""

    name: str  # fp32, bf16 or fp16
    reason: str

    @property
    def autocast_dtype(self):
        """The torch dtype to autocast to; None for fp32 (no autocast)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def accelerate(self) -> str:
        """accelerate's name for it (`Accelerator(mixed_precision=...)`)."""
        return "no" if self.name == "fp32" else self.name

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def cpu_capability() -> str:
    """AMX or AVX512_BF16 where the CPU computes in bf16, else torch's dispatch level (AVX2, AVX512, ...);
    RERANKFORGE_CPU_CAPABILITY replaces what was detected."""
    override = os.environ.get(CPU_CAPABILITY_ENV, "").strip()
    if override:
        name = override.upper().replace("-", "_")
        if name not in KNOWN_CPU_CAPABILITIES:
            raise ConfigError(f"{CPU_CAPABILITY_ENV}: expected one of {', '.join(KNOWN_CPU_CAPABILITIES)}; "
                              f"got {override!r}")
        return name
    features = cpu_features()
    if features.get("amx_bf16"):
        return "AMX"
    if features.get("avx512_bf16"):
        return "AVX512_BF16"
    import torch

    return torch.backends.cpu.get_cpu_capability()


def cpu_features() -> dict:
    import torch

    get = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.10; older ones have the private probe
    if get is not None:
        return dict(get())
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return {"avx512_bf16": bool(probe and probe())}


def native_bf16(device) -> bool:
    """Whether `device` computes in bf16 natively (no emulation)."""
    kind = _device_type(device)
    if kind == "cuda":
        import torch

        return torch.cuda.is_bf16_supported(including_emulation=False)
    return kind == "cpu" and cpu_capability() in NATIVE_BF16_CPU


def native_fp16(device) -> bool:
    kind = _device_type(device)
    return kind == "cuda" or (kind == "cpu" and cpu_capability() in NATIVE_FP16_CPU)


def resolve_precision(requested: str, device) -> Precision:
    """`auto`: bf16 where `device` has it natively, fp16 on a CUDA GPU without it, else fp32. An explicit
    choice is kept; a bf16/fp16 that `device` would only emulate warns once (EmulatedPrecisionWarning)."""
    if requested not in PRECISIONS:
        raise ConfigError(f"precision: expected one of auto, fp32 (or no), bf16, fp16; got {requested!r}")
    kind = _device_type(device)
    if requested in ("fp32", "no"):
        return Precision("fp32", "as configured")
    if requested == "auto":
        if native_bf16(device):
            return Precision("bf16", f"auto: {_describe(kind)} has native bf16")
        if kind == "cuda":
            return Precision("fp16", "auto: this GPU has no bf16")
        if kind == "cpu":
            return Precision("fp32", f"auto: {_describe(kind)} has no native bf16")
        return Precision("fp32", f"auto: fp32 on {kind} devices")
    native = native_bf16(device) if requested == "bf16" else native_fp16(device)
    if native or kind not in ("cpu", "cuda"):
        return Precision(requested, "as configured")
    _warn_once(requested, kind)
    return Precision(requested, f"as configured; emulated on {_describe(kind)}, slow")


_warned: set[tuple[str, str]] = set()


def _warn_once(precision: str, kind: str) -> None:
    key = (precision, _describe(kind))
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(f"{precision} was asked for, but {_describe(kind)} has no native {precision}: it is emulated, "
                  f"which is much slower than fp32 ({EMULATION_COST}); choose auto (or fp32: `no` in a training config) here",
                  EmulatedPrecisionWarning, stacklevel=3)


def _describe(kind: str) -> str:
    return {"cpu": f"this CPU ({cpu_capability()})", "cuda": "this GPU"}.get(kind, f"this {kind} device")


def _device_type(device) -> str:
    return device.split(":")[0] if isinstance(device, str) else device.type  # "cuda:1" or torch.device


# --- threads

@dataclass(frozen=True)
class Threads:
    count: int
    reason: str

    def __str__(self) -> str:
        return f"{self.count} CPU thread(s) per process ({self.reason})"


def usable_cores() -> int:
    """Cores this process may run on: its affinity mask, capped by a cgroup CPU quota (containers, CI
    runners) and by the physical cores (hyper-threads add little to matrix products)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    physical = _physical_cores()
    if physical:
        cores = min(cores, physical)
    return max(1, cores)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None if unlimited."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu" / "cpu.cfs_quota_us"
        if v1.is_file():
            quota = int(v1.read_text())
            return None if quota <= 0 else quota / int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        pass
    return None


def _physical_cores() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_count(logical=False)


def choose_cpu_threads(processes: int = 1) -> Threads:
    """Intra-op threads for each of `processes` processes on this machine (LOCAL_WORLD_SIZE, when a
    launcher sets it, counts them instead)."""
    wanted = os.environ.get(CPU_THREADS_ENV, "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise ConfigError(f"{CPU_THREADS_ENV}: expected a positive integer, got {wanted!r}")
        return Threads(int(wanted), CPU_THREADS_ENV)
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    launched_default = omp == "1" and "ACCELERATE_MIXED_PRECISION" in os.environ  # set by `accelerate launch`
    if omp.isdigit() and int(omp) >= 1 and not launched_default:
        return Threads(int(omp), "OMP_NUM_THREADS")
    local = os.environ.get("LOCAL_WORLD_SIZE", "")
    processes = int(local) if local.isdigit() and int(local) >= 1 else max(1, processes)
    cores = usable_cores()
    return Threads(max(1, cores // processes), f"{cores} usable core(s) / {processes} process(es)")


def use_cpu_threads(processes: int = 1) -> Threads:
    """Choose (see `choose_cpu_threads`) and apply to torch; returns the choice for the caller to print."""
    import torch

    choice = choose_cpu_threads(processes)
    torch.set_num_threads(choice.count)
    return choice
