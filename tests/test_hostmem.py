"""A CPU run's host memory (ftbench.engine.hostmem): RSS growth from a trimmed baseline to the
kernel's high-water mark means the same for every run of a process, not only the first."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from pathlib import Path

import pytest

from ftbench.engine import hostmem

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and glibc")

CHUNK = 64 * 1024  # below glibc's mmap threshold: served from the heap, kept there when freed
MB = 1024 * 1024


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    return libc


def _touch(libc: ctypes.CDLL, megabytes: int) -> list[int]:
    chunks = [libc.malloc(CHUNK) for _ in range(megabytes * MB // CHUNK)]
    for chunk in chunks:
        libc.memset(chunk, 1, CHUNK)
    return chunks


def test_a_run_after_one_that_freed_memory_still_measures_its_growth() -> None:
    """The quickstart's LoRA run once measured 27 MB after full fine-tuning freed 1 GB: glibc
    kept that heap resident and the next run reused it. The window returns it first."""
    libc = _libc()
    earlier = _touch(libc, 160)  # an earlier "run"...
    pin = libc.malloc(CHUNK)     # (something allocated after it keeps the heap from shrinking)
    for chunk in earlier:        # ...frees its memory: glibc keeps it in the heap, resident
        libc.free(chunk)
    window = hostmem.open_window()
    assert window.how == hostmem.KERNEL and window.problem is None and window.baseline_mb
    ours = _touch(libc, 96)      # this "run" needs 96 MB
    peak = hostmem.window_peak()
    assert peak is not None
    grown = peak - window.baseline_mb
    assert 80 <= grown <= 130, grown  # measured, not hidden by the heap reused
    assert hostmem.window_peak() is None  # read once: the window is closed
    for chunk in [*ours, pin]:
        libc.free(chunk)


def test_the_peak_is_the_kernels_since_the_baseline_not_before() -> None:
    libc = _libc()
    big = _touch(libc, 120)
    for chunk in big:
        libc.free(chunk)
    window = hostmem.open_window()  # the high-water mark restarts here
    peak = hostmem.window_peak()
    assert peak is not None and peak - window.baseline_mb < 40


def test_a_window_that_cannot_reset_the_high_water_mark_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(hostmem, "CLEAR_REFS", tmp_path / "no" / "clear_refs")
    window = hostmem.open_window()
    assert window.how == "sampled every 0.5 s"
    assert window.problem is not None and "could not be reset" in window.problem
    assert hostmem.window_peak() is None  # nothing exact to add to the samples


def test_two_cpu_runs_in_one_process_are_both_measured(tmp_path: Path) -> None:
    from ftbench.engine.runner import run
    from ftbench.plan.judge import prediction_error
    from ftbench.plan.record import prediction_for_record
    from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

    def spec(method: str) -> RunSpec:
        return RunSpec(preset="t", model="tiny-bert", task="classification",
                       data=DataSpec(name="synthetic-sentiment", train_size=32, eval_size=8),
                       train=TrainParams(batch_size=8, max_length=32, max_steps=2, logging_steps=1),
                       method=MethodSpec(method))

    first, second = (run(spec(m), runs_dir=tmp_path, predict=prediction_for_record).record
                     for m in ("full", "lora"))
    for record, before in ((first, None), (second, 1)):
        window = record.prediction["rss_window"]
        assert window["how"] == "kernel high-water mark" and window["problem"] is None
        if before is not None:
            assert window["runs_before"] >= before
        judged = prediction_error(record)
        assert judged is not None and judged.unmeasurable is None and judged.measured_mb > 0
        assert judged.predicted == "needs" and judged.error is not None
