"""Parameter counts and weight bytes of a meta model, by dtype.

Counts go through `ftbench.methods.params.canonical_name`, the rule the run's
`count_parameters` uses (peft prefixes stripped, the head counted once through its trained
copy, peft's frozen ``original_module`` twin left out). A 4-bit weight on the meta device still
has its logical shape, so it counts its logical elements, which is what the run counts once
the weight is packed (``quant_state.shape``).

Bytes: every weight in its dtype; a 4-bit NF4 weight takes half a byte per element plus its
quantization state (bitsandbytes, blocksize 64, double quantization: one 8-bit absmax per
64-element block, and per 256 of those blocks one fp32 absmax and one fp32 offset-free scale;
``use_double_quant`` off: one fp32 absmax per block).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftbench.methods.params import canonical_name

NF4_BLOCK = 64
NESTED_BLOCK = 256


@dataclass(frozen=True)
class WeightCounts:
    trainable: int
    total: int
    trainable_without_head: int
    trainable_bytes: int                      # what grads and optimizer states are sized by
    weight_bytes: dict[str, int] = field(default_factory=dict)  # "fp32" / "bf16" / "nf4" / "nf4-state"
    trainable_by_dtype: dict[str, int] = field(default_factory=dict)


DTYPE_NAMES = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16",
               "torch.float64": "fp64", "torch.int8": "int8", "torch.uint8": "uint8"}


def dtype_name(dtype: Any) -> str:
    return DTYPE_NAMES.get(str(dtype), str(dtype).replace("torch.", ""))


def nf4_state_bytes(n: int, double_quant: bool) -> int:
    blocks = -(-n // NF4_BLOCK)
    if not double_quant:
        return blocks * 4
    return blocks + (-(-blocks // NESTED_BLOCK)) * 4 * 2


def count_weights(model: Any, heads: tuple[str, ...], double_quant: bool = True) -> WeightCounts:
    trainable = total = head = trainable_bytes = 0
    weight_bytes: dict[str, int] = {}
    by_dtype: dict[str, int] = {}
    for raw, param in model.named_parameters():
        name = canonical_name(raw)
        if name is None:
            continue
        n = int(param.numel())
        total += n
        if type(param).__name__ == "Params4bit":
            weight_bytes["nf4"] = weight_bytes.get("nf4", 0) + n // 2
            weight_bytes["nf4-state"] = weight_bytes.get("nf4-state", 0) + nf4_state_bytes(n, double_quant)
            continue
        kind = dtype_name(param.dtype)
        size = n * param.element_size()
        weight_bytes[kind] = weight_bytes.get(kind, 0) + size
        if param.requires_grad:
            trainable += n
            trainable_bytes += size
            by_dtype[kind] = by_dtype.get(kind, 0) + n
            if name.split(".", 1)[0] in heads:
                head += n
    return WeightCounts(trainable, total, trainable - head, trainable_bytes, weight_bytes, by_dtype)
