"""The nine fine-tuning methods: names, one-line summaries and their arguments.

Pure Python on purpose: the preset validator imports this at CLI start-up, so nothing
here (or in what it imports) may pull in torch, transformers or peft.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ftbench.errors import MethodError, MethodUnsupported
from ftbench.rules import Rule
from ftbench.text import did_you_mean

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "ArgSpec",
    "MethodError",
    "MethodInfo",
    "MethodUnsupported",
    "resolved_args",
    "validate_method_args",
]


@dataclass(frozen=True)
class ArgSpec:
    """One method argument.

    ``bounds`` (a `ftbench.rules.Rule`) bounds numbers and restricts strings to its choices:
    the same checker presets, specs, CLI flags and the TUI use. A ``None`` default means "pick
    per architecture" and ``None`` is then accepted as a value too. ``list`` values must hold
    strings only; ``bool`` is never accepted where a number is expected.
    """

    type: type | tuple[type, ...]
    default: Any
    help: str
    bounds: Rule | None = None


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str
    args: dict[str, ArgSpec] = field(default_factory=dict)
    uses_peft: bool = False
    quantized: bool = False


_LORA_ARGS: dict[str, ArgSpec] = {
    "r": ArgSpec(int, 8, "rank of the low-rank update", Rule("int", min=1, max=4096)),
    "alpha": ArgSpec((int, float), 16, "LoRA scaling numerator (scale = alpha / r)",
                     Rule("float", min=0, min_exclusive=True)),
    "dropout": ArgSpec(float, 0.1, "dropout on the LoRA branch input",
                       Rule("float", min=0, max=1, max_exclusive=True)),
    "target_modules": ArgSpec(
        (list, str), None,
        "module names to adapt (list of name suffixes, or a regex / 'all-linear' string); "
        "default per architecture: query,value (BERT/RoBERTa), q_lin,v_lin (DistilBERT)",
    ),
}

METHODS: dict[str, MethodInfo] = {
    "full": MethodInfo("full", "every parameter trains"),
    "head-only": MethodInfo("head-only", "backbone frozen; only the freshly initialised task head trains"),
    "last-layer": MethodInfo(
        "last-layer",
        "the last transformer block(s), anything above them (BERT pooler) and the head train",
        {"layers": ArgSpec(int, 1, "how many of the last transformer blocks train",
                           Rule("int", min=1, max=1000))},
    ),
    "lora": MethodInfo("lora", "low-rank updates (peft LoRA) on attention projections + head",
                       dict(_LORA_ARGS), uses_peft=True),
    "qlora": MethodInfo("qlora", "LoRA on a 4-bit NF4 (double-quant) backbone; head and pooler unquantized",
                        dict(_LORA_ARGS), uses_peft=True, quantized=True),
    "adapters": MethodInfo(
        "adapters",
        "bottleneck adapters (down-proj, nonlinearity, up-proj, residual) inside each block + head",
        {
            "reduction_factor": ArgSpec(int, 16, "bottleneck = hidden size // reduction_factor",
                                        Rule("int", min=1, max=65_536)),
            "bottleneck": ArgSpec(int, None, "explicit bottleneck width (overrides reduction_factor)",
                                  Rule("int", min=1, max=65_536)),
            "placement": ArgSpec(str, "ffn", "where adapters go: after the FFN output dense (Pfeiffer), "
                                 "after the attention output dense, or both (Houlsby)",
                                 Rule("str", choices=("ffn", "attention", "both"))),
            "non_linearity": ArgSpec(str, "relu", "activation inside the bottleneck",
                                     Rule("str", choices=("relu", "gelu", "tanh", "silu"))),
            "train_layer_norm": ArgSpec(bool, False, "also train the backbone LayerNorms"),
        },
    ),
    "ia3": MethodInfo(
        "ia3",
        "learned rescaling vectors (peft IA3) on keys, values and the FFN + head",
        {
            "target_modules": ArgSpec((list, str), None, "modules to rescale (names or regex); "
                                      "default per architecture"),
            "feedforward_modules": ArgSpec((list, str), None, "subset of target_modules whose input "
                                           "(not output) is scaled; default per architecture"),
        },
        uses_peft=True,
    ),
    "prefix": MethodInfo(
        "prefix",
        "trainable key/value prefixes in every attention layer (peft prefix tuning) + head",
        {
            "num_virtual_tokens": ArgSpec(int, 20, "prefix length", Rule("int", min=1, max=8192)),
            "prefix_projection": ArgSpec(bool, False, "reparametrise the prefix through a 2-layer MLP"),
            "encoder_hidden_size": ArgSpec(int, None, "hidden size of that MLP (default: model hidden size)",
                                           Rule("int", min=1, max=65_536)),
        },
        uses_peft=True,
    ),
    "bitfit": MethodInfo("bitfit", "only bias terms (incl. LayerNorm biases) and the head train"),
}

METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def _type_name(t: type | tuple[type, ...]) -> str:
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join("list of str" if x is list else x.__name__ for x in types)


def _type_ok(value: Any, t: type | tuple[type, ...]) -> bool:
    types = t if isinstance(t, tuple) else (t,)
    if isinstance(value, bool):
        return bool in types
    for x in types:
        if x is float and isinstance(value, (int, float)):
            return True
        if x is list and isinstance(value, (list, tuple)):
            return all(isinstance(v, str) for v in value)
        if x is not bool and isinstance(value, x):
            return True
    return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_method_args(method: str, args: dict[str, Any]) -> None:
    """Raise MethodError (one line, naming the key and what is allowed) if ``args`` is invalid."""
    info = METHODS.get(method)
    if info is None:
        raise MethodError(unknown_method(method))
    if not isinstance(args, dict):
        raise MethodError(f"method {method!r}: args must be a table, got {type(args).__name__}")
    allowed = ", ".join(info.args) or "none"
    for key, value in args.items():
        spec = info.args.get(key)
        if spec is None:
            raise MethodError(f"method {method!r}: unknown arg {key!r} (allowed: {allowed})")
        if value is None and spec.default is None:
            continue
        if not _type_ok(value, spec.type):
            raise MethodError(f"method {method!r}: arg {key!r} must be {_type_name(spec.type)}, "
                              f"got {type(value).__name__} {_short(value)}")
        bounds = spec.bounds
        if bounds is not None and bounds.choices is not None and value not in bounds.choices:
            raise MethodError(f"method {method!r}: arg {key!r} must be one of "
                              f"{', '.join(map(str, bounds.choices))}, got {_short(value)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise MethodError(f"method {method!r}: arg {key!r} must be a finite number, "
                                  f"got {_short(value)}")
            violated = bounds.violated_bound(value) if bounds is not None else None
            if violated is not None:
                raise MethodError(f"method {method!r}: arg {key!r} must be {violated}, "
                                  f"got {_short(value)}")
        if isinstance(value, (list, tuple)) and not value:
            raise MethodError(f"method {method!r}: arg {key!r} must not be empty")


def unknown_method(name: str) -> str:
    """The one wording of an unknown method, with the near miss when there is one."""
    return f"unknown method {name!r}{did_you_mean(name, METHOD_NAMES)} (known: {', '.join(METHOD_NAMES)})"


def resolved_args(method: str, args: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in (``None`` still means "per architecture"). ``args`` come from a
    `MethodSpec`, which validated them when it was built."""
    out = {k: s.default for k, s in METHODS[method].args.items()}
    out.update(args)
    return out
