"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021), written by hand.

Why not AdapterHub: the ``adapters`` package (1.3) pins ``transformers~=4.57`` and cannot be
installed next to transformers 5.x, which ftbench needs. So this module adds the adapters
itself, without editing transformers code:

* an adapter is ``x + up(act(down(x)))``: down-projection ``hidden -> bottleneck``, a
  nonlinearity, up-projection ``bottleneck -> hidden`` and a residual connection. The
  up-projection (weight and bias) starts at **zero**, so the adapted model computes exactly
  the pretrained function at step 0; the down-projection gets a small normal init (std 0.02).
* placement: after the *output dense* of the FFN (``placement="ffn"``, Pfeiffer-style,
  the default), after the output dense of the attention block (``"attention"``), or both
  (``"both"``, Houlsby-style). "After the output dense" means on that Linear's output,
  before the block's dropout + residual + LayerNorm, as in Houlsby's figure 2.
  Modules: BERT/RoBERTa ``attention.output.dense`` and ``output.dense``; DistilBERT
  ``attention.out_lin`` and ``ffn.lin2``; Llama blocks ``self_attn.o_proj`` and
  ``mlp.down_proj`` (before the residual add; Llama has no post-norm).
* mechanics: each adapter is registered as a child ``adapter`` of the Linear it follows
  (so it moves with ``.to()``, is saved in ``state_dict`` as ``...output.dense.adapter.*``
  and the original parameter names are unchanged) and a forward hook on that Linear adds
  its output. The hook is a bound method of the adapter, so ``copy.deepcopy`` keeps it
  working on the copy.
* training: adapters + task head (and, with ``train_layer_norm=True``, every LayerNorm, or
  RMSNorm in Llama, of the backbone, as Houlsby did); everything else is frozen.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ftbench.errors import MethodUnsupported
from ftbench.methods.freeze import (
    freeze_all,
    head_module_names,
    transformer_blocks,
    unfreeze_head,
    unwrap,
)

# per block: placement -> dotted path of the output Linear, tried in order
_OUTPUT_DENSE: dict[str, tuple[str, ...]] = {
    "attention": ("attention.output.dense", "attention.out_lin", "self_attn.o_proj"),
    "ffn": ("output.dense", "ffn.lin2", "mlp.down_proj"),
}

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))`` with ``up`` zero-initialised (identity at start)."""

    def __init__(self, hidden: int, bottleneck: int, non_linearity: str = "relu",
                 dtype: torch.dtype | None = None, device: torch.device | None = None) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck, dtype=dtype, device=device)
        self.act = _ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(bottleneck, hidden, dtype=dtype, device=device)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))

    def hook(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        """Forward hook for the Linear this adapter follows."""
        return self(output)


def _find(block: nn.Module, candidates: tuple[str, ...]) -> nn.Linear | None:
    for path in candidates:
        try:
            module = block.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(module, nn.Linear):
            return module
    return None


def bottleneck_size(hidden: int, args: dict[str, Any]) -> int:
    if args.get("bottleneck") is not None:
        return int(args["bottleneck"])
    return max(1, hidden // int(args.get("reduction_factor", 16)))


def add_adapters(model: Any, args: dict[str, Any]) -> list[str]:
    """Insert adapters in every block; return the dotted names of the Linears adapted."""
    placement = args.get("placement", "ffn")
    where = ("attention", "ffn") if placement == "both" else (placement,)
    prefix, blocks = transformer_blocks(model)
    adapted: list[str] = []
    for i, block in enumerate(blocks):
        for kind in where:
            dense = _find(block, _OUTPUT_DENSE[kind])
            if dense is None:
                raise MethodUnsupported(
                    f"method 'adapters': cannot find the {kind} output dense of "
                    f"{type(unwrap(model)).__name__} (looked for {', '.join(_OUTPUT_DENSE[kind])})")
            if hasattr(dense, "adapter"):
                raise MethodUnsupported("method 'adapters': the model already has adapters")
            hidden = dense.out_features
            adapter = BottleneckAdapter(hidden, bottleneck_size(hidden, args),
                                        args.get("non_linearity", "relu"),
                                        dtype=dense.weight.dtype, device=dense.weight.device)
            dense.add_module("adapter", adapter)
            dense.register_forward_hook(adapter.hook)
            name = next(n for n, m in block.named_modules() if m is dense)
            adapted.append(f"{prefix}.{i}.{name}")
    return adapted


def apply_adapters(model: Any, args: dict[str, Any], heads: tuple[str, ...] | None = None) -> Any:
    """``heads``: the modules that train with the adapters (default: the fresh task head;
    ``()`` for a causal LM, whose lm_head is pretrained)."""
    heads = head_module_names(model) if heads is None else heads
    add_adapters(model, args)
    freeze_all(model)
    for module in model.modules():
        if isinstance(module, BottleneckAdapter):
            module.requires_grad_(True)
    if args.get("train_layer_norm", False):
        for module in unwrap(model).get_submodule(unwrap(model).base_model_prefix).modules():
            if isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("RMSNorm"):
                module.requires_grad_(True)
    unfreeze_head(model, heads)
    return model
