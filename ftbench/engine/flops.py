"""Model FLOPs and MFU (model FLOPs utilization) for a training run.

The count is analytic, from the model's shapes and the tokens actually trained on (padding
excluded), so it measures useful work, not what the kernels happened to execute:

* forward, per token: ``2 · Σ in·out`` over every linear layer (attention projections, FFN,
  pooler, head, LoRA A/B, adapters; 4-bit layers count their logical shape) plus attention
  scores and the weighted sum, ``4 · L · s · d`` (``s`` the mean sequence length in the run,
  ``d`` the hidden size, ``L`` the layers);
* backward: activation gradients cost one forward of every layer they flow through (from
  the lowest layer holding a trainable parameter to the top; all layers for full, LoRA,
  adapters, IA3, prefix and BitFit, the last block for last-layer, none but the head for
  head-only), weight gradients ``2 · in·out`` per token for each trainable linear.

For full fine-tuning this is the familiar ``6·N·T`` plus the attention term ``12·L·s·d·T``
(PaLM, appendix B). MFU = FLOPs / train time / the device's dense peak for the run's dtype.
Peaks come from vendor datasheets (dense, no sparsity); an unknown GPU gets no MFU unless
``FTBENCH_PEAK_TFLOPS`` says its peak. CPU runs record achieved TFLOP/s but no MFU: there is
no honest single peak for a CPU.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

# Dense tensor-core peaks in TFLOP/s by (name fragment, dtype); first match wins.
# Sources: NVIDIA H100/H200, A100, L40S, L4, T4, V100 datasheets.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bf16": 989.0, "fp16": 989.0, "fp32": 494.5}),
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "fp32": 378.0}),
    ("H100", {"bf16": 989.0, "fp16": 989.0, "fp32": 494.5}),
    ("A100", {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0}),
    ("L40S", {"bf16": 362.0, "fp16": 362.0, "fp32": 183.0}),
    ("L4", {"bf16": 121.0, "fp16": 121.0, "fp32": 60.0}),
    ("T4", {"fp16": 65.0, "fp32": 8.1}),
    ("V100", {"fp16": 125.0, "fp32": 15.7}),
)

_LAYER_INDEX = re.compile(r"\.(?:layer|layers|h|block)\.(\d+)\.")


@dataclass(frozen=True)
class FlopCount:
    forward_per_token: float
    train_per_token: float
    layers: int
    backward_layers: int
    linear_params: int           # Σ in·out over linear layers

    def total(self, tokens: int) -> float:
        return self.train_per_token * tokens


def count_training_flops(model: Any, mean_seq_len: float) -> FlopCount:
    """Per-token training FLOPs of ``model`` as configured for this run (see module doc)."""
    # torch only when counting: plan.estimate and engine.session (through finish) import this
    # module torch-free, the session before quiet_libraries()
    import torch

    config = getattr(model, "config", None)
    layers = int(_first_attr(config, ("num_hidden_layers", "n_layers", "num_layers")) or 0)
    hidden = int(_first_attr(config, ("hidden_size", "dim", "d_model")) or 0)

    linear_total = 0
    linear_trainable = 0
    for name, module in model.named_modules():
        # peft keeps an unused copy of each module it re-trains (``modules_to_save``).
        if isinstance(module, torch.nn.Linear) and "original_module" not in name:
            shape = module.in_features * module.out_features
            linear_total += shape
            if module.weight.requires_grad:
                linear_trainable += shape

    attention_fwd = 4.0 * layers * mean_seq_len * hidden
    forward = 2.0 * linear_total + attention_fwd
    lowest = _lowest_trainable_layer(model)
    if lowest is None:
        backward_layers = 0
    else:
        backward_layers = max(0, layers - lowest)
    # Activation gradients through the backbone layers they must cross; the head's and
    # embeddings' share is negligible next to the blocks.
    backward_act = forward * (backward_layers / layers) if layers else 0.0
    backward_weight = 2.0 * linear_trainable
    return FlopCount(forward, forward + backward_act + backward_weight, layers, backward_layers,
                     linear_total)


def peak_tflops(device_name: str | None, precision: str) -> tuple[float | None, str]:
    """Dense peak for the run's dtype, and where the figure came from."""
    override = os.environ.get("FTBENCH_PEAK_TFLOPS")
    if override:
        try:
            return float(override), "FTBENCH_PEAK_TFLOPS"
        except ValueError:
            return None, f"FTBENCH_PEAK_TFLOPS={override!r} is not a number"
    if not device_name:
        return None, "no GPU: MFU is not defined for a CPU run"
    dtype = {"bf16": "bf16", "fp16": "fp16"}.get(precision, "fp32")
    for fragment, peaks in PEAK_TFLOPS:
        if fragment.lower() in device_name.lower():
            if dtype in peaks:
                return peaks[dtype], f"datasheet dense {dtype} peak for {fragment}"
            return None, f"{fragment} has no {dtype} tensor-core peak on record"
    return None, f"peak FLOP/s unknown for {device_name}; set FTBENCH_PEAK_TFLOPS to get MFU"


def _lowest_trainable_layer(model: Any) -> int | None:
    """Index of the lowest transformer block with a trainable parameter; 0 if the embeddings
    train or a trainable parameter sits in every block; None if only the head trains."""
    lowest: int | None = None
    for name, param in model.named_parameters():
        if not param.requires_grad or "original_module" in name:
            continue
        if "embeddings" in name or "prefix_encoder" in name or "prompt_encoder" in name:
            return 0
        match = _LAYER_INDEX.search(name)
        if match:
            index = int(match.group(1))
            lowest = index if lowest is None else min(lowest, index)
    return lowest


def _first_attr(obj: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None
