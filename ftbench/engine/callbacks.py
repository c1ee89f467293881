"""The TrainerCallback that turns Trainer progress into ftbench events.

It runs on the training thread, so it only reads values the Trainer has already pulled to
the host (the loss is synchronised by the Trainer at logging steps only) and hands small
events to ``emit``, which must not block.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from transformers import TrainerCallback

from ftbench.engine.events import Emit, Eval, EvalProgress, Log, Step, StepProgress

_EVAL_SKIP = {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}
PROGRESS_INTERVAL_S = 0.25  # StepProgress / EvalProgress at most this often (host clock)
RATE_WINDOW = 5      # live rates: over the last 5 logging intervals, not since step 0
@dataclass
class Progress:
    """What the callback learned; the runner builds the record from it."""

    total_steps: int = 0
    step: int = 0
    epoch: float = 0.0
    t_train_begin: float | None = None
    t_train_end: float | None = None
    eval_s: float = 0.0
    diverged_at: int | None = None
    cancelled: bool = False
    train_series: list[dict[str, Any]] = field(default_factory=list)
    eval_series: list[dict[str, Any]] = field(default_factory=list)
    last_eval: dict[str, Any] | None = None
    last_eval_step: int | None = None

    def train_elapsed(self, now: float | None = None) -> float:
        if self.t_train_begin is None:
            return 0.0
        end = self.t_train_end if self.t_train_end is not None else (now or time.perf_counter())
        return max(0.0, end - self.t_train_begin - self.eval_s)


class EventCallback(TrainerCallback):
    def __init__(
        self,
        run_id: str,
        emit: Emit,
        cancel: threading.Event,
        samples_per_step: int,
        on_begin: Callable[[int], None],
        metric_transform: Callable[[dict[str, Any]], dict[str, Any]],
        memory_probe: Callable[[], tuple[float | None, float | None]],
        token_probe: Callable[[], int | None] | None = None,
        sample_probe: Callable[[], int] | None = None,
        trained_probe: Callable[[], int | None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.emit = emit
        self.cancel = cancel
        self.samples_per_step = samples_per_step
        self.on_begin = on_begin
        self.metric_transform = metric_transform
        self.memory_probe = memory_probe
        self.token_probe = token_probe
        self.sample_probe = sample_probe
        self.trained_probe = trained_probe   # loss-bearing tokens so far (causal-lm)
        self.progress = Progress()
        self._eval_started: float | None = None
        self._last_tick = float("-inf")  # host clock of the last StepProgress / EvalProgress
        self._eval_batches = 0

    # --- lifecycle ---------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress.total_steps = int(state.max_steps)
        self.on_begin(self.progress.total_steps)
        self.progress.t_train_begin = time.perf_counter()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress.t_train_end = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress.step = int(state.global_step)
        self.progress.epoch = float(state.epoch or 0.0)
        if self.cancel.is_set():
            self.progress.cancelled = True
            control.should_training_stop = True
            control.should_evaluate = self._evaluate_on_cancel()
        now = time.perf_counter()
        step, total = self.progress.step, self.progress.total_steps
        if step == 1 or step >= total or control.should_training_stop \
                or now - self._last_tick >= PROGRESS_INTERVAL_S:
            # Host-side numbers only (step counter, clock): no device sync on the hot path.
            self._last_tick = now
            self.emit(StepProgress(self.run_id, step, total, round(self.progress.epoch, 4),
                                   self.progress.train_elapsed(now)))
        if control.should_evaluate:
            self._eval_started = now
            self._eval_batches = 0
            self.emit(EvalProgress(self.run_id, step, 0, None, 0.0))

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # DefaultFlowCallback (called before this one) asks for an epoch-end evaluation; a
        # cancelled run skips it unless the user chose "cancel and evaluate".
        if self.cancel.is_set():
            control.should_evaluate = self._evaluate_on_cancel()
        if control.should_evaluate and self._eval_started is None:
            self._eval_started = time.perf_counter()
            self._eval_batches = 0
            self.emit(EvalProgress(self.run_id, int(state.global_step), 0, None, 0.0))

    def _evaluate_on_cancel(self) -> bool:
        """Evaluate once at the cancel step, only if asked and not already evaluated there."""
        return bool(getattr(self.cancel, "evaluate", False)) \
            and self.progress.last_eval_step != self.progress.step

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._eval_batches += 1
        now = time.perf_counter()
        if self._eval_started is None:  # an evaluation not announced by on_step_end (final)
            self._eval_started = now
        if self._eval_batches > 1 and now - self._last_tick < PROGRESS_INTERVAL_S:
            return
        self._last_tick = now
        loader = kwargs.get("eval_dataloader")
        try:
            total: int | None = len(loader) if loader is not None else None
        except TypeError:
            total = None
        self.emit(EvalProgress(self.run_id, int(state.global_step), self._eval_batches, total,
                               now - self._eval_started))

    # --- logging -----------------------------------------------------------------------
    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        step = int(state.global_step)
        now = time.perf_counter()
        elapsed = self.progress.train_elapsed(now)
        samples = self.sample_probe() if self.sample_probe is not None else step * self.samples_per_step
        total = self.progress.total_steps
        lr = logs.get("learning_rate")
        tokens = self.token_probe() if self.token_probe is not None else None
        # Live rates over a moving window of logging intervals (the first one includes warm-up).
        series = self.progress.train_series
        then = series[-RATE_WINDOW] if len(series) >= RATE_WINDOW else (series[0] if series else None)
        t0, s0, k0 = (then["t"], then["samples"], then.get("tokens")) if then else (0.0, 0, 0)
        span = elapsed - t0
        samples_per_s = (samples - s0) / span if span > 0 and samples > s0 else None
        tokens_per_s = (tokens - k0) / span if tokens and k0 is not None and span > 0 else None
        eta = None
        if total >= step and samples_per_s and self.samples_per_step:
            eta = (total - step) * self.samples_per_step / samples_per_s
        point = {"step": step, "epoch": round(float(state.epoch or 0.0), 4),
                 "loss": loss if math.isfinite(loss) else None,
                 "lr": float(lr) if lr is not None else None,
                 "samples_per_s": round(samples_per_s, 2) if samples_per_s else None,
                 "tokens_per_s": round(tokens_per_s, 1) if tokens_per_s else None,
                 "t": round(elapsed, 3), "samples": samples, "tokens": tokens}
        if self.trained_probe is not None:
            point["trained_tokens"] = self.trained_probe()
        self.progress.train_series.append(point)
        allocated, rss = self.memory_probe()
        self.emit(Step(self.run_id, step, total, point["epoch"], point["loss"], point["lr"],
                       point["samples_per_s"], point["tokens_per_s"], elapsed, eta, allocated,
                       rss))
        if not math.isfinite(loss):
            self.progress.diverged_at = step
            control.should_training_stop = True
            control.should_evaluate = False
            self.emit(Log(self.run_id, "error", f"loss became {loss} at step {step}; stopping"))

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                    **kwargs: Any) -> None:
        metrics = metrics or {}
        runtime = metrics.get("eval_runtime")
        if runtime is None and self._eval_started is not None:
            runtime = time.perf_counter() - self._eval_started
        self._eval_started = None
        self._eval_batches = 0
        if self.progress.t_train_begin is not None and self.progress.t_train_end is None:
            self.progress.eval_s += float(runtime or 0.0)
        clean = self.metric_transform(
            {k.removeprefix("eval_"): v for k, v in metrics.items() if k not in _EVAL_SKIP}
        )
        step = int(state.global_step)
        point = {"step": step, "epoch": round(float(state.epoch or 0.0), 4),
                 "t": round(self.progress.train_elapsed(), 3),
                 **{k: v for k, v in clean.items() if isinstance(v, (int, float))}}
        self.progress.eval_series.append(point)
        self.progress.last_eval = clean
        self.progress.last_eval_step = step
        self.emit(Eval(self.run_id, step, point["epoch"], clean, float(runtime or 0.0)))
