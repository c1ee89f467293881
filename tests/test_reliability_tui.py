"""Reliability in the TUI (issue 6): a runs folder full of bad and hostile files, and faults
injected into runs started from the app. The app skips the bad files and says how many, shows
the rest, and stays usable after out-of-memory, NVML failure or a record it cannot save.
Pilot, real engine on the tiny model (tests/tui_helpers.py).
"""

from __future__ import annotations

import errno
import json
import tempfile
import threading
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from ftbench.engine.runner import run
from ftbench.results.store import load_runs
from ftbench.tui.app import FtbenchApp
from ftbench.tui.screens.compare import CompareScreen
from ftbench.tui.screens.run_detail import RunScreen
from ftbench.tui.screens.runs import RunsScreen
from ftbench.tui.widgets.memory_panel import Machine
from test_reliability_runs import BAD_FILES, GOOD_DOCS, HOSTILE
from tui_helpers import copy_fixture_runs, tiny_preset, wait_until

pytestmark = pytest.mark.usefixtures("quick_cpu_runs")  # tests/reliability_tally.py
CATEGORY = "run files"
CPU = Machine(False, reason="tests")


def make_app(runs: Path, **engine: Any) -> FtbenchApp:
    """The app with the engine's collaborators ``engine`` (``gpu_sampler``, ``saver``,
    ``runner``) replaced."""
    return FtbenchApp(runs, presets=[tiny_preset()], machine=CPU, cursor_blink=False, **engine)


def notifications(app: FtbenchApp) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    notify = app.notify

    def spy(message: str, **kwargs: Any) -> None:
        seen.append((str(message), kwargs.get("severity", "information")))
        notify(message, **kwargs)

    app.notify = spy  # type: ignore[method-assign]
    return seen


async def test_runs_screen_skips_bad_files_and_shows_the_rest(tally: Any, tmp_path: Path) -> None:
    runs = copy_fixture_runs(tmp_path / "runs")
    for name, content in BAD_FILES.items():
        (runs / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    good = 16
    for i, text in enumerate(t for t in HOSTILE if t.isprintable()):
        doc = dict(GOOD_DOCS[i], run_id=f"20270101T000000-tui-hostile-{i:02d}", method=text or "x",
                   error=text + "\x1b[2J")
        (runs / f"{doc['run_id']}.json").write_text(json.dumps(doc))
        good += 1
    tally.add(CATEGORY, len(BAD_FILES) + good - 16)
    app = make_app(runs)
    with tally.guard(CATEGORY):
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("3")
            screen = app.screen
            assert isinstance(screen, RunsScreen) and len(screen.shown) == good
            status = str(screen.query_one("#runs-status").render())
            assert f"{len(BAD_FILES)} unreadable files skipped" in status
            hostile = next(r for r in screen.shown if r.run_id.startswith("20270101T000000-tui-hostile-00"))
            app.open_run(hostile.run_id)
            await pilot.pause()
            assert isinstance(app.screen, RunScreen)
            await pilot.press("escape")
            await pilot.press("4")
            await pilot.pause(0.3)
            assert isinstance(app.screen, CompareScreen)
            await pilot.press("3")
            assert isinstance(app.screen, RunsScreen)


class FlakyGpu:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, sample: Any) -> None:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST: GPU is lost")
        sample.gpu_used_mb, sample.gpu_total_mb, sample.gpu_util = 900.0, 80_000.0, 10.0


async def test_out_of_memory_and_nvml_failure_in_the_app(tally: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = threading.Event()

    def on_step(step: int) -> None:
        if step == 2 and not first.is_set():
            first.set()
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    gpu = FlakyGpu()  # the app's GPU panel and the engine read the same simulated GPU
    app = make_app(runs, gpu_sampler=gpu, runner=partial(run, on_step=on_step, gpu_sampler=gpu))
    seen = notifications(app)
    tally.add("training faults", 2)
    with tally.guard("training faults"):
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("r", "enter")
            await wait_until(pilot, lambda: app.queue is not None and not app.training, 60,
                             "the queue to finish")
            assert [i.status for i in app.queue] == ["failed", "completed"]
            assert any("out of memory" in m and s == "error" for m, s in seen)
            await pilot.press("3")
            assert isinstance(app.screen, RunsScreen) and len(app.screen.shown) == 2
    loaded = load_runs(runs)
    by_status = {r.status: r for r in loaded.records}
    assert by_status["failed"].error.startswith("out of memory:")
    assert "GPU is lost" in by_status["completed"].environment["nvml_error"]
    tally.check_saved("training faults", runs, loaded.records)


async def test_record_that_cannot_be_saved_is_reported_in_the_app(
        tally: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")

    def refuse(record: Any, folder: Any) -> Path:
        monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))  # no fallback either
        raise OSError(errno.ENOSPC, "No space left on device")

    app = make_app(tmp_path / "runs", saver=refuse)
    seen = notifications(app)
    tally.add("training faults")
    with tally.guard("training faults"):
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("r", "enter")
            await wait_until(pilot, lambda: app.queue is not None and not app.training, 60,
                             "the queue to finish")
            assert any("No space left" in m and s == "error" for m, s in seen)
            await pilot.press("1")
            await pilot.press("3")
            assert isinstance(app.screen, RunsScreen)
