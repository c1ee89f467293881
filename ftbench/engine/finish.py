"""Measurements into the record: memory peaks and the GPU series from telemetry, timing and
throughput (whole run and steady state) from the training progress, model FLOPs and MFU
(`ftbench.engine.flops`), and the last evaluation's metrics."""

from __future__ import annotations

import math
from typing import Any, Callable

from ftbench.engine.flops import count_training_flops, peak_tflops
from ftbench.engine.steady import STEADY_KEYS, steady_window, warmup_steps
from ftbench.results.record import RunRecord


def round_or_none(value: float | None, digits: int = 1) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def record_telemetry(record: RunRecord, telemetry: Any, log: Callable[[str, str], None]) -> None:
    """Stop the sampler; its peaks, GPU series and any NVML failure go into the record."""
    telemetry.stop()
    record.memory["process_peak_rss_mb"] = round_or_none(telemetry.peak_rss_mb)
    record.memory["nvml_peak_used_mb"] = round_or_none(telemetry.peak_gpu_used_mb)
    record.series["gpu"] = telemetry.gpu_series
    if telemetry.nvml_error:
        log(telemetry.nvml_error, "warning")
        record.environment["nvml_error"] = telemetry.nvml_error


def record_timing(record: RunRecord, progress: Any, totals: tuple[int, int, int],
                  eval_s: float, compiled: bool, first_step_s: float | None) -> dict[str, Any] | None:
    """Train/eval time, counts and rates over the whole run and in steady state; returns the
    steady-state window (None when the run was too short to have one)."""
    samples, tokens, trained = totals
    train_s = progress.train_elapsed()
    timing = record.timing
    timing.update({
        "train_s": round_or_none(train_s, 3),
        "eval_s": round_or_none(progress.eval_s + eval_s, 3),
        "steps": progress.step,
        "total_steps": progress.total_steps,
        "epochs": round(progress.epoch, 4),
        "train_samples": samples,
        "train_tokens": tokens,
        "samples_per_s": round_or_none(samples / train_s, 2) if train_s > 0 and samples else None,
        "tokens_per_s": round_or_none(tokens / train_s, 1) if train_s > 0 and tokens else None,
        "trained_tokens": trained or None,
        "trained_tokens_per_s": round_or_none(trained / train_s, 1) if train_s > 0 and trained else None,
    })
    steady = steady_window(progress.train_series, warmup_steps(progress.total_steps, compiled))
    timing.update({key: None for key in STEADY_KEYS})
    if steady is not None:
        timing.update({k: steady[k] for k in STEADY_KEYS if k in steady})
    timing["first_step_s"] = round_or_none(first_step_s, 3)
    timing["compile_s"] = None
    if compiled and first_step_s is not None and steady and steady["steady_steps"]:
        # step 1 compiles; what it took beyond a steady step is the compile's cost
        per_step = steady["steady_s"] / steady["steady_steps"]
        timing["compile_s"] = round_or_none(max(0.0, first_step_s - per_step), 3)
    return steady


def record_flops(record: RunRecord, model: Any, samples: int, tokens: int, train_s: float,
                 precision: str, steady: dict[str, Any] | None,
                 log: Callable[[str, str], None]) -> None:
    """Model FLOPs, achieved TFLOP/s and (on a known GPU) MFU, over the whole run and in
    steady state; see engine/flops.py."""
    if model is None or not samples or not tokens or train_s <= 0:
        return
    try:
        count = count_training_flops(model, tokens / samples)
    except Exception as exc:  # an exotic model must not cost the run its record
        log(f"FLOP count unavailable: {exc}", "warning")
        return
    total = count.total(tokens)
    achieved = total / train_s / 1e12
    peak, source = peak_tflops(record.environment.get("device_name"), precision)
    record.timing.update({
        "train_flops": float(f"{total:.4g}"),
        "achieved_tflops": float(f"{achieved:.4g}"),
        "mfu": round(achieved / peak, 4) if peak else None,
    })
    if steady and steady.get("steady_tokens"):
        rate = count.total(steady["steady_tokens"]) / steady["steady_s"] / 1e12
        record.timing["steady_tflops"] = float(f"{rate:.4g}")
        record.timing["steady_mfu"] = round(rate / peak, 4) if peak else None
    record.environment["peak_tflops"] = peak
    record.environment["peak_tflops_source"] = source
