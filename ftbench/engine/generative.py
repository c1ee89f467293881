"""The engine's part of a causal-LM run: base vs tuned, measured the same way.

`GenerativeRun` wraps the task's `SFTEvaluator` for one run:

* `before_method(model)`: right after the model loads, before the method touches it, the base
  model is measured (held-out loss and perplexity, generation accuracy, general-text loss) and
  stored in ``record.baseline``; for QLoRA that is the 4-bit base the adapters train on, and
  the record says so. Whether ``lm_head`` is tied to the input embeddings is noted.
* `after_method(model)`: how the method handled the tie (``model_info.tied_embeddings``).
* `after_training(model)`: the tuned model measured by the same function (only for a run that
  completed); its figures join ``record.metrics`` with ``forgetting`` = tuned minus base
  general-text loss, and ``record.samples`` pairs a few base and tuned generations.

None of this counts as training time: the base measurement is ``timing.base_eval_s``, the
tuned one is part of ``timing.eval_s``.

The base measurement depends only on the model's weights, the eval data and settings, the
precision and the device, not on the method, so one process (a preset's runs, a TUI session)
measures it once and the next run with the same inputs reuses it: that record's
``baseline.measured_in`` names the run that measured it and its ``timing.base_eval_s`` is null.
QLoRA's 4-bit base is a different model and is measured on its own.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftbench.engine.events import Eval, EvalProgress
from ftbench.methods.lm import is_tied, untie_note
from ftbench.methods.peft_methods import keep_4bit_trainable
from ftbench.results.record import RunRecord

# (model files, precision, device, 4-bit, eval inputs) -> (run id, measurement); a few entries
_BASE_CACHE: dict[str, tuple[str, Any]] = {}
_BASE_CACHE_SIZE = 4


class GenerativeRun:
    def __init__(self, evaluator: Any, record: RunRecord, log: Callable[..., None],
                 precision: str, device: str, quantized: bool, model_path: str = "",
                 emit: Callable[[Any], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> None:
        self.evaluator = evaluator
        self.record = record
        self.log = log
        self.precision = precision
        self.device = device
        self.quantized = quantized
        self.model_path = model_path
        self.emit = emit or (lambda event: None)
        self.cancelled = cancel or (lambda: False)
        self.base: Any = None
        self.tuned: Any = None
        self.tuned_at: tuple[int, float] = (0, 0.0)
        self.tied = False

    def before_method(self, model: Any) -> None:
        self.tied = is_tied(model)
        if getattr(model, "is_loaded_in_4bit", False):
            # before its first eval-mode forward: bitsandbytes' CPU repacking would leave the
            # QLoRA adapters untrainable (methods/peft_methods.py)
            keep_4bit_trainable(model)
        if self.device == "cuda" and not getattr(model, "is_loaded_in_4bit", False):
            model.to("cuda")   # where the Trainer would put it; 4-bit models are already there
        what = "the 4-bit quantized base model (what QLoRA trains on)" if self.quantized \
            else "the base model"
        key = self._cache_key()
        cached = _BASE_CACHE.get(key) if key else None
        if cached is not None:
            measured_in, self.base = cached
            self.log(f"{what}: measured by run {measured_in} in this process with the same "
                     "weights, data, settings and precision; reused")
            self.record.timing["base_eval_s"] = None
        else:
            self.log(f"measuring {what} before training")
            self.base = self._measure(model, 0)
            measured_in = self.record.run_id
            self.record.timing["base_eval_s"] = round(self.base.seconds, 3)
            if key:
                while len(_BASE_CACHE) >= _BASE_CACHE_SIZE:
                    _BASE_CACHE.pop(next(iter(_BASE_CACHE)))
                _BASE_CACHE[key] = (measured_in, self.base)
        baseline = dict(self.base.metrics)
        baseline["measured_on"] = ("4-bit NF4 quantized base" if self.quantized
                                   else "base model as loaded")
        baseline["measured_in"] = measured_in
        self.record.baseline = baseline
        self.record.samples = self.evaluator.samples_record(self.base.generations, None)
        self.log("base: " + summary(self.base.metrics) + f" ({self.base.seconds:.1f}s)")
        spent = float(self.base.seconds) if measured_in == self.record.run_id else 0.0
        self.emit(Eval(self.record.run_id, 0, 0.0, self.point(self.base.metrics, "base"), spent))

    def _measure(self, model: Any, step: int) -> Any:
        """The evaluator's measurement, reported as an evaluation at ``step`` (progress by
        batch through `EvalProgress`; the caller emits the closing `Eval`)."""
        started = time.perf_counter()
        self.emit(EvalProgress(self.record.run_id, step, 0, self.evaluator.batches(), 0.0))

        def tick(done: int, total: int) -> None:
            if self.cancelled():   # a cancel stops the measurement between batches
                raise KeyboardInterrupt
            self.emit(EvalProgress(self.record.run_id, step, done, total,
                                   time.perf_counter() - started))

        try:
            return self.evaluator.measure(model, self.precision, self.log, tick)
        finally:
            release_heap()

    @staticmethod
    def point(metrics: dict[str, Any], stage: str) -> dict[str, Any]:
        """An evaluation's figures as the live view and ``series.eval`` hold them."""
        return {**{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                "stage": stage}

    def _cache_key(self) -> str | None:
        """What the base measurement depends on; None when the weights cannot be identified
        (a hub id: its files live in the hub cache)."""
        folder = Path(self.model_path) if self.model_path else None
        if folder is None or not folder.is_dir():
            return None
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                       for p in folder.iterdir() if p.is_file())
        parts = {"model": str(folder.resolve()), "files": files, "precision": self.precision,
                 "device": self.device, "quantized": self.quantized,
                 "eval": self.evaluator.fingerprint()}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def after_method(self, model: Any, method: str) -> None:
        untied = self.tied and not is_tied(model)
        self.record.model_info["tied_embeddings"] = untie_note(method, self.tied, untied)

    def after_training(self, model: Any, step: int, epoch: float) -> float:
        """Measure the tuned model at ``step``; returns the seconds it took."""
        self.log("measuring the tuned model")
        self.tuned = self._measure(model, step)
        self.tuned_at = (step, epoch)
        self.record.samples = self.evaluator.samples_record(
            self.base.generations if self.base else [], self.tuned.generations)
        self.log("tuned: " + summary(self.tuned.metrics) + f" ({self.tuned.seconds:.1f}s)")
        self.emit(Eval(self.record.run_id, step, epoch, self.point(self.metrics(), "tuned"),
                       float(self.tuned.seconds)))
        return float(self.tuned.seconds)

    def series(self, evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``series.eval``: the base point at step 0, the Trainer's evaluations, the tuned point."""
        out = []
        if self.base is not None:
            out.append({"step": 0, "epoch": 0.0, "t": 0.0, **self.point(self.base.metrics, "base")})
        out.extend(evals)
        if self.tuned is not None:
            step, epoch = self.tuned_at
            t = evals[-1]["t"] if evals else None
            out.append({"step": step, "epoch": epoch, "t": t,
                        **self.point(self.metrics(), "tuned")})
        return out

    def metrics(self) -> dict[str, Any]:
        """The tuned figures for ``record.metrics`` (empty before `after_training`)."""
        if self.tuned is None:
            return {}
        out = dict(self.tuned.metrics)
        before = (self.base.metrics if self.base else {}).get("general_loss")
        after = out.get("general_loss")
        out["forgetting"] = (after - before) if isinstance(after, float) and \
            isinstance(before, float) else None
        return out


def release_heap() -> None:
    """Hand the memory a measurement freed back to the OS (glibc keeps freed blocks in the
    heap, so the process's RSS would stay at the measurement's peak through training and be
    read as training's). Linux with glibc only; elsewhere a no-op."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def summary(metrics: dict[str, Any]) -> str:
    parts = []
    for key, label, fmt in (("exact_match", "exact match", "{:.3f}"),
                            ("perplexity", "perplexity", "{:.3f}"),
                            ("response_loss", "response loss", "{:.4f}"),
                            ("general_loss", "general-text loss", "{:.4f}")):
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {fmt.format(value)}")
    return ", ".join(parts) or "no figures"
