"""Redraw the TUI screenshots: docs/tui-live.svg and docs/tui-compare.svg (README, docs/tui.md).

Both come from a real quickstart run on a CPU, replayed through the TUI's own message path:

    python docs/screenshots.py --record   # run the real quickstart (minutes on a CPU) and
                                          # keep its events and records in docs/screenshot-data
    python docs/screenshots.py            # draw the two SVGs from what was recorded

The live shot shows the first method finished, the second 30 steps in, the third queued;
the compare shot is the Compare screen over the three saved runs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "screenshot-data"
SIZE = (120, 40)


def record() -> None:
    from ftbench.engine.events import RunFinished
    from ftbench.engine.runner import run
    from ftbench.presets import expand, load_preset

    runs = DATA / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    out = []
    for spec in expand(load_preset("quickstart")):
        events: list[dict] = []

        def emit(event: object) -> None:
            if not isinstance(event, RunFinished):
                events.append({"type": type(event).__name__, "data": dataclasses.asdict(event)})  # noqa: B023

        started = time.perf_counter()
        finished = run(spec, emit, runs_dir=runs)
        print(f"{spec.method.name}: {finished.record.status} in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        out.append({"run_id": finished.record.run_id, "events": events})
    (DATA / "events.json").write_text(json.dumps(out, indent=1))


def load_events() -> list[dict]:
    from ftbench.engine import events as ev

    runs = json.loads((DATA / "events.json").read_text())
    for entry in runs:
        entry["events"] = [getattr(ev, e["type"])(**e["data"]) for e in entry["events"]]
    return runs


async def draw(out: Path = HERE, live_upto: int = 30) -> None:
    from ftbench.engine.events import RunFinished, Step
    from ftbench.presets import expand, load_preset
    from ftbench.results.store import load_file
    from ftbench.tui.app import FtbenchApp
    from ftbench.tui.session import RunQueue
    from ftbench.tui.widgets.chart import PlotView
    from ftbench.tui.widgets.memory_panel import Machine

    from ftbench.tui import session

    session.monotonic = lambda: 0.0  # the live clock ticks with the wall clock: pin it
    recorded = load_events()
    preset = load_preset("quickstart")
    app = FtbenchApp(DATA / "runs", presets=[preset], cursor_blink=False,
                     machine=Machine(False, reason="NVML unavailable"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        queue = RunQueue(preset.name, expand(preset))
        app.queue = queue
        app.screen.show_all()
        for index, entry in enumerate(recorded[:2]):
            item, _ = queue.take_next()
            emit = app._emitter(item)
            for event in entry["events"]:
                if index == 1 and isinstance(event, Step) and event.step > live_upto:
                    break
                emit(event)
            if index == 0:
                path = DATA / "runs" / f"{entry['run_id']}.json"
                finished = load_file(path)  # ended as the training worker ends a run
                shown = path.relative_to(HERE.parent)  # the same on every machine
                app.controller.ended(queue, item, RunFinished(finished, str(shown)))
        for _ in range(3):
            await pilot.pause()
        app.clear_notifications()
        for chart in app.screen.query(PlotView):
            chart.redraw_if_needed()
        await pilot.pause()
        app.save_screenshot("tui-live.svg", str(out))
        queue.stop()
        app.queue = None
        app.set_activity("")
        app.compare_preset(preset.name)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()
        app.save_screenshot("tui-compare.svg", str(out))
    print(f"wrote {out / 'tui-live.svg'} and {out / 'tui-compare.svg'}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true",
                        help="run the real quickstart first and keep its events")
    parser.add_argument("--out", type=Path, default=HERE, help="where the SVGs go (default: docs/)")
    args = parser.parse_args()
    if args.record:
        record()
    asyncio.run(draw(args.out))


if __name__ == "__main__":
    main()
