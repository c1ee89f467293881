"""Snapshots of every screen and the main live states, from fixed data (no training).

Live states are fed through the app's real message path with made-up, deterministic engine
events (`tui_helpers.show_scene`); saved runs come from tests/fixtures/runs. Update after a
deliberate change with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at
the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftbench.plan.device import DeviceInfo
from ftbench.tui.app import FtbenchApp
from ftbench.tui.widgets.memory_panel import Machine
from tui_helpers import (copy_fixture_runs, demo_preset, gpu_preset, show_scene,  # noqa: F401
                         still_clock, tiny_preset)  # still_clock: an autouse fixture

CPU = Machine(False, reason="NVML unavailable")
H200 = Machine(True, "NVIDIA H200", 143771.0)
SMALL, LARGE = (80, 24), (120, 40)



@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fixture runs in ./runs of a temporary working folder (so paths print the same)."""
    monkeypatch.chdir(tmp_path)
    copy_fixture_runs(tmp_path / "runs")
    return Path("runs")


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return Path("runs")


# the device the start dialog plans for (this machine's free RAM would change the picture)
PLAN_CPU = DeviceInfo("cpu", "test cpu", 16000.0, 8000.0, "test")


def app_for(runs: Path, machine: Machine = CPU, presets: Any = None) -> FtbenchApp:
    return FtbenchApp(runs, presets=presets or [demo_preset(), gpu_preset(), tiny_preset()],
                      machine=machine, cursor_blink=False, device=PLAN_CPU)


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    pilot.app.clear_notifications()
    await pilot.pause()


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_presets(snap_compare: Any, runs: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(runs), terminal_size=size)


def test_presets_gpu_preset_on_a_cpu_machine(snap_compare: Any, runs: Path) -> None:
    assert snap_compare(app_for(runs), press=["down"], terminal_size=SMALL)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_start_dialog(snap_compare: Any, runs: Path, size: tuple[int, int]) -> None:
    """With plan's figures on each method's line, once the dialog's worker has planned."""
    async def scene(pilot: Any) -> None:
        await pilot.press("r")
        dialog = pilot.app.screen
        for _ in range(600):  # the plan loads torch in a worker: seconds on a cold process
            if dialog.prepared is not None and dialog.prepared.plans is not None:
                break
            await pilot.pause(0.1)
        await pilot.pause()

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=size)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_help(snap_compare: Any, runs: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(runs), press=["question_mark"], terminal_size=size)


def test_live_idle(snap_compare: Any, runs: Path) -> None:
    assert snap_compare(app_for(runs), press=["2"], terminal_size=SMALL)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_live_running_cpu(snap_compare: Any, runs: Path, size: tuple[int, int]) -> None:
    async def scene(pilot: Any) -> None:
        await show_scene(pilot, "running")

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=size)


def test_live_running_gpu_memory_panel(snap_compare: Any, runs: Path) -> None:
    async def scene(pilot: Any) -> None:
        await show_scene(pilot, "gpu")

    assert snap_compare(app_for(runs, H200), run_before=scene, terminal_size=LARGE)


def test_live_running_two_gpus_memory_panel(snap_compare: Any, runs: Path) -> None:
    """Issue 15: a multi-process run on two GPUs, each read by the app (one row per GPU)."""
    from tui_helpers import TWO_GPUS, fake_gpus

    async def scene(pilot: Any) -> None:
        await show_scene(pilot, "gpu")
        pilot.app.screen.poll_gpus()
        await settle(pilot)

    app = FtbenchApp(runs, presets=[demo_preset(), gpu_preset(), tiny_preset()],
                     machine=Machine(True, "NVIDIA H100", 81559.0), cursor_blink=False,
                     gpus=(0, 1), gpu_sampler=fake_gpus(TWO_GPUS))
    assert snap_compare(app, run_before=scene, terminal_size=LARGE)


def test_live_log_on_a_small_terminal(snap_compare: Any, runs: Path) -> None:
    async def scene(pilot: Any) -> None:
        await show_scene(pilot, "running")
        await pilot.press("l")

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=SMALL)


def test_live_cancel_confirmation(snap_compare: Any, runs: Path) -> None:
    async def scene(pilot: Any) -> None:
        await show_scene(pilot, "running")
        await pilot.press("c")

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=SMALL)


def test_live_finished(snap_compare: Any, runs: Path) -> None:
    async def scene(pilot: Any) -> None:
        await show_scene(pilot, "finished")

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=LARGE)


def test_live_failed(snap_compare: Any, runs: Path) -> None:
    async def scene(pilot: Any) -> None:
        await show_scene(pilot, "failed")

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=SMALL)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_runs(snap_compare: Any, runs: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(runs), press=["3"], terminal_size=size)


def test_runs_empty_folder(snap_compare: Any, empty: Path) -> None:
    assert snap_compare(app_for(empty), press=["3"], terminal_size=SMALL)


def test_run_detail(snap_compare: Any, runs: Path) -> None:
    async def scene(pilot: Any) -> None:
        await pilot.press("3", "enter")
        await pilot.pause(0.4)  # the curves draw on their timer

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=LARGE)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_compare(snap_compare: Any, runs: Path, size: tuple[int, int]) -> None:
    async def scene(pilot: Any) -> None:
        pilot.app.compare_preset("quickstart")
        await settle(pilot)

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=size)


def test_compare_light_theme(snap_compare: Any, runs: Path) -> None:
    async def scene(pilot: Any) -> None:
        pilot.app.theme = "textual-light"
        pilot.app.compare_preset("quickstart")
        await settle(pilot)

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=LARGE)
