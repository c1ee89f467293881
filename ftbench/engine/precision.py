"""Which precision a run computes in, and why: the one rule for `precision = "auto"`.

* On a CUDA GPU: bf16 where the GPU supports it, fp16 on older GPUs.
* On a CPU: bf16 autocast where the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16, as
  torch's own CPU probe reports them, ``torch.cpu.get_capabilities()``, with oneDNN's bf16
  path available); fp32 elsewhere, where bf16 is emulated and slower than fp32. Measured on a
  2-core AMD EPYC with AVX512-BF16: full fine-tuning of MiniLM ran about twice as fast in bf16
  with the same accuracy (docs/cpu-speed.md).

Autocast keeps the weights, gradients and optimizer state in fp32 and computes the matrix
products in bf16; nothing else about a run changes. An explicit ``fp32`` or ``bf16`` is taken
as asked; ``fp16`` needs a CUDA GPU. The engine records the choice and the reason
(``environment.precision``, ``environment.precision_reason``), and the plan uses the same
rule, so what is planned is what is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftbench.errors import FtbenchError

# torch.cpu.get_capabilities() keys -> the name a reader knows them by
_CPU_BF16_FEATURES = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"))


@dataclass(frozen=True)
class Choice:
    precision: str  # "fp32" | "bf16" | "fp16"
    reason: str     # one line: why this precision


def choose(asked: str, device: str, *, gpu_bf16: bool = True, cpu_bf16: str | None = None) -> Choice:
    """The precision for ``asked`` (auto, fp32, fp16, bf16) on ``device`` ("cuda" or "cpu").

    ``gpu_bf16``: the CUDA GPU supports bf16; ``cpu_bf16``: the CPU's native bf16 feature
    (`cpu_bf16_feature`), None without one.
    """
    if asked == "fp16" and device != "cuda":
        raise FtbenchError("precision fp16 needs a CUDA GPU; use precision auto, fp32 or bf16 here")
    if asked != "auto":
        why = f"{asked} as the preset asks"
        if asked == "bf16" and device != "cuda" and not cpu_bf16:
            why += " (this CPU has no native bf16: emulated, slower than fp32)"
        return Choice(asked, why)
    if device == "cuda":
        if gpu_bf16:
            return Choice("bf16", "auto: bf16 autocast (the GPU supports bf16)")
        return Choice("fp16", "auto: fp16 autocast (the GPU has no bf16)")
    if cpu_bf16:
        return Choice("bf16", f"auto: bf16 autocast (the CPU has native bf16: {cpu_bf16})")
    return Choice("fp32", "auto: fp32 (the CPU has no native bf16: no AVX512-BF16 or AMX-BF16)")


def cpu_bf16_feature(torch: Any | None = None) -> str | None:
    """The CPU feature that computes bf16 natively ("AMX-BF16", "AVX512-BF16"), or None.

    Asks torch (its cpuinfo probe and oneDNN), never /proc; a torch without the probe
    answers None (fp32 is always safe).
    """
    if torch is None:
        import torch  # only when not given: plan.device and engine.session import this module torch-free
    try:
        caps = torch.cpu.get_capabilities()
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return None
    except Exception:  # an older or exotic build: no probe, no claim
        return None
    for key, name in _CPU_BF16_FEATURES:
        if caps.get(key):
            return name
    return None


def resolve(asked: str, device: str, torch: Any) -> Choice:
    """`choose` for this machine: asks torch what the GPU or CPU supports."""
    if device == "cuda":
        return choose(asked, device, gpu_bf16=bool(torch.cuda.is_bf16_supported()))
    return choose(asked, device, cpu_bf16=cpu_bf16_feature(torch) if asked in ("auto", "bf16") else None)
