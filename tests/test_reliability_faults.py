"""Reliability: faults injected during training through the engine's own collaborators
(`run`'s ``on_step``, ``on_batch``, ``saver``, ``gpu_sampler``, ``wrap_model``; issue 6).

Out-of-memory (CUDA, CPU), exceptions in data loading, NaN/inf loss, interrupts, an unwritable
runs folder or a full disk at save time, NVML failing mid-run, a front end that raises. Every
case must end with the right status saved (or, if no folder takes it, a message saying so and
the record in the result), one line of error, and no partial file in runs/.

Tiny random-init BERT, 2-3 steps, one CPU thread: about a second per case.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import pytest
import torch
from faults import raise_after_build, scale_loss

from ftbench.engine.events import GpuSample, Log, RunFinished, Step
from ftbench.engine.runner import run
from ftbench.results import store
from ftbench.results.store import StoreError, save_record
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

CATEGORY = "training faults"


def spec(steps: int = 3, method: str = "full", **data: Any) -> RunSpec:
    return RunSpec(
        preset="faults",
        model="tiny-bert",
        task="classification",
        data=DataSpec(**{"name": "synthetic-sentiment", "train_size": 48, "eval_size": 16, **data}),
        train=TrainParams(epochs=None, max_steps=steps, batch_size=16, learning_rate=1e-3,
                          max_length=24, logging_steps=1),
        method=MethodSpec(name=method),
        seed=3,
    )


pytestmark = pytest.mark.usefixtures("quick_cpu_runs")  # tests/reliability_tally.py


@pytest.fixture
def fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runner's fallback folder (<tempdir>/ftbench-unsaved), kept inside this test."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp / "ftbench-unsaved"


class Events(list):
    def __call__(self, event: Any) -> None:
        self.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self if isinstance(e, kind)]


def attempt(tally: Any, runs: Path, run_spec: RunSpec | None = None,
            cancel: threading.Event | None = None, emit: Callable[[Any], None] | None = None,
            **engine: Any) -> RunFinished:
    """One run with the engine's collaborators ``engine`` (fault injection) replaced."""
    events = Events()
    with tally.case(CATEGORY):
        finished = run(run_spec or spec(), emit or events, cancel, runs_dir=runs, **engine)
    record = finished.record
    assert record.error is None or "\n" not in record.error
    assert record.finished_at is not None
    if emit is None:
        assert events and isinstance(events[-1], RunFinished) and events[-1] is finished
    if finished.save_error is None:
        assert finished.path == str(runs / f"{record.run_id}.json")
        tally.check_saved(CATEGORY, runs, [record])
    else:
        tally.check_no_partial(CATEGORY, runs)
    return finished


def at_step(n: int, exc: BaseException) -> Callable[[int], None]:
    def hook(step: int) -> None:
        if step == n:
            raise exc
    return hook


# --- out of memory --------------------------------------------------------------------------

OOMS = {
    "cuda": torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; "
                                        "79.15 GiB total capacity; 77.9 GiB already allocated)"),
    "cpu-memoryerror": MemoryError(),
    "cpu-allocator": RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                                  "not enough memory: you tried to allocate 1073741824 bytes."),
    "mps": RuntimeError("MPS backend out of memory (MPS allocated: 9.06 GB, other allocations: "
                        "384 KB, max allowed: 9.07 GB)."),
}


@pytest.mark.parametrize("kind", list(OOMS))
def test_out_of_memory_mid_training_is_a_failed_record(tally: Any, tmp_path: Path, kind: str) -> None:
    finished = attempt(tally, tmp_path / "runs", on_step=at_step(2, OOMS[kind]))
    record = finished.record
    assert record.status == "failed"
    assert record.error.startswith("out of memory:") and "batch_size" in record.error
    assert record.timing["steps"] == 1 and [p["step"] for p in record.series["train"]] == [1]
    assert record.params["trainable"]  # what was measured before the fault is kept


def test_out_of_memory_after_the_model_is_built(tally: Any, tmp_path: Path) -> None:
    record = attempt(tally, tmp_path / "runs", wrap_model=raise_after_build(OOMS["cuda"])).record
    assert record.status == "failed" and record.error.startswith("out of memory:")
    assert record.params["total"] and record.series["train"] == []


def test_out_of_memory_during_evaluation(tally: Any, tmp_path: Path) -> None:
    def on_batch(n: int) -> None:  # batches 1-3 train; the 4th is the first evaluation batch
        if n == 4:
            raise OOMS["cuda"]

    record = attempt(tally, tmp_path / "runs", on_batch=on_batch).record
    assert record.status == "failed" and record.error.startswith("out of memory:")
    assert record.timing["steps"] == 3 and len(record.series["train"]) == 3


# --- data loading ---------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [OSError(errno.EIO, "Input/output error"),
                                 ValueError("could not decode example 17"),
                                 UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")],
                         ids=["eio", "value", "unicode"])
def test_exception_in_data_loading(tally: Any, tmp_path: Path, exc: BaseException) -> None:
    def on_batch(n: int) -> None:
        if n == 3:
            raise exc

    record = attempt(tally, tmp_path / "runs", on_batch=on_batch).record
    assert record.status == "failed"
    assert record.error.startswith(type(exc).__name__)
    # the loader works a batch ahead, so the third batch fails during step 1 or 2
    assert 0 < record.timing["steps"] < 3 and record.series["train"]


DATA_FILES: dict[str, bytes] = {
    "junk.csv": bytes(range(256)) * 8,
    "no-label.csv": b"text,stars\ngreat,5\nawful,1\n",
    "empty.csv": b"",
    "one-class.csv": b"text,label\n" + b"fine,pos\n" * 20,
    "broken.json": b'[{"text": "a", "label": 1}, {"text": ',
    "not-parquet.parquet": b"PAR1 this is not parquet",
}


@pytest.mark.parametrize("name", list(DATA_FILES))
def test_bad_data_files_fail_cleanly(tally: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(DATA_FILES[name])
    run_spec = replace(spec(), data=DataSpec(name="file", path=str(path)))
    record = attempt(tally, tmp_path / "runs", run_spec=run_spec).record
    assert record.status == "failed" and record.error
    assert str(path) in record.error or "label" in record.error


# --- divergence and interrupts --------------------------------------------------------------

@pytest.mark.parametrize("factor", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_loss_is_diverged(tally: Any, tmp_path: Path, factor: float) -> None:
    finished = attempt(tally, tmp_path / "runs", wrap_model=scale_loss(factor))
    record = finished.record
    assert record.status == "diverged" and "step 1" in record.error
    assert record.series["train"][0]["loss"] is None  # NaN is not JSON: stored as null


def test_keyboard_interrupt_mid_step_is_cancelled(tally: Any, tmp_path: Path) -> None:
    record = attempt(tally, tmp_path / "runs", on_step=at_step(2, KeyboardInterrupt())).record
    assert record.status == "cancelled" and record.error == "cancelled at step 1 of 3"


def test_cancel_from_a_front_end_is_cancelled(tally: Any, tmp_path: Path) -> None:
    cancel = threading.Event()

    def hook(step: int) -> None:
        if step == 2:
            cancel.set()

    record = attempt(tally, tmp_path / "runs", on_step=hook, cancel=cancel).record
    assert record.status == "cancelled" and record.timing["steps"] == 2


def test_cancel_before_training_starts(tally: Any, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    record = attempt(tally, tmp_path / "runs", cancel=cancel).record
    assert record.status == "cancelled" and record.error == "cancelled before training started"


def test_system_exit_is_saved_then_let_through(tally: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tally.add(CATEGORY)
    with pytest.raises(SystemExit):
        run(spec(), runs_dir=runs, on_step=at_step(2, SystemExit(3)))
    [path] = list(runs.iterdir())
    record = store.load_file(path)
    assert record.status == "failed" and record.error == "SystemExit: 3"
    tally.check_no_partial(CATEGORY, runs)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ failed too")


@pytest.mark.parametrize("exc", [RuntimeError("first line\nTraceback (most recent call last):\n  x"),
                                 RuntimeError(""), Unprintable(), RuntimeError("é" * 10_000)],
                         ids=["multiline", "empty", "unprintable", "huge"])
def test_odd_exceptions_still_give_one_line(tally: Any, tmp_path: Path, exc: BaseException) -> None:
    record = attempt(tally, tmp_path / "runs", on_step=at_step(1, exc)).record
    assert record.status == "failed" and record.error.startswith(type(exc).__name__)


# --- saving: unwritable folder, full disk ---------------------------------------------------

def test_unwritable_runs_folder_falls_back_and_says_where(tally: Any, tmp_path: Path,
                                                          fallback: Path) -> None:
    def refuse(record: Any, folder: Any) -> Path:
        raise StoreError(f"cannot write to runs folder {folder}: Permission denied")

    runs = tmp_path / "runs"
    finished = attempt(tally, runs, saver=refuse)
    assert finished.record.status == "completed"
    assert finished.path == str(fallback / f"{finished.record.run_id}.json")
    assert "Permission denied" in finished.save_error and str(fallback) in finished.save_error
    assert not runs.exists()
    tally.check_saved(CATEGORY, fallback, [finished.record])


class FullDisk:
    """The real `save_record`, with the disk filling up at one point of the write."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __call__(self, record: Any, folder: Any) -> Path:
        full = OSError(errno.ENOSPC, "No space left on device")
        if self.where == "fsync":
            with mock.patch.object(store.os, "fsync", side_effect=full):
                return save_record(record, folder)
        if self.where == "publish":
            with mock.patch.object(store.os, "link", side_effect=full), \
                    mock.patch.object(store.os, "replace", side_effect=full):
                return save_record(record, folder)
        real_fdopen = os.fdopen

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            fh = real_fdopen(fd, *args, **kwargs)
            real_write = fh.write

            def write(data: str) -> int:
                real_write(data[: len(data) // 2])  # half the record reaches the disk
                raise full
            fh.write = write
            return fh

        with mock.patch.object(store.os, "fdopen", side_effect=fdopen):
            return save_record(record, folder)


@pytest.mark.parametrize("where", ["write", "fsync", "publish"])
def test_full_disk_at_save_leaves_no_partial_file(tally: Any, tmp_path: Path, fallback: Path,
                                                  where: str) -> None:
    runs = tmp_path / "runs"
    finished = attempt(tally, runs, saver=FullDisk(where), run_spec=spec(steps=2))
    assert "No space left on device" in finished.save_error
    assert list(runs.iterdir()) == []  # the half-written temporary file was removed
    tally.check_saved(CATEGORY, fallback, [finished.record])


def test_nowhere_to_save_says_so_and_keeps_the_record(tally: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the temp folder should be")

    def refuse(record: Any, folder: Any) -> Path:
        # the fallback folder (<tempdir>/ftbench-unsaved) cannot be created either
        monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
        raise OSError(errno.EROFS, "Read-only file system")

    events = Events()
    runs = tmp_path / "runs"
    with tally.case(CATEGORY):
        finished = run(spec(steps=2), events, runs_dir=runs, saver=refuse)
    assert finished.path is None and finished.record.status == "completed"
    assert "was not saved" in finished.save_error and "Read-only" in finished.save_error
    assert any(isinstance(e, Log) and e.level == "error" and "not saved" in e.message for e in events)
    assert finished.record.metrics.get("accuracy") is not None  # the result is all there
    tally.check_no_partial(CATEGORY, runs)


# --- NVML failing mid-run (a simulated GPU) -------------------------------------------------

class FlakyGpu:
    """Stands in for NVML: answers until ``broken`` is set, then raises like pynvml does."""

    def __init__(self) -> None:
        self.calls = 0
        self.broken = threading.Event()

    def __call__(self, sample: Any) -> None:
        self.calls += 1
        if self.broken.is_set():
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST: GPU is lost")
        sample.gpu_used_mb, sample.gpu_total_mb, sample.gpu_util = 1000.0 + self.calls, 80_000.0, 50.0


def test_nvml_failing_mid_run_keeps_training(tally: Any, tmp_path: Path) -> None:
    gpu = FlakyGpu()

    def on_step(step: int) -> None:
        if step == 2:
            gpu.broken.set()
            time.sleep(0.7)  # the 0.5 s sampler fails while training goes on

    events = Events()
    runs = tmp_path / "runs"
    with tally.case(CATEGORY):
        finished = run(spec(), events, runs_dir=runs, on_step=on_step, gpu_sampler=gpu)
    record = finished.record
    assert record.status == "completed" and record.timing["steps"] == 3
    assert record.memory["nvml_peak_used_mb"] >= 1001.0 and record.series["gpu"]
    assert "GPU is lost" in record.environment["nvml_error"]
    failed_at = float(record.environment["nvml_error"].split("t=")[1].split("s")[0])
    assert failed_at < record.timing["total_s"]  # it failed during the run, not at the end
    assert any(isinstance(e, Log) and e.level == "warning" and "NVML failed" in e.message
               for e in events)
    assert events.of(GpuSample)
    tally.check_saved(CATEGORY, runs, [record])


def test_nvml_failing_from_the_start(tally: Any, tmp_path: Path) -> None:
    gpu = FlakyGpu()
    gpu.broken.set()
    record = attempt(tally, tmp_path / "runs", gpu_sampler=gpu, run_spec=spec(steps=2)).record
    assert record.status == "completed" and record.series["gpu"] == []
    assert record.memory["nvml_peak_used_mb"] is None and "GPU is lost" in record.environment["nvml_error"]


def test_nvml_library_missing(tally: Any, tmp_path: Path) -> None:
    def no_library(sample: Any) -> None:  # a GPU whose NVML library cannot be loaded
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    record = attempt(tally, tmp_path / "runs", gpu_sampler=no_library, run_spec=spec(steps=2)).record
    assert record.status == "completed" and "libnvidia-ml" in record.environment["nvml_error"]


# --- front ends that fail -------------------------------------------------------------------

def test_front_end_raising_on_steps_still_saves(tally: Any, tmp_path: Path) -> None:
    def emit(event: Any) -> None:
        if isinstance(event, Step):
            raise RuntimeError("widget not mounted")

    record = attempt(tally, tmp_path / "runs", emit=emit).record
    assert record.status == "failed" and "widget not mounted" in record.error


def test_closed_pipe_on_every_event_still_saves(tally: Any, tmp_path: Path) -> None:
    def emit(event: Any) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    record = attempt(tally, tmp_path / "runs", emit=emit).record
    assert record.status == "failed" and "Broken pipe" in record.error


def test_failure_while_finishing_measurements(tally: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ftbench.engine import telemetry

    real_stop = telemetry.Telemetry.stop

    def stop(self: Any) -> None:
        real_stop(self)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(telemetry.Telemetry, "stop", stop)
    record = attempt(tally, tmp_path / "runs", run_spec=spec(steps=2)).record
    assert record.status == "completed"
    assert record.error.startswith("measurements incomplete: RuntimeError: CUDA error")
