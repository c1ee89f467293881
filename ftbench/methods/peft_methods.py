"""Methods built on peft: LoRA, QLoRA, IA3 and prefix tuning (+ the QLoRA load-time kwargs).

Every method passes the task head explicitly as ``modules_to_save`` (peft's per-task
defaults miss DistilBERT's ``pre_classifier``), so the fresh head always trains.

Version notes (peft 0.21.2 and 0.22.0, transformers 5.24 and 5.25, bitsandbytes 0.50.2), checked by running:

* prefix: transformers 5 renamed the attention-cache argument ``past_key_values`` to
  ``cache`` (with a deprecation alias until 5.40). peft 0.21.2 decides whether a model can
  take a prefix by looking for a ``past_key_values`` parameter in ``forward``'s signature,
  finds none, and raises "Model does not support past key values" for BERT and RoBERTa,
  although their attention does accept a cache. We give the task model an instance-level
  ``forward`` whose signature adds ``past_key_values`` and which forwards it as ``cache``;
  peft 0.22 looks for ``cache`` instead and, finding it, skips peft's own check, so the
  signature names both and the wrapper takes the prefix under either name;
  it also passes explicit ``position_ids`` so the real tokens keep their pretrained
  positions (transformers would otherwise shift them by the prefix length, which also
  overflows the position table at ``max_length == max_position_embeddings``).
  DistilBERT's attention takes no cache at all: prefix raises MethodUnsupported there.
  Gradient checkpointing drops the cache inside checkpointed layers (and the attention mask
  then no longer matches the keys), so a prefix model refuses to enable it, with
  MethodUnsupported, when the Trainer asks (in its constructor, before any step).
* qlora on CPU: on CPUs with AVX512-BF16, bitsandbytes 0.50.2 repacks a Linear4bit's weight
  into an inference-only layout the first time it runs in eval mode without grad (every
  evaluation). Training afterwards then fails ("a view of a leaf Variable that requires grad
  is being used in an in-place operation"), and the repacking crashes outright when
  ``in_features`` < the 64-element quantisation block. We switch that path off per layer
  (``support_avx512bf16_for_cpu = False``); CUDA is unaffected.
* qlora does not turn on gradient checkpointing itself (``prepare_model_for_kbit_training(...,
  use_gradient_checkpointing=False)``): the run's ``gradient_checkpointing`` setting applies
  to every method alike, so memory figures stay comparable.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any

from ftbench.errors import MethodError, MethodUnsupported
from ftbench.methods.freeze import backbone, head_module_names, unwrap

# LoRA targets per model type; other types fall back to peft's own mapping.
LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
}

# IA3 (Liu et al. 2022) rescales keys, values and the FFN's intermediate activation, i.e. the
# input of the FFN's second linear. peft's BERT/RoBERTa default targets the suffix
# "output.dense", which also matches attention.output.dense; the regex keeps only the FFN one.
_BERT_IA3 = (r".*\.layer\.\d+\.(attention\.self\.(key|value)|output\.dense)",
             r".*\.layer\.\d+\.output\.dense")
IA3_TARGETS: dict[str, tuple[list[str] | str, list[str] | str]] = {
    "bert": _BERT_IA3,
    "roberta": _BERT_IA3,
    "distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"]),
}

# llm_int8_skip_modules for QLoRA: the task heads and the BERT/RoBERTa pooler stay in
# full precision. transformers matches these as module-path prefixes or suffixes.
QLORA_SKIP_MODULES: list[str] = ["pre_classifier", "classifier", "qa_outputs", "score",
                                 "bert.pooler", "roberta.pooler", "lm_head"]


def _task_type(task: str) -> Any:
    # after quiet_libraries(): engine.session imports this module (through build) before it runs that
    from peft import TaskType

    if task == "classification":
        return TaskType.SEQ_CLS
    if task == "qa":
        return TaskType.QUESTION_ANS
    if task == "causal-lm":
        return TaskType.CAUSAL_LM
    raise MethodError(f"unknown task {task!r} (allowed: classification, qa, causal-lm)")


def _heads(model: Any, task: str) -> list[str]:
    """Modules peft must train in full: the fresh task head; none for a causal LM, whose
    lm_head is pretrained (ftbench/methods/lm.py)."""
    return [] if task == "causal-lm" else list(head_module_names(model))


def _model_type(model: Any) -> str:
    return str(getattr(unwrap(model).config, "model_type", ""))


def lora_targets(model: Any, args: dict[str, Any], method: str = "lora") -> list[str] | str:
    if args.get("target_modules"):
        t = args["target_modules"]
        return t if isinstance(t, str) else list(t)
    mt = _model_type(model)
    if mt in LORA_TARGETS:
        return list(LORA_TARGETS[mt])
    # after quiet_libraries() (see _task_type)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as m

    if mt in m:
        return list(m[mt])
    raise MethodUnsupported(f"method {method!r}: no default target_modules for model type {mt!r}; "
                            "set args.target_modules")


def _lora(model: Any, args: dict[str, Any], task: str, method: str) -> Any:
    from peft import LoraConfig, get_peft_model  # after quiet_libraries() (see _task_type)

    config = LoraConfig(
        task_type=_task_type(task),
        r=int(args["r"]),
        lora_alpha=args["alpha"],
        lora_dropout=float(args["dropout"]),
        target_modules=lora_targets(model, args, method),
        modules_to_save=_heads(model, task),
        bias="none",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # e.g. target modules not found
        raise MethodError(f"method {method!r}: {str(exc).splitlines()[0]}") from None


def apply_lora(model: Any, args: dict[str, Any], task: str) -> Any:
    return _lora(model, args, task, "lora")


def keep_4bit_trainable(model: Any) -> int:
    """Switch off bitsandbytes' CPU inference repacking on every 4-bit layer (see the module
    docstring); call it before the model first runs in eval mode (a causal-LM run measures the
    base model before the method is applied). Returns how many 4-bit layers there are."""
    import bitsandbytes as bnb  # after quiet_libraries() (see _task_type)

    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for module in four_bit:
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return len(four_bit)


def apply_qlora(model: Any, args: dict[str, Any], task: str) -> Any:
    from peft import prepare_model_for_kbit_training  # after quiet_libraries() (see _task_type)

    if not keep_4bit_trainable(model) or not getattr(model, "is_loaded_in_4bit", False):
        raise MethodError("method 'qlora': the model was not loaded in 4-bit; load it with "
                          "from_pretrained(..., **from_pretrained_kwargs(method, dtype))")
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return _lora(model, args, task, "qlora")


def ia3_targets(model: Any, args: dict[str, Any]) -> tuple[list[str] | str, list[str] | str]:
    target, ff = args.get("target_modules"), args.get("feedforward_modules")
    mt = _model_type(model)
    if target is None:
        if mt in IA3_TARGETS:
            default_t, default_ff = IA3_TARGETS[mt]
        else:
            from peft.utils.constants import (  # after quiet_libraries() (see _task_type)
                TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as ffm,
                TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as tm,
            )

            if mt not in tm:
                raise MethodUnsupported(f"method 'ia3': no default target_modules for model type {mt!r}; "
                                        "set args.target_modules and args.feedforward_modules")
            default_t, default_ff = tm[mt], ffm.get(mt, [])
        target = default_t
        if ff is None:
            ff = default_ff
    elif ff is None:
        ff = []
    if isinstance(target, (list, tuple)) and isinstance(ff, (list, tuple)) and not set(ff) <= set(target):
        raise MethodError("method 'ia3': arg 'feedforward_modules' must be a subset of 'target_modules'")
    return (target if isinstance(target, str) else list(target), ff if isinstance(ff, str) else list(ff))


def apply_ia3(model: Any, args: dict[str, Any], task: str) -> Any:
    from peft import IA3Config, get_peft_model  # after quiet_libraries() (see _task_type)

    target, ff = ia3_targets(model, args)
    config = IA3Config(task_type=_task_type(task), target_modules=target, feedforward_modules=ff,
                       modules_to_save=_heads(model, task))
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise MethodError(f"method 'ia3': {str(exc).splitlines()[0]}") from None


def _accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def prefix_supported(model: Any) -> tuple[bool, str]:
    """Whether the backbone's attention can take prefix keys/values, and if not why."""
    mt = _model_type(model) or type(unwrap(model)).__name__
    try:
        bb = backbone(model)
    except MethodUnsupported as exc:
        return False, str(exc)
    if getattr(unwrap(model).config, "is_encoder_decoder", False):
        return False, f"method 'prefix' is not supported for {mt}: encoder-decoder models are out of scope"
    if _accepts(bb.forward, "past_key_values") or _accepts(bb.forward, "cache"):
        return True, ""
    return False, (f"method 'prefix' is not supported for {mt}: its attention takes no past key/values, "
                   "which is how prefix tuning injects the prefix (use lora, ia3 or adapters)")


def _position_ids(model: Any, input_ids: Any) -> Any:
    """Positions the backbone would give ``input_ids`` without any prefix."""
    emb = getattr(backbone(model), "embeddings", None)
    if emb is None:
        return None
    if hasattr(emb, "create_position_ids_from_input_ids") and getattr(emb, "padding_idx", None) is not None:
        return emb.create_position_ids_from_input_ids(input_ids, emb.padding_idx, 0)  # RoBERTa
    buffer = getattr(emb, "position_ids", None)
    if buffer is not None:
        return buffer[:, : input_ids.shape[1]].expand(input_ids.shape[0], -1)  # BERT
    return None


_NO_CHECKPOINTING = ("method 'prefix' cannot run with gradient checkpointing: transformers drops the "
                     "prefix key/values inside checkpointed layers (set gradient_checkpointing = false)")


def _refuse_checkpointing(self: Any, *args: Any, **kwargs: Any) -> None:
    raise MethodUnsupported(_NO_CHECKPOINTING)


# peft hands the prefix over under the name it believes transformers uses: ``past_key_values``
# (peft <= 0.21) or ``cache`` (peft >= 0.22 with transformers >= 5.24). The wrapper takes both.
_PREFIX_KWARGS = ("past_key_values", "cache")


def _forward_with_prefix(self: Any, *args: Any, **kwargs: Any) -> Any:
    given = [kwargs.pop(name) for name in _PREFIX_KWARGS if name in kwargs]
    past_key_values = next((v for v in given if v is not None), None)
    if past_key_values is not None:
        if self.training and any(getattr(m, "gradient_checkpointing", False) for m in self.modules()):
            raise MethodUnsupported(_NO_CHECKPOINTING)
        kwargs[self._ftbench_cache_kw] = past_key_values
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if kwargs.get("position_ids") is None and input_ids is not None:
            kwargs["position_ids"] = _position_ids(self, input_ids)
    return self._ftbench_inner_forward(*args, **kwargs)


def _install_prefix_forward(model: Any) -> None:
    """Let peft see ``past_key_values`` in the signature (transformers 5 calls it ``cache``),
    keep the real tokens' positions, and refuse gradient checkpointing."""
    # the Trainer enables checkpointing in its constructor: refuse there, before any step
    model.activation_checkpointing_enable = types.MethodType(_refuse_checkpointing, model)
    model.gradient_checkpointing_enable = types.MethodType(_refuse_checkpointing, model)
    if hasattr(model, "_ftbench_inner_forward"):
        return
    bb = backbone(model)
    cache_kw = "cache" if _accepts(bb.forward, "cache") else "past_key_values"
    sig = inspect.signature(type(model).forward)
    params = [p for p in sig.parameters.values() if p.name not in _PREFIX_KWARGS]
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    params[at:at] = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
                     for name in _PREFIX_KWARGS]

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _forward_with_prefix(self, *args, **kwargs)

    forward.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    model._ftbench_cache_kw = cache_kw
    model._ftbench_inner_forward = model.forward
    model.forward = types.MethodType(forward, model)


def apply_prefix(model: Any, args: dict[str, Any], task: str) -> Any:
    ok, why = prefix_supported(model)
    if not ok:
        raise MethodUnsupported(why)
    from peft import PrefixTuningConfig, get_peft_model  # after quiet_libraries() (see _task_type)

    heads = _heads(model, task)
    if task == "causal-lm":  # peft's causal-LM model passes the prefix as the cache itself
        model.gradient_checkpointing_enable = types.MethodType(_refuse_checkpointing, model)
    else:
        _install_prefix_forward(model)
    kwargs: dict[str, Any] = {"num_virtual_tokens": int(args["num_virtual_tokens"]),
                              "prefix_projection": bool(args["prefix_projection"])}
    if args.get("encoder_hidden_size") is not None:
        kwargs["encoder_hidden_size"] = int(args["encoder_hidden_size"])
    elif kwargs["prefix_projection"]:
        kwargs["encoder_hidden_size"] = int(unwrap(model).config.hidden_size)
    config = PrefixTuningConfig(task_type=_task_type(task), modules_to_save=heads, **kwargs)
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise MethodUnsupported(f"method 'prefix': {str(exc).splitlines()[0]}") from None


def from_pretrained_kwargs(method: Any, compute_dtype: Any) -> dict[str, Any]:
    """Extra ``from_pretrained`` kwargs: the 4-bit NF4 quantisation config for qlora, else {}."""
    if method.name != "qlora":
        return {}
    ok, why = qlora_available()
    if not ok:
        raise MethodUnsupported(f"method 'qlora': {why}")
    from transformers import BitsAndBytesConfig  # after quiet_libraries() (see _task_type)

    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
            llm_int8_skip_modules=list(QLORA_SKIP_MODULES),
        )
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@functools.lru_cache(maxsize=1)
def qlora_available() -> tuple[bool, str]:
    """Whether bitsandbytes 4-bit works on this machine's device (CUDA, else CPU), and why not."""
    try:
        # optional: a missing or broken bitsandbytes is this function's answer, not a failure
        import bitsandbytes as bnb
        import torch
    except Exception as exc:  # ImportError, or a broken native library
        return False, f"bitsandbytes cannot be imported: {_first_line(exc)}"
    version = getattr(bnb, "__version__", "?")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    supported = getattr(bnb, "supported_torch_devices", None)
    if supported is not None and device not in supported:
        have = ", ".join(sorted(supported))
        return False, f"bitsandbytes {version} has no 4-bit backend for {device} (has: {have})"
    try:
        torch.manual_seed(0)
        weight = torch.randn(64, 64)
        layer = bnb.nn.Linear4bit(64, 64, bias=True, compute_dtype=torch.float32, quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        layer = layer.to(device)
        if hasattr(layer, "support_avx512bf16_for_cpu"):
            layer.support_avx512bf16_for_cpu = False
        x = torch.randn(2, 64, device=device, requires_grad=True)
        y = layer(x)
        y.sum().backward()
        ref = x.detach().cpu() @ weight.T + layer.bias.detach().float().cpu()
        rel_err = (y.detach().float().cpu() - ref).abs().mean() / ref.abs().mean()
        if x.grad is None or not torch.isfinite(rel_err) or rel_err > 0.2:
            return False, f"bitsandbytes {version} 4-bit on {device} gives wrong results"
    except Exception as exc:
        return False, f"bitsandbytes {version} 4-bit fails on {device}: {_first_line(exc)}"
    return True, f"bitsandbytes {version} 4-bit NF4 works on {device}"
