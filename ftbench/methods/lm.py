"""The methods on decoder language models (the ``causal-lm`` task), where they differ.

A causal LM has no fresh task head: its head is the pretrained ``lm_head``, so

* head-only trains ``lm_head``; last-layer trains the last block(s), the final norm and
  ``lm_head``; nothing else is unfrozen;
* BitFit trains the bias terms and nothing else; a model without any (Llama, SmolLM2) is
  refused before training, since BitFit would train nothing;
* LoRA, QLoRA, IA3 and prefix save no extra modules (peft's ``modules_to_save`` stays empty)
  and adapters add no head.

Tied embeddings (SmolLM2, tiny-llama: ``lm_head.weight`` *is* the input embedding matrix):
full fine-tuning and the adapter methods keep the tie (the matrix counts once, as the
embedding), but head-only and last-layer would also move every input embedding if they trained
the shared matrix. They **untie** instead: ``lm_head`` gets its own trainable copy of the
matrix and the input embeddings stay frozen, so the run trains exactly the output layer and
the model's total grows by vocab x hidden. `untie_note` says which happened; the engine stores
it in ``model_info.tied_embeddings``.
"""

from __future__ import annotations

from typing import Any

from ftbench.errors import MethodError, MethodUnsupported
from ftbench.methods.freeze import freeze_all, transformer_blocks, unwrap

LM_TASK = "causal-lm"


def output_layer(model: Any) -> Any:
    base = unwrap(model)
    get = getattr(base, "get_output_embeddings", None)
    layer = get() if callable(get) else None
    if layer is None:
        raise MethodUnsupported(f"{type(base).__name__} has no output layer (lm_head)")
    return layer


def is_tied(model: Any) -> bool:
    base = unwrap(model)
    try:
        inputs = base.get_input_embeddings()
        return output_layer(model).weight is inputs.weight
    except (AttributeError, NotImplementedError, MethodUnsupported):
        return False


def untie(model: Any) -> bool:
    """Give ``lm_head`` its own copy of a tied matrix; True if it was tied."""
    if not is_tied(model):
        return False
    import torch  # not at import: engine.session imports this module (through build) before torch

    head = output_layer(model)
    head.weight = torch.nn.Parameter(head.weight.detach().clone())
    config = unwrap(model).config
    config.tie_word_embeddings = False
    text = getattr(config, "get_text_config", lambda: None)()
    if text is not None and text is not config:
        text.tie_word_embeddings = False
    return True


def untie_note(method: str, tied: bool, untied: bool) -> str:
    """One line for the record: how the tied input/output embeddings were handled."""
    if not tied:
        return "not tied: lm_head has its own weights"
    if untied:
        return (f"untied for {method}: lm_head trains its own copy of the input embeddings, "
                "which stay frozen (total grows by vocab x hidden)")
    if method == "full":
        return ("tied: lm_head shares the input embedding matrix, counted once (as the "
                "embedding); full fine-tuning trains the shared matrix")
    return ("tied: lm_head shares the input embedding matrix, counted once (as the embedding); "
            f"{method} leaves it frozen")


def final_norm(model: Any) -> Any:
    """The norm after the last block (``model.norm`` in Llama), or None."""
    base = unwrap(model)
    backbone = getattr(base, base.base_model_prefix, None)
    for name in ("norm", "final_layernorm", "ln_f", "final_layer_norm"):
        module = getattr(backbone, name, None)
        if module is not None:
            return module
    return None


def apply_head_only(model: Any, args: dict[str, Any]) -> Any:
    untie(model)
    freeze_all(model)
    output_layer(model).requires_grad_(True)
    return model


def apply_last_layer(model: Any, args: dict[str, Any]) -> Any:
    n = int(args.get("layers", 1))
    _, blocks = transformer_blocks(model)
    if n > len(blocks):
        raise MethodError(f"method 'last-layer': arg 'layers' is {n} but the model has "
                          f"{len(blocks)} blocks")
    untie(model)
    freeze_all(model)
    for block in blocks[-n:]:
        block.requires_grad_(True)
    norm = final_norm(model)
    if norm is not None:
        norm.requires_grad_(True)
    output_layer(model).requires_grad_(True)
    return model


def bias_names(model: Any) -> list[str]:
    return [name for name, _ in model.named_parameters() if name.rsplit(".", 1)[-1] == "bias"]


def bitfit_refusal(model_type: str, class_name: str) -> str:
    return (f"method 'bitfit' does not apply to {class_name} ({model_type}): the model has no "
            "bias parameters, so BitFit would train nothing (use lora, ia3 or adapters)")


def apply_bitfit(model: Any, args: dict[str, Any]) -> Any:
    names = set(bias_names(model))
    if not names:
        base = unwrap(model)
        raise MethodUnsupported(bitfit_refusal(str(getattr(base.config, "model_type", "?")),
                                               type(base).__name__))
    freeze_all(model)
    for name, param in model.named_parameters():
        if name in names:
            param.requires_grad_(True)
    return model
