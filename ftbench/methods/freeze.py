"""Methods that only choose which existing parameters train: full, head-only, last-layer, BitFit.

Also the model-structure helpers the other method modules share (head names, the list of
transformer blocks). No torch import at module level: these work on any ``nn.Module``
through its public API, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftbench.errors import MethodError, MethodUnsupported

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def unwrap(model: Any) -> Any:
    """The transformers model under a peft wrapper (the model itself when not wrapped)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def head_module_names(model: Any) -> tuple[str, ...]:
    """Top-level children holding parameters that are not the backbone (``base_model_prefix``).

    These are the freshly initialised task head: ``classifier`` (BERT, RoBERTa's
    2-layer head), ``pre_classifier`` + ``classifier`` (DistilBERT), ``qa_outputs`` (QA).
    The BERT pooler lives inside the backbone and counts as backbone.
    """
    base = unwrap(model)
    prefix = getattr(base, "base_model_prefix", "")
    names = []
    for name, child in base.named_children():
        if name == prefix:
            continue
        if any(True for _ in child.parameters()):
            names.append(name)
    return tuple(names)


def backbone(model: Any) -> "nn.Module":
    base = unwrap(model)
    prefix = getattr(base, "base_model_prefix", "")
    module = getattr(base, prefix, None) if prefix else None
    if module is None:
        raise MethodUnsupported(f"{type(base).__name__} has no backbone attribute {prefix!r}")
    return module


def transformer_blocks(model: Any) -> tuple[str, list["nn.Module"]]:
    """(dotted name relative to the unwrapped model, blocks) of the transformer layer stack.

    The stack is the first ``ModuleList`` in the backbone whose length is the config's
    number of layers (``bert.encoder.layer``, ``distilbert.transformer.layer`` ...).
    """
    base = unwrap(model)
    n_layers = getattr(base.config, "num_hidden_layers", None)
    prefix = base.base_model_prefix
    for name, module in backbone(model).named_modules():
        if type(module).__name__ == "ModuleList" and (n_layers is None or len(module) == n_layers):
            return f"{prefix}.{name}", list(module)
    raise MethodUnsupported(f"cannot find the transformer blocks of {type(base).__name__}")


def freeze_all(model: Any) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def unfreeze_head(model: Any, heads: tuple[str, ...] | None = None) -> None:
    base = unwrap(model)
    for name in heads if heads is not None else head_module_names(base):
        getattr(base, name).requires_grad_(True)


def _require_head(model: Any) -> tuple[str, ...]:
    heads = head_module_names(model)
    if not heads:
        raise MethodError(f"{type(unwrap(model)).__name__} has no task head outside the backbone")
    return heads


def apply_full(model: Any, args: dict[str, Any]) -> Any:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def apply_head_only(model: Any, args: dict[str, Any]) -> Any:
    heads = _require_head(model)
    freeze_all(model)
    unfreeze_head(model, heads)
    return model


def apply_last_layer(model: Any, args: dict[str, Any]) -> Any:
    """Last ``layers`` blocks + every backbone module above the stack (BERT pooler) + head.

    The pooler sits between the last block and the classifier: training the block
    under a frozen randomly-placed projection would make little sense, so it trains too.
    """
    heads = _require_head(model)
    n = int(args.get("layers", 1))
    _, blocks = transformer_blocks(model)
    if n > len(blocks):
        raise MethodError(f"method 'last-layer': arg 'layers' is {n} but the model has {len(blocks)} blocks")
    freeze_all(model)
    for block in blocks[-n:]:
        block.requires_grad_(True)
    pooler = getattr(backbone(model), "pooler", None)
    if pooler is not None:
        pooler.requires_grad_(True)
    unfreeze_head(model, heads)
    return model


def apply_bitfit(model: Any, args: dict[str, Any]) -> Any:
    """Every parameter named ``*.bias`` (attention, FFN, LayerNorm, pooler, embeddings LN) + head."""
    heads = _require_head(model)
    freeze_all(model)
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[-1] == "bias":
            p.requires_grad_(True)
    unfreeze_head(model, heads)
    return model
