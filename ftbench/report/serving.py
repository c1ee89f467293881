"""A run's serving cost (``record.serving``, engine/serving.py) as flat report values.

Pure (no Rich): tables, charts, the exports and the Pareto fronts read the same keys.

* ``serving.size_bytes`` and ``serving.size_mb``: what would ship, in safetensors;
* ``serving.<variant>.<figure>`` for the variants ``base``, ``unmerged`` and ``merged``:
  ``latency_ms`` and ``samples_per_s`` (classification, QA), ``ttft_ms``, ``tokens_per_s`` and
  ``batch_tokens_per_s`` (causal LM);
* ``serving.latency_ms``: the latency of what would be deployed, the merged model where it
  was measured, else the unmerged one: the batch-1 forward, or for a causal LM the time per
  generated token at batch 1 (1000 / tokens/s). ``serving.samples_per_s`` and
  ``serving.tokens_per_s`` likewise. These are the Pareto fronts' costs.
"""

from __future__ import annotations

from typing import Any

from ftbench.results.record import RunRecord
from ftbench.terms import number

VARIANTS: tuple[str, ...] = ("base", "unmerged", "merged")
FIGURES: tuple[str, ...] = ("latency_ms", "samples_per_s", "ttft_ms", "tokens_per_s",
                            "batch_tokens_per_s")
TEXT_KEYS: tuple[str, ...] = ("kind", "size_of", "size_note", "base_note", "unmerged_note",
                              "merged_note", "note")
LATENCY_KEY = "serving.latency_ms"
SIZE_KEY = "serving.size_mb"


def serving_values(record: RunRecord) -> dict[str, float]:
    """Every numeric serving figure of a run under a dotted key (empty without ``serving``)."""
    block = record.serving
    if not isinstance(block, dict):
        return {}
    values: dict[str, float] = {}
    size = number(block.get("size_bytes"))
    if size is not None:
        values["serving.size_bytes"] = size
        values[SIZE_KEY] = size / 2**20
    diff = number(block.get("merge_max_abs_diff"))
    if diff is not None:
        values["serving.merge_max_abs_diff"] = diff
    for variant in VARIANTS:
        figures = block.get(variant)
        for figure in FIGURES:
            v = number(figures.get(figure)) if isinstance(figures, dict) else None
            if v is not None:
                values[f"serving.{variant}.{figure}"] = v
    deployed = "merged" if any(k.startswith("serving.merged.") for k in values) else "unmerged"
    for figure in ("latency_ms", "samples_per_s", "tokens_per_s", "batch_tokens_per_s"):
        v = values.get(f"serving.{deployed}.{figure}")
        if v is not None:
            values[f"serving.{figure}"] = v
    per_token = values.get(f"serving.{deployed}.tokens_per_s")
    if block.get("kind") == "generate" and per_token:
        values[LATENCY_KEY] = 1000.0 / per_token
    return values


def serving_text(record: RunRecord) -> dict[str, Any]:
    """The serving words a CSV row carries (what was sized, why a variant is missing)."""
    block = record.serving
    if not isinstance(block, dict):
        return {}
    return {f"serving.{k}": block[k] for k in TEXT_KEYS if isinstance(block.get(k), str)}


# The serving table's columns: (key, header, kind, better); tables and Markdown both use them.
FORWARD_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    (SIZE_KEY, "size MB", "size", "min"),
    *((f"serving.{v}.latency_ms", f"b1 ms {v}", "ms", "min") for v in VARIANTS),
    *((f"serving.{v}.samples_per_s", f"samples/s {v}", "rate", "max") for v in VARIANTS),
)
GENERATE_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    (SIZE_KEY, "size MB", "size", "min"),
    *((f"serving.{v}.ttft_ms", f"TTFT ms {v}", "ms", "min") for v in VARIANTS),
    *((f"serving.{v}.tokens_per_s", f"b1 tok/s {v}", "rate", "max") for v in VARIANTS),
    ("serving.batch_tokens_per_s", "batch tok/s", "rate", "max"),
)


def serving_columns(task: str) -> tuple[tuple[str, str, str, str], ...]:
    return GENERATE_COLUMNS if task == "causal-lm" else FORWARD_COLUMNS


def serving_note(records: list[RunRecord], task: str) -> str:
    """How the serving table was measured, and a warning when its runs used other devices."""
    what = ("TTFT: median time to the first generated token; tok/s: greedy generation at "
            "batch 1, and at the eval batch for the deployed model (merged where measured)"
            if task == "causal-lm" else
            "b1 ms: median batch-1 forward after warm-up; samples/s at the eval batch")
    lines = [f"serving: size on disk of what ships (adapter, trainable tensors or checkpoint, "
             f"safetensors); {what}; merged = peft merge_and_unload (LoRA, IA3); "
             "- = not measured or not applicable (the reason is in the record, CSV and JSON)"]
    setups = sorted({f"{s.get('device')} {s.get('precision')}" for r in records
                     if isinstance(s := r.serving, dict) and s.get("kind")})
    if len(setups) > 1:
        lines.append(f"⚠ serving measured on different setups ({', '.join(setups)}): "
                     "not comparable")
    return "\n".join(lines)
