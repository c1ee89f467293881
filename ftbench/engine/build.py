"""Load the tokenizer and the model, apply the method, count the parameters.

For a causal-LM run the base model is measured between loading and the method
(`ftbench.engine.generative`). torch is imported by the caller (after
`ftbench.quiet.quiet_libraries`) and passed in.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

from ftbench.engine.events import Emit
from ftbench.engine.generative import GenerativeRun
from ftbench.engine.policy import LoadPolicy
from ftbench.methods import apply_method, count_parameters, from_pretrained_kwargs, head_module_names
from ftbench.results.record import RunRecord
from ftbench.spec import RunSpec


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    # after quiet_libraries(): engine.session imports this module at its top, before it runs that
    from transformers import AutoTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


class Built:
    """The model ready to train, and the causal-LM measurement around it (None otherwise)."""

    def __init__(self, model: Any, generative: GenerativeRun | None) -> None:
        self.model = model
        self.generative = generative


def build_model(spec: RunSpec, path: str, prepared: Any, precision: str, device: str, torch: Any,
                policy: LoadPolicy, record: RunRecord, log: Callable[..., None], emit: Emit,
                cancelled: Callable[[], bool]) -> Built:
    """Load ``path`` as the task's model class in ``precision``, seeded by the spec; fill
    ``record.params`` and ``record.model_info["attn_implementation"]``."""
    compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs = dict(prepared.model_kwargs)
    kwargs.update(from_pretrained_kwargs(spec.method, compute_dtype))
    torch.manual_seed(spec.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = prepared.model_class.from_pretrained(path, **policy.loader_kwargs(), **kwargs)
    heads = head_module_names(model)
    # transformers 5 picks PyTorch SDPA where the architecture supports it; record it.
    record.model_info["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    generative = None
    if prepared.generative is not None:  # causal-lm: the base model, before the method
        generative = GenerativeRun(prepared.generative, record, log, precision, device,
                                   spec.method.name == "qlora", path, emit, cancelled)
        generative.before_method(model)
        if cancelled():
            raise KeyboardInterrupt
    model = apply_method(model, spec.method, spec.task)
    if generative is not None:
        generative.after_method(model, spec.method.name)
    counts = count_parameters(model, heads)
    record.params = {
        "trainable": counts.trainable,
        "total": counts.total,
        "trainable_without_head": counts.trainable_without_head,
        "head_included": True,
        "head_modules": list(heads),
        "trainable_pct": round(100.0 * counts.trainable / counts.total, 4) if counts.total else None,
    }
    log(f"trainable {counts.trainable:,} of {counts.total:,} parameters "
        f"({counts.trainable_without_head:,} without the head)")
    return Built(model, generative)
