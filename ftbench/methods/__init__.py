"""Fine-tuning methods: which parameters train and what is added to the model.

=============  ==============================================================================
full           every parameter
head-only      backbone frozen, fresh task head trains
last-layer     last ``layers`` transformer blocks + BERT pooler + head          (freeze.py)
bitfit         every ``*.bias`` (incl. LayerNorm) + head                        (freeze.py)
lora           peft LoRA (query,value / q_lin,v_lin by default) + head          (peft_methods.py)
qlora          4-bit NF4 backbone (bitsandbytes) + LoRA + head                  (peft_methods.py)
ia3            peft IA3 (keys, values, FFN) + head                              (peft_methods.py)
prefix         peft prefix tuning + head; BERT/RoBERTa only                     (peft_methods.py)
adapters       hand-written bottleneck adapters + head                          (adapters.py)
=============  ==============================================================================

On a decoder LM (task ``causal-lm``) the head is the pretrained ``lm_head``: head-only and
last-layer train it (untied from tied input embeddings), BitFit trains biases only and refuses
a model without any, the others add no head (methods/lm.py).

Importing this package (or ``ftbench.methods.registry``) does not import torch, peft or
transformers; the functions below import them when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftbench.methods import freeze
from ftbench.methods.freeze import head_module_names
from ftbench.methods.params import ParamCounts, count_parameters
from ftbench.methods.registry import (
    METHOD_NAMES,
    METHODS,
    ArgSpec,
    MethodError,
    MethodInfo,
    MethodUnsupported,
    resolved_args,
    validate_method_args,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ftbench.spec import MethodSpec

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "ArgSpec",
    "MethodError",
    "MethodInfo",
    "MethodUnsupported",
    "ParamCounts",
    "apply_method",
    "count_parameters",
    "from_pretrained_kwargs",
    "head_module_names",
    "qlora_available",
    "validate_method_args",
]


def apply_method(model: Any, method: "MethodSpec", task: str) -> Any:
    """Freeze / wrap ``model`` for ``method``; return the model to train (maybe a PeftModel).

    Raises MethodError for bad args, MethodUnsupported when the method cannot run for this
    architecture (e.g. prefix on DistilBERT) -- always before any training step.
    """
    if task not in ("classification", "qa", "causal-lm"):
        raise MethodError(f"unknown task {task!r} (allowed: classification, qa, causal-lm)")
    args = resolved_args(method.name, dict(method.args))
    name = method.name
    if task == "causal-lm" and name in ("head-only", "last-layer", "bitfit", "adapters"):
        # not at import: this package loads at start-up (`ftbench presets`, the TUI)
        from ftbench.methods import lm

        if name == "adapters":
            from ftbench.methods.adapters import apply_adapters  # torch at its top (see the docstring)

            return apply_adapters(model, args, heads=())
        fn0 = {"head-only": lm.apply_head_only, "last-layer": lm.apply_last_layer,
               "bitfit": lm.apply_bitfit}[name]
        return fn0(model, args)
    if name in ("full", "head-only", "last-layer", "bitfit"):
        fn = {"full": freeze.apply_full, "head-only": freeze.apply_head_only,
              "last-layer": freeze.apply_last_layer, "bitfit": freeze.apply_bitfit}[name]
        return fn(model, args)
    if name == "adapters":
        from ftbench.methods.adapters import apply_adapters  # torch at its top (see the docstring)

        return apply_adapters(model, args)
    from ftbench.methods import peft_methods  # not at import: this package loads at start-up

    fn2 = {"lora": peft_methods.apply_lora, "qlora": peft_methods.apply_qlora,
           "ia3": peft_methods.apply_ia3, "prefix": peft_methods.apply_prefix}[name]
    return fn2(model, args, task)


def from_pretrained_kwargs(method: "MethodSpec", compute_dtype: "torch.dtype") -> dict[str, Any]:
    """Extra kwargs for ``AutoModelFor*.from_pretrained``: a 4-bit NF4 BitsAndBytesConfig for
    qlora (head and pooler skipped), ``{}`` for every other method."""
    if method.name != "qlora":
        return {}
    from ftbench.methods.peft_methods import from_pretrained_kwargs as impl  # not at import (see apply_method)

    return impl(method, compute_dtype)


def qlora_available() -> tuple[bool, str]:
    """(True, what works) or (False, why not -- one line) for bitsandbytes 4-bit on this machine."""
    from ftbench.methods.peft_methods import qlora_available as impl  # not at import (see apply_method)

    return impl()
