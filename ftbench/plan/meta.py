"""The run's model with its method applied, on the meta device: shapes without storage.

`build_meta_model` reads only the model's ``config.json`` (no weights), builds the task
model under `accelerate.init_empty_weights` (buffers too: thread-local), quantizes it for QLoRA with transformers' own
bitsandbytes quantizer (which swaps ``nn.Linear`` for ``Linear4bit`` on the meta device, with
the same skip list the run uses) and applies the method through the same
`ftbench.methods.apply_method` the engine calls. So trainable parameters are counted by the
code that decides them in a run, not by a formula that could drift from it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import init_empty_weights
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForQuestionAnswering,
                          AutoModelForSequenceClassification)

from ftbench import methods
from ftbench.methods.freeze import transformer_blocks, unwrap
from ftbench.models import resolve_model
from ftbench.spec import RunSpec


@dataclass(frozen=True)
class MetaModel:
    model: Any                  # the meta model, method applied (maybe a PeftModel)
    config: Any
    heads: tuple[str, ...]
    blocks: list[Any]
    quantized: frozenset[str]   # names of 4-bit linear modules (QLoRA)


def load_config(spec: RunSpec, num_labels: int | None) -> Any:
    """The model's config, as the run's ``from_pretrained`` would build it (config only)."""
    ref = resolve_model(spec.model)
    kwargs: dict[str, Any] = {}
    if spec.task == "classification":
        kwargs["num_labels"] = num_labels or 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoConfig.from_pretrained(ref.path, trust_remote_code=spec.trust_remote_code, **kwargs)


def model_class(task: str) -> Any:
    if task == "causal-lm":
        return AutoModelForCausalLM
    return AutoModelForQuestionAnswering if task == "qa" else AutoModelForSequenceClassification


def weight_dtype(config: Any) -> Any:
    """What ``from_pretrained(dtype="auto")`` (transformers 5's default) loads: the config's
    dtype, else float32."""
    dtype = getattr(config, "dtype", None)  # transformers 5 (``torch_dtype`` is its deprecated alias)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def build_meta_model(spec: RunSpec, config: Any, compute_dtype: Any) -> MetaModel:
    cls = model_class(spec.task)
    quantized: frozenset[str] = frozenset()
    # Outside init_empty_weights: the QLoRA check runs a real 4-bit layer.
    qconfig = methods.from_pretrained_kwargs(spec.method, compute_dtype).get("quantization_config")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # include_buffers=True is `with torch.device("meta")`, a torch function mode, which is
        # thread-local. The default patches nn.Module.register_parameter for the whole
        # process: a run building its real model in another thread (the TUI plans while a run
        # trains) would get meta parameters, and two plans at once could leave the patch on.
        with init_empty_weights(include_buffers=True):
            model = cls.from_config(config, trust_remote_code=spec.trust_remote_code,
                                    dtype=weight_dtype(config))
            # Tie lm_head to the input embeddings (SmolLM2) as loading does.
            if getattr(model.config, "tie_word_embeddings", False):
                model.tie_weights()
            if qconfig is not None:
                quantized = _quantize_on_meta(model, qconfig, compute_dtype)
            heads = methods.head_module_names(model)
            model = methods.apply_method(model, spec.method, spec.task)
    try:
        _, blocks = transformer_blocks(model)
    except Exception:
        blocks = []
    return MetaModel(model, config, heads, blocks, quantized)


def _quantize_on_meta(model: Any, config: Any, compute_dtype: Any) -> frozenset[str]:
    """Swap linears for bitsandbytes ``Linear4bit`` as ``from_pretrained`` would for QLoRA."""
    # QLoRA only: bitsandbytes (and transformers' quantizers with it) load for 4-bit plans alone
    import bitsandbytes as bnb
    from transformers.quantizers import AutoHfQuantizer

    quantizer = AutoHfQuantizer.from_config(config, pre_quantized=False)
    quantizer.preprocess_model(model, device_map={"": "cpu"}, dtype=compute_dtype)
    model.is_loaded_in_4bit = True  # what the quantizer sets once weights are loaded
    model.hf_quantizer = quantizer
    return frozenset(name for name, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit))


def enable_checkpointing_input_grads(model: Any) -> None:
    """What ``gradient_checkpointing_enable`` also does (transformers 5, for models fed
    ``input_ids``, PEFT or not): make the embeddings' output require grad, so frozen layers
    below the first trainable one pass gradients and save their inputs. Checkpointing itself is
    accounted for analytically (`SavedProfile.checkpointed`), not switched on here."""
    base = unwrap(model)
    enable = getattr(base, "enable_input_require_grads", None)
    if callable(enable) and getattr(base, "main_input_name", "") == "input_ids":
        enable()
