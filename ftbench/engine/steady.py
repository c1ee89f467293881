"""Steady-state throughput: the figures after warm-up (and compile), beside the whole-run ones."""

from __future__ import annotations

import math
from typing import Any

# The record's steady-state timing keys (null when the run was too short to have a window).
STEADY_KEYS = ("warmup_steps", "steady_steps", "steady_s", "steady_samples_per_s",
               "steady_tokens_per_s", "steady_tflops", "steady_mfu", "steady_trained_tokens_per_s")
MIN_WARMUP_STEPS = 10


def warmup_steps(total_steps: int, compiled: bool = False) -> int:
    """Steps left out of the steady-state figures: 10 % of the run, at least 10 steps (20 when
    compiled, whose first steps include compiling and recompiling for new shapes)."""
    floor = 2 * MIN_WARMUP_STEPS if compiled else MIN_WARMUP_STEPS
    return max(floor, math.ceil(0.1 * total_steps))


def steady_window(points: list[dict[str, Any]], warmup: int) -> dict[str, Any] | None:
    """Throughput between the first logging point at or after step ``warmup`` and the last one.

    ``points`` are train-series points with cumulative ``t`` (seconds, evaluation excluded),
    ``samples`` and ``tokens``; each was taken right after the Trainer synced for the loss, so
    the device had finished that step. None when fewer than two points lie past the warm-up.
    """
    after = [p for p in points if p["step"] >= warmup and p.get("samples") is not None]
    if len(after) < 2:
        return None
    first, last = after[0], after[-1]
    seconds = last["t"] - first["t"]
    if seconds <= 0:
        return None
    samples = last["samples"] - first["samples"]
    tokens = (last["tokens"] - first["tokens"]
              if last.get("tokens") is not None and first.get("tokens") is not None else None)
    # causal-lm: the loss-bearing (response) tokens, where the points carry them
    trained = (last["trained_tokens"] - first["trained_tokens"]
               if last.get("trained_tokens") is not None
               and first.get("trained_tokens") is not None else None)
    return {"warmup_steps": first["step"], "steady_steps": last["step"] - first["step"],
            "steady_s": round(seconds, 3), "steady_samples": samples, "steady_tokens": tokens,
            "steady_samples_per_s": round(samples / seconds, 2),
            "steady_tokens_per_s": round(tokens / seconds, 1) if tokens else None,
            "steady_trained_tokens_per_s": round(trained / seconds, 1) if trained else None}
