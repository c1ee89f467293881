"""Peak training memory from its parts. Pure arithmetic: no torch here.

The peak of a training step with AdamW (``zero_grad(set_to_none=True)``, as the Trainer does):

* during the forward pass: weights + optimizer states + the activations saved for backward;
* during the backward pass activations are freed as gradients appear, so the step peaks at
  ``weights + optimizer + max(activations + backward working set, gradients)``;
* a forward that saves nothing (an evaluation, or a frozen backbone's training forward) still
  holds each layer's outputs while the next one is computed: its forward working set.

Parts:

* weights: every parameter in its dtype; QLoRA's 4-bit NF4 weights at half a byte per element
  plus their quantization state (`ftbench.plan.weights`).
* gradients: one per trainable element, in the parameter's dtype.
* optimizer: AdamW keeps two fp32 states (``exp_avg``, ``exp_avg_sq``) per trainable element.
* master copies: fp32 copies of half-precision trainable weights. ftbench trains with
  ``torch.autocast`` on weights loaded in their checkpoint dtype (fp32 for every preset
  model), so the Trainer keeps none; a model stored in half precision and trained as such
  would need one per trainable element, and that is what is counted then.
* activations: what autograd saves, traced on the meta device (`ftbench.plan.trace`), with
  or without gradient checkpointing; the backward working set is twice the largest saved
  tensor (its gradient and the gradient flowing into it).
* forward working set: the most bytes of non-weight tensors alive at once in a forward that
  saves nothing (traced, `ftbench.plan.trace.trace_forward_live`), the larger of the training
  forward at the training batch and the evaluation's at the evaluation batch.
* overhead: on CUDA the cuBLAS/cuBLASLt workspaces, which PyTorch takes from its caching
  allocator (so they count in ``max_memory_allocated``), and, outside the allocator, the
  CUDA context and the allocator's reserve slack, which count against the free memory NVML
  reports; on CPU the training runtime's own growth (see `CPU_RUNTIME_MB`) and, against the
  free RAM only, the heap glibc keeps after freeing (`CPU_HEAP_SLACK`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MB = 1024 * 1024

# cuBLAS workspace, taken from the caching allocator: torch sizes it 32 MiB on sm90 and later
# (4096 KiB x 8) and 8.125 MiB before (4096 KiB x 2 + 16 KiB x 8), one per handle; training
# uses two (the main thread's forward, the autograd thread's backward). From torch's source,
# not yet measured by ftbench on a GPU.
CUBLAS_WORKSPACE_MB = {"sm90": 64.0, "older": 16.25}
# The CUDA context with torch's kernels loaded (NVML "used" that no allocator holds): a typical
# figure for torch 2.x on a datacenter GPU, not yet measured by ftbench; it moves with the
# driver and the kernels loaded. It counts in what must be free, never in PEAK.
CUDA_CONTEXT_MB = 520.0
# The caching allocator reserves more than it hands out (block rounding, fragmentation):
# an allowance, not a measurement. It counts in what must be free, never in PEAK.
RESERVE_SLACK = 0.10
# CPU: what a training process grows by besides tensors (autograd and OpenMP thread buffers,
# the Trainer, the data loader, Python objects). Measured with benchmarks/plan_accuracy.py on
# tiny-bert (0.5 MB of weights), RSS growth (mmap threshold fixed) minus its predicted
# tensors, 2-core x86 CPU, torch 2.13: 29.5 to 35 MB across full, LoRA, head-only, BitFit, IA3.
# It is most of the prediction for a tiny model, and under 10 % of it for minilm-l6.
CPU_RUNTIME_MB = 30.0
# CPU: glibc's dynamic mmap threshold keeps freed activation memory in the heap, so the RSS a
# run reaches exceeds its live tensors; benchmarks/plan_accuracy.py measured up to 1.38x
# (minilm-l6 full, batch 8 x 128). Counted in what must be free, not in the peak.
CPU_HEAP_SLACK = 0.40


@dataclass(frozen=True)
class MemoryParts:
    """Bytes, except where named ``_mb``."""

    weights: dict[str, int]
    gradients: int
    optimizer: int
    master_copies: int
    activations: int
    backward_working_set: int
    forward_working_set: int
    workspace: int              # counted in the allocator peak (cuBLAS) or the RSS (CPU runtime)
    outside_allocator: int      # CUDA context + reserve slack; on CPU glibc's retained heap

    @property
    def weights_total(self) -> int:
        return sum(self.weights.values())

    @property
    def peak(self) -> int:
        """``max_memory_allocated`` on CUDA, RSS growth on CPU.

        Weights, optimizer states and master copies live for the whole run; on top of them,
        three moments that never overlap:

        * the training step's forward and backward: the saved activations plus the backward
          working set (gradients appear as activations are freed, so a step that ends with
          every gradient alive is the second term);
        * the optimizer step: every gradient, the activations freed;
        * a forward that saves nothing: the forward working set. In an evaluation there is
          nothing saved and no gradient (the Trainer zeroes them to None after every step,
          before it evaluates); a frozen backbone's training forward saves next to nothing,
          and a trainable model's forward saves most of what it holds, so the saved
          activations already count it.
        """
        dynamic = max(self.activations + self.backward_working_set, self.gradients,
                      self.forward_working_set)
        return self.weights_total + self.optimizer + self.master_copies + dynamic + self.workspace

    @property
    def device_total(self) -> int:
        """What the run needs free on the device (NVML's view on CUDA)."""
        return self.peak + self.outside_allocator

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "weights"}
        out: dict[str, Any] = {f"{k}_mb": round(v / MB, 1) for k, v in d.items()}
        out["weights_mb"] = {k: round(v / MB, 1) for k, v in self.weights.items()}
        out["weights_total_mb"] = round(self.weights_total / MB, 1)
        out["peak_mb"] = round(self.peak / MB, 1)
        out["device_total_mb"] = round(self.device_total / MB, 1)
        return out


def workspace_bytes(device: str, device_name: str | None) -> tuple[int, int]:
    """(inside the allocator, outside it but on the device) overheads, without slack."""
    if device != "cuda":
        return int(CPU_RUNTIME_MB * MB), 0
    hopper = any(tag in (device_name or "") for tag in ("H100", "H200", "H800", "GH200", "B200"))
    return int(CUBLAS_WORKSPACE_MB["sm90" if hopper else "older"] * MB), int(CUDA_CONTEXT_MB * MB)


def assemble(weights: dict[str, int], trainable_bytes: int, trainable_elements: int,
             half_trainable_elements: int, activations: int, largest_saved: int,
             forward_working_set: int, device: str, device_name: str | None) -> MemoryParts:
    inside, context = workspace_bytes(device, device_name)
    parts = MemoryParts(
        weights=dict(weights),
        gradients=trainable_bytes,
        optimizer=2 * 4 * trainable_elements,
        master_copies=4 * half_trainable_elements,
        activations=activations,
        backward_working_set=2 * largest_saved,
        forward_working_set=forward_working_set,
        workspace=inside,
        outside_allocator=0,
    )
    slack = RESERVE_SLACK if device == "cuda" else CPU_HEAP_SLACK
    return MemoryParts(**{**asdict(parts), "outside_allocator": context + int(slack * parts.peak)})
