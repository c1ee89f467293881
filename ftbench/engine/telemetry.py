"""Memory and GPU telemetry, taken the same way for every run.

A daemon thread samples every `INTERVAL_S` (0.5 s): NVML device memory and utilisation when an
NVIDIA GPU and nvidia-ml-py are present (nothing otherwise), and the process RSS through
psutil. The training thread never waits on it. torch's peak counters are reset at run start
and read at the end (CUDA only; on CPU they stay None — never invented). On a CPU the peak RSS
is the kernel's exact high-water mark since the run's baseline (`ftbench.engine.hostmem`),
where that window could be opened.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ftbench.engine import hostmem

INTERVAL_S = 0.5
MB = 1024 * 1024


@dataclass
class NvmlInfo:
    available: bool
    reason: str
    name: str | None = None
    driver: str | None = None
    total_mb: float | None = None


def nvml_info(index: int = 0) -> NvmlInfo:
    """Describe GPU ``index`` through NVML, or say why that is not possible (never raises)."""
    try:
        # optional (nvidia-ml-py may be missing), and not at import: the TUI loads this module at
        # start-up and probes NVML in a worker
        import pynvml
    except ImportError:
        return NvmlInfo(False, "nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError subclasses, or a missing libnvidia-ml
        return NvmlInfo(False, f"NVML unavailable: {exc}")
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        driver = pynvml.nvmlSystemGetDriverVersion()
        total = pynvml.nvmlDeviceGetMemoryInfo(handle).total / MB
        return NvmlInfo(True, "ok", _text(name), _text(driver), float(total))
    except Exception as exc:
        return NvmlInfo(False, f"NVML query failed: {exc}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class TelemetrySample:
    t: float
    rss_mb: float | None
    gpu_used_mb: float | None = None
    gpu_total_mb: float | None = None
    gpu_util: float | None = None
    gpu_index: int = 0  # the NVML index read (a test sampler may simulate several GPUs by it)


# Fills a sample's GPU fields for its ``gpu_index``; raises when the GPU cannot be read.
GpuSampler = Callable[[TelemetrySample], None]


@dataclass
class Telemetry:
    """Background sampler. `start()`, `stop()`; read peaks and the GPU series afterwards."""

    # the GPU query, filling a sample for its ``gpu_index`` (`nvml_sample` on an NVIDIA GPU;
    # a test passes a simulated GPU, or one that fails); None: no GPU is sampled
    sampler: GpuSampler | None = None
    on_gpu_sample: Callable[[TelemetrySample], None] | None = None
    interval_s: float = INTERVAL_S
    gpu_index: int = 0
    peak_rss_mb: float | None = None
    peak_gpu_used_mb: float | None = None
    gpu_series: list[dict[str, float | None]] = field(default_factory=list)
    nvml_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._sample()  # one sample at t=0 so short runs still have a peak
        self._thread = threading.Thread(target=self._loop, name="ftbench-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()
        # A CPU run's exact peak since its baseline (the kernel's high-water mark), where its
        # window could be opened; the samples above can miss a short peak.
        exact = hostmem.window_peak()
        if exact is not None:
            self.peak_rss_mb = max(self.peak_rss_mb or 0.0, exact)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        t = round(time.perf_counter() - self._t0, 3)
        sample = TelemetrySample(t=t, rss_mb=_rss_mb(), gpu_index=self.gpu_index)
        if sample.rss_mb is not None:
            self.peak_rss_mb = max(self.peak_rss_mb or 0.0, sample.rss_mb)
        if self.sampler is not None and self.nvml_error is None:
            try:
                self.sampler(sample)
            except Exception as exc:  # NVML failing mid-run: stop sampling it, keep training
                self.nvml_error = f"NVML failed at t={t:.1f}s: {exc}"
        if sample.gpu_used_mb is not None:
            self.peak_gpu_used_mb = max(self.peak_gpu_used_mb or 0.0, sample.gpu_used_mb)
            self.gpu_series.append({"t": t, "used_mb": round(sample.gpu_used_mb, 1),
                                    "util": sample.gpu_util})
            if self.on_gpu_sample is not None:
                self.on_gpu_sample(sample)


def nvml_sample(sample: TelemetrySample) -> None:
    """The real `GpuSampler`: NVML's used and total memory and utilisation."""
    import pynvml  # not at import: the TUI loads this module at start-up (see nvml_info)

    handle = pynvml.nvmlDeviceGetHandleByIndex(sample.gpu_index)
    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
    util = pynvml.nvmlDeviceGetUtilizationRates(handle)
    sample.gpu_used_mb = mem.used / MB
    sample.gpu_total_mb = mem.total / MB
    sample.gpu_util = float(util.gpu)


def _rss_mb() -> float | None:
    try:
        import psutil  # not at import: the TUI loads this module at start-up without psutil

        return psutil.Process().memory_info().rss / MB
    except Exception:
        return None


def reset_torch_peaks(torch: Any, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def torch_peaks(torch: Any, device: str) -> tuple[float | None, float | None]:
    """(peak allocated MB, peak reserved MB) since the last reset; (None, None) off CUDA."""
    if device != "cuda":
        return None, None
    return torch.cuda.max_memory_allocated() / MB, torch.cuda.max_memory_reserved() / MB
