"""The TUI's side of --tune: the start dialog's Tune box, the live view naming the trial and its
value, and Compare's tuning table and sensitivity chart (snapshots, from fixed data)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ftbench.plan.device import DeviceInfo
from ftbench.results.store import save_record
from ftbench.tui.app import FtbenchApp
from ftbench.tui.widgets.memory_panel import Machine
from test_tune_report import sweep
from tui_helpers import demo_preset, step_events, still_clock, tiny_preset  # noqa: F401  (still_clock: autouse)

CPU = Machine(False, reason="NVML unavailable")
LARGE = (120, 40)
# the device the start dialog plans for (this machine's free RAM would change the picture)
PLAN_CPU = DeviceInfo("cpu", "test cpu", 16000.0, 8000.0, "test")



@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return Path("runs")


def app_for(runs: Path) -> FtbenchApp:
    return FtbenchApp(runs, presets=[demo_preset(), tiny_preset()], machine=CPU, cursor_blink=False,
                      device=PLAN_CPU)


def test_start_dialog_with_tuning_on(snap_compare: Any, folder: Path) -> None:
    async def scene(pilot: Any) -> None:
        await pilot.press("r")
        dialog = pilot.app.screen
        dialog.query_one("#start-tune").value = True
        for _ in range(600):  # the plan loads torch in a worker: seconds on a cold process
            if dialog.prepared is not None and dialog.prepared.plans is not None:
                break
            await pilot.pause(0.1)
        await pilot.pause()

    assert snap_compare(app_for(folder), run_before=scene, terminal_size=LARGE)


def test_live_view_names_the_trial_and_its_value(snap_compare: Any, folder: Path) -> None:
    async def scene(pilot: Any) -> None:
        from ftbench.presets import expand
        from ftbench.tui.session import RunQueue
        from ftbench.tui.widgets.chart import PlotView

        app = pilot.app
        await pilot.press("2")
        preset = app.presets[0]
        rates = (1e-5, 1e-4, 1e-3, 1e-2)
        specs = [replace(s, tune={"role": "trial", "study": "quickstart-lora", "trial": -1, "index": k,
                                  "of": len(rates), "params": {"learning_rate": lr}})
                 for s in expand(preset) if s.method.name == "lora" for k, lr in enumerate(rates, 1)]
        queue = RunQueue(preset.name, specs)
        app.queue = queue
        app.screen.show_all()
        queue.take_next()
        item, _ = queue.take_next()
        for event in step_events("lora-trial", 30):
            app._emitter(item)(event)
        for _ in range(3):
            await pilot.pause()
        for chart in app.screen.query(PlotView):
            chart.redraw_if_needed()
        await pilot.pause()

    assert snap_compare(app_for(folder), run_before=scene, terminal_size=LARGE)


def test_compare_shows_the_tuning_table_and_sensitivity_chart(snap_compare: Any, folder: Path) -> None:
    folder.mkdir()
    ids = [save_record(r, folder).stem for r in sweep()]

    async def scene(pilot: Any) -> None:
        pilot.app.compare_runs(ids, "a tuned sweep")
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        body = pilot.app.screen.query_one("#compare-body")
        body.scroll_end(animate=False)
        await pilot.pause()

    assert snap_compare(app_for(folder), run_before=scene, terminal_size=LARGE)
