"""The device a plan is made for: what it is, how much memory it has free, its peak FLOP/s.

`probe_device` asks NVML (through the same `nvml_info` telemetry uses) for GPU 0's name,
total and free memory; without a GPU the plan is for the CPU and "free" is the memory the
OS reports available (psutil). Tests pass a `DeviceInfo` instead of probing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ftbench.engine import environment, precision

MB = 1024 * 1024


@dataclass(frozen=True)
class DeviceInfo:
    kind: str                   # "cuda" | "cpu"
    name: str | None
    total_mb: float | None
    free_mb: float | None
    source: str                 # where free_mb came from, in words
    bf16: bool = True           # for precision "auto" on CUDA: bf16 if supported, else fp16
    # for precision "auto" on a CPU: its native bf16 feature ("AVX512-BF16", "AMX-BF16") or
    # None for fp32 (`ftbench.engine.precision`)
    cpu_bf16: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_device(index: int = 0) -> DeviceInfo:
    """GPU ``index`` through NVML if there is one, else this machine's CPU and RAM."""
    gpu = _nvml_free(index)
    if gpu is not None:
        return gpu
    return cpu_device()


def cpu_device() -> DeviceInfo:
    try:
        import psutil  # in the try: without psutil the plan says RAM unknown instead of failing

        vm = psutil.virtual_memory()
        return DeviceInfo("cpu", _cpu_name(), vm.total / MB, vm.available / MB,
                          "psutil available RAM", cpu_bf16=_cpu_bf16())
    except Exception as exc:  # pragma: no cover - psutil is a dependency
        return DeviceInfo("cpu", _cpu_name(), None, None, f"RAM unknown ({exc})",
                          cpu_bf16=_cpu_bf16())


def _nvml_free(index: int) -> DeviceInfo | None:
    try:
        import pynvml  # optional: without nvidia-ml-py there is no GPU to plan for
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        major, _ = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    except Exception:
        return None
    name = name.decode() if isinstance(name, bytes) else str(name)
    return DeviceInfo("cuda", name, mem.total / MB, mem.free / MB, f"NVML free memory on GPU {index}",
                      bf16=major >= 8)


def _cpu_bf16() -> str | None:
    """The CPU's native bf16 feature, asked of torch as the runner asks it."""
    return precision.cpu_bf16_feature()


def _cpu_name() -> str:
    return environment.cpu_name() or "cpu"
