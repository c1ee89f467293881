"""Parameter counts that compare across methods (no torch import at module level).

Names are normalised to the plain transformers model's names: peft's ``base_model.model.``
(tuners) or ``base_model.`` (prompt learning) prefix is stripped, and a head wrapped by
peft's ``modules_to_save`` is counted once, through its trained copy
(``classifier.modules_to_save.default.weight`` -> ``classifier.weight``); the frozen
``original_module`` twin peft keeps is not counted, so ``total`` is the model's own size
plus what the method added (LoRA/IA3 vectors, prefix encoder, adapters), whichever method.
bitsandbytes ``Params4bit`` count their real element count (two 4-bit values per byte of
storage), as peft's ``get_nb_trainable_parameters`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParamCounts:
    trainable: int
    total: int
    trainable_without_head: int
    trainable_names: tuple[str, ...]


def _numel(param: Any) -> int:
    n = int(param.numel())
    if type(param).__name__ == "Params4bit":
        quant_state = getattr(param, "quant_state", None)
        shape = getattr(quant_state, "shape", None)
        if shape is not None:
            total = 1
            for d in shape:
                total *= int(d)
            return total
        itemsize = getattr(getattr(param, "quant_storage", None), "itemsize", None) or param.element_size()
        return n * 2 * int(itemsize)
    return n


def canonical_name(name: str) -> str | None:
    """The plain-model name of a (maybe peft-wrapped) parameter; None for peft's frozen twins."""
    for prefix in ("base_model.model.", "base_model."):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if ".original_module." in name:
        return None
    return name.replace(".modules_to_save.default.", ".")


def count_parameters(model: Any, head_modules: tuple[str, ...]) -> ParamCounts:
    trainable = total = head_trainable = 0
    names: list[str] = []
    heads = tuple(head_modules)
    for raw_name, param in model.named_parameters():
        name = canonical_name(raw_name)
        if name is None:
            continue
        n = _numel(param)
        total += n
        if param.requires_grad:
            trainable += n
            names.append(name)
            if name.split(".", 1)[0] in heads:
                head_trainable += n
    return ParamCounts(trainable, total, trainable - head_trainable, tuple(names))
