"""What a run ran on: library versions, device, driver, CPU, ftbench revision."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from ftbench import __version__
from ftbench.engine import telemetry


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The ftbench checkout's commit (with +dirty), or None for an installed copy."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def collect(device: str, torch: Any | None = None, *, cuda_index: int = 0,
            nvml_index: int = 0) -> dict[str, Any]:
    """Environment block of a run record. ``torch`` is passed in so this module imports none.
    ``cuda_index`` / ``nvml_index``: this process's GPU as torch and as NVML number it (they
    differ under CUDA_VISIBLE_DEVICES; see `ftbench.engine.world`)."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "peft": _version("peft"),
        "accelerate": _version("accelerate"),
        "datasets": _version("datasets"),
        "bitsandbytes": _version("bitsandbytes"),
        "ftbench": __version__,
        "ftbench_revision": git_revision(),
        "device": device,
        "device_name": None,
        "gpu_memory_mb": None,
        "driver": None,
        "cuda": None,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
    }
    if device == "cuda" and torch is not None:
        env["cuda"] = torch.version.cuda
        env["device_name"] = torch.cuda.get_device_name(cuda_index)
        info = telemetry.nvml_info(nvml_index)
        if info.available:
            env["driver"] = info.driver
            env["gpu_memory_mb"] = info.total_mb
    return env
