"""The engine's cheap progress events and the two ways to cancel, on a tiny CPU model.

StepProgress after optimizer steps (host clock only), EvalProgress while evaluating, and a
cancel that stops at once (no evaluation) unless the user chose "cancel and evaluate".
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from ftbench.engine.events import CancelRequest, Eval, EvalProgress, Step, StepProgress
from ftbench.engine.runner import run
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams


def spec(steps: int | None = None, eval_steps: int | None = None, logging_steps: int = 3) -> RunSpec:
    """96 samples, batch 16: one epoch is 6 steps; evaluation per epoch unless eval_steps."""
    return RunSpec(
        preset="test", model="tiny-bert", task="classification",
        data=DataSpec(name="synthetic-sentiment", train_size=96, eval_size=32),
        train=TrainParams(epochs=1.0 if steps is None else None, max_steps=steps, batch_size=16,
                          eval_batch_size=8, learning_rate=1e-3, max_length=32,
                          eval_steps=eval_steps, logging_steps=logging_steps),
        method=MethodSpec(name="head-only"), seed=3)


def test_step_progress_between_logging_steps_and_eval_as_its_own_phase(tmp_path: Path) -> None:
    events: list[object] = []
    def slow(step: int) -> None:
        time.sleep(0.3)  # slower than the 0.25 s throttle

    finished = run(spec(), events.append, runs_dir=tmp_path, on_step=slow)
    assert finished.record.status == "completed", finished.record.error
    progress = [e for e in events if isinstance(e, StepProgress)]
    # every optimizer step, though the loss is logged only every third step
    assert [p.step for p in progress] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events if isinstance(e, Step)] == [3, 6]
    assert all(p.total_steps == 6 for p in progress)
    assert [round(p.elapsed_s, 1) >= 0.3 * p.step - 0.05 for p in progress] == [True] * 6
    # the epoch-end evaluation: announced (done 0), counted in batches (32 / 8 = 4), then Eval
    tail = events[events.index(progress[-1]):]
    kinds = [type(e).__name__ for e in tail if isinstance(e, (EvalProgress, Eval, StepProgress))]
    assert kinds[:3] == ["StepProgress", "EvalProgress", "EvalProgress"] and kinds[-1] == "Eval"
    evals = [e for e in tail if isinstance(e, EvalProgress)]
    assert evals[0].done == 0 and evals[0].total is None
    assert evals[1].done == 1 and evals[1].total == 4 and all(e.step == 6 for e in evals)


def test_step_progress_is_throttled_by_the_host_clock(tmp_path: Path) -> None:
    events: list[object] = []
    run(spec(steps=12, logging_steps=12), events.append, runs_dir=tmp_path)
    steps = [e.step for e in events if isinstance(e, StepProgress)]
    assert steps[0] == 1 and steps[-1] == 12  # always the first and the last step
    assert steps == sorted(set(steps))


def _cancel_at(cancel: threading.Event, step: int, evaluate: bool) -> Callable[[int], None]:
    def hook(n: int) -> None:
        if n == step:
            if isinstance(cancel, CancelRequest):
                cancel.request(evaluate=evaluate)
            else:
                cancel.set()
    return hook


def test_cancel_stops_without_the_epoch_end_evaluation(tmp_path: Path) -> None:
    """Per-epoch evaluation: Trainer's epoch end asked for an evaluation after a cancel."""
    for cancel in (threading.Event(), CancelRequest()):
        events: list[object] = []
        finished = run(spec(), events.append, cancel, runs_dir=tmp_path,
                       on_step=_cancel_at(cancel, 2, evaluate=False))
        record = finished.record
        assert record.status == "cancelled" and record.timing["steps"] == 2
        assert not [e for e in events if isinstance(e, (Eval, EvalProgress))]
        assert record.metrics == {} and record.series["eval"] == []
        assert record.timing["eval_s"] == 0


def test_cancel_and_evaluate_evaluates_once_at_the_cancel_step(tmp_path: Path) -> None:
    for eval_steps in (None, 5):  # per-epoch evaluation, and per-step (not due at step 2)
        cancel = CancelRequest()
        events: list[object] = []
        finished = run(spec(eval_steps=eval_steps), events.append, cancel, runs_dir=tmp_path,
                       on_step=_cancel_at(cancel, 2, evaluate=True))
        record = finished.record
        assert record.status == "cancelled" and record.timing["steps"] == 2
        assert [e.step for e in events if isinstance(e, Eval)] == [2]
        assert record.metrics["at_step"] == 2 and 0 <= record.metrics["accuracy"] <= 1
        assert record.timing["eval_s"] > 0
