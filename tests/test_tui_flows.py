"""Pilot tests of every TUI flow, with the real engine on tiny random-init models (CPU).

Each test drives the app with keys, as a user would, and checks what the app did: the
records saved in the runs folder, the queue's statuses, the screens shown, the messages the
training worker posted.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ftbench.prepare import Prepared
from ftbench.presets import parse_preset_text
from ftbench.results.store import load_runs
from ftbench.tui.app import FtbenchApp
from ftbench.tui.messages import ItemStarted, QueueDone, RunEnded, RunProgress
from ftbench.tui.screens.compare import CompareScreen
from ftbench.tui.screens.confirm import CancelRunScreen, QuitScreen
from ftbench.tui.screens.live import LiveScreen
from ftbench.tui.screens.run_detail import RunScreen
from ftbench.tui.screens.runs import RunsScreen
from ftbench.tui.screens.start import StartScreen
from ftbench.tui.widgets.loss_chart import LossChart
from ftbench.tui.widgets.memory_panel import Machine, MemoryPanel
from ftbench.tui.widgets.run_queue import QueueTable
from tui_helpers import (
    FAILING_PRESET, TINY_PRESET, copy_fixture_runs, tiny_preset, wait_until,
)

CPU = Machine(False, reason="tests")


def make_app(runs: Path, *presets: Any, runner: Any = None) -> FtbenchApp:
    return FtbenchApp(runs, presets=list(presets) or [tiny_preset()], machine=CPU,
                      cursor_blink=False, runner=runner)


def slow_steps() -> Any:
    """The engine, with each training step sleeping a little (its ``on_step``).

    A tiny model's step is nearly all Python and keeps the process busy, and the pilot waits
    for an idle process after every key (up to a second each). Sleeping in each step leaves
    the process mostly idle, so keys are handled promptly while the run stays in flight.
    """
    import time
    from functools import partial

    from ftbench.engine.runner import run

    def slow(step: int) -> None:
        time.sleep(0.3)

    return partial(run, on_step=slow)


def spy_notifications(app: FtbenchApp) -> list[tuple[str, str]]:
    """(message, severity) of every notification the app shows, kept after they expire."""
    seen: list[tuple[str, str]] = []
    notify = app.notify

    def spy(message: str, **kwargs: Any) -> None:
        seen.append((message, kwargs.get("severity", "information")))
        notify(message, **kwargs)

    app.notify = spy  # type: ignore[method-assign]
    return seen


class Messages:
    """A message_hook that keeps the training's messages (each arrives at the app and at every
    screen that subscribed: one copy per handler)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def __call__(self, message: Any) -> None:
        # (the hook may see a message twice on its way to a screen: count each once)
        if isinstance(message, (ItemStarted, RunProgress, RunEnded, QueueDone)) \
                and all(m is not message for m in self.seen):
            self.seen.append(message)

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.seen if isinstance(m, kind)]

    def items(self, kind: type) -> set[int]:
        """The distinct queue items (or queues) the messages of ``kind`` were about."""
        return {id(getattr(m, "item", None) or m.queue) for m in self.of(kind)}


async def test_start_a_preset_and_watch_it_complete(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app = make_app(runs)
    hook = Messages()
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        await pilot.press("r")  # the highlighted preset: tiny
        assert isinstance(app.screen, StartScreen)
        await pilot.press("enter")  # focus starts on the Start button
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), 10, "live screen")
        await wait_until(pilot, lambda: not app.training, 120, "the queue to finish")
        await pilot.pause(0.5)  # let the charts' redraw timer run once more
        queue = app.queue
        assert queue is not None
        assert [(i.spec.method.name, i.status) for i in queue] == [
            ("full", "completed"), ("head-only", "completed")], [
            i.record and i.record.error for i in queue]
        # every run saved, where the app said
        saved = load_runs(runs).records
        assert sorted(r.method for r in saved) == ["full", "head-only"]
        assert all(i.path and Path(i.path).parent == runs for i in queue)
        # the worker's messages arrived: started, steps, evals, ended, done
        assert len(hook.items(ItemStarted)) == 2 and len(hook.items(RunEnded)) == 2
        assert len(hook.items(RunProgress)) == 2 and len(hook.items(QueueDone)) == 1
        # the live screen handled its own copies (no forwarding through the app)
        assert len(hook.of(RunEnded)) == 2 * len(hook.items(RunEnded))
        live = app.screen
        # the result rows: both finished with a metric and a train time
        table = live.query_one(QueueTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        # columns: icon, method, status, acc, train, ...
        assert [r[2] for r in rows] == ["completed", "completed"]
        assert all(r[3] != "-" and r[4] != "-" for r in rows)
        # the loss chart drew the last run's curve; the memory panel says CPU
        assert live.query_one(LossChart).builds >= 1
        assert live.query_one(MemoryPanel).mode == "finished"
        # the Runs screen lists them at once
        await pilot.press("3")
        assert isinstance(app.screen, RunsScreen)
        assert {r.run_id for r in app.screen.shown} == {r.run_id for r in saved}
        # and Compare shows this preset's latest set
        await pilot.press("4")
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert isinstance(app.screen, CompareScreen)
        assert [r.method for r in app.screen.selected()] == ["full", "head-only"]


async def test_cancel_a_run_then_quit_during_the_next(tmp_path: Path) -> None:
    """Cancel asks first and the queue goes on; quitting during a run asks, then cancels and
    saves it, skips the rest and exits."""
    text = TINY_PRESET.replace("max_steps = 3", "max_steps = 400").replace(
        '[[methods]]\nname = "head-only"',
        '[[methods]]\nname = "head-only"\n\n[[methods]]\nname = "bitfit"')
    runs = tmp_path / "runs"
    app = make_app(runs, parse_preset_text(text, default_name="long"), runner=slow_steps())

    def training(index: int) -> bool:
        q = app.queue
        return q is not None and q.items[index].status == "running" \
            and bool(q.items[index].feed.steps)

    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r", "enter")
        await wait_until(pilot, lambda: training(0), 60, "the first run's first step")
        await pilot.press("c")
        assert isinstance(app.screen, CancelRunScreen)
        await pilot.press("escape")  # keep running: nothing happens
        assert app.queue.items[0].status == "running" and not app.queue.stopping
        await pilot.press("c")
        await pilot.click("#continue")
        await wait_until(pilot, lambda: training(1), 60, "the second run")
        assert app.queue.items[0].status == "cancelled"
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")  # stay
        assert app.is_running and app.training
        await pilot.press("q")
        await pilot.click("#quit")
        await wait_until(pilot, lambda: not app.is_running, 60, "the app to exit")
    assert [i.status for i in app.queue] == ["cancelled", "cancelled", "skipped"]
    saved = {r.method: r for r in load_runs(runs).records}
    assert set(saved) == {"full", "head-only"}
    for record in saved.values():
        assert record.status == "cancelled" and record.error.startswith("cancelled at step")
        assert record.timing["steps"] < 400 and record.series["train"]


async def test_cancel_and_stop_the_queue_asks_first(tmp_path: Path) -> None:
    """The "stop queue" choice (no training needed: the queue is fed fixed events)."""
    from tui_helpers import show_scene

    app = make_app(copy_fixture_runs(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await show_scene(pilot, "running")
        queue = app.queue
        cancel = queue._cancel
        await pilot.press("c")
        await pilot.click("#stop")
        await pilot.pause()
        assert cancel.is_set() and queue.stopping
        assert not cancel.evaluate  # saved at once, with no evaluation first
        assert "cancelling" in app.activity
        assert any("queue stops" in ev.message and "no evaluation" in ev.message
                   for _, ev in queue.log)


async def test_a_failing_run_is_saved_and_the_app_keeps_working(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app = make_app(runs, parse_preset_text(FAILING_PRESET, default_name="failing"))
    notes = spy_notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r", "enter")
        await wait_until(pilot, lambda: app.queue is not None and not app.training, 60,
                         "the queue to finish")
        statuses = [(i.spec.method.name, i.status) for i in app.queue]
        assert statuses == [("prefix", "failed"), ("head-only", "completed")]
        (failed,) = [r for r in load_runs(runs).records if r.status == "failed"]
        assert "prefix" in failed.error and "distilbert" in failed.error
        # said on screen: a notification and the log
        assert any("prefix" in message and severity == "error" for message, severity in notes)
        assert any(ev.level == "error" for _, ev in app.queue.log)
        # and the app still works: other screens, the failed run opens
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RunsScreen) and len(screen.shown) == 2
        app.open_run(failed.run_id)
        await pilot.pause()
        assert isinstance(app.screen, RunScreen) and app.screen.record.status == "failed"


async def test_a_worker_failure_outside_the_engine_is_reported_not_fatal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftbench.errors import FtbenchError

    def unreachable(specs: Any) -> None:
        raise FtbenchError("the Hugging Face hub is unreachable (test)")

    monkeypatch.setattr("ftbench.preflight.preflight", unreachable)
    app = make_app(tmp_path / "runs")
    notes = spy_notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r", "enter")
        await wait_until(pilot, lambda: any("unreachable" in message and severity == "error"
                                            for message, severity in notes), 20, "the failure")
        assert [i.status for i in app.queue] == ["skipped", "skipped"]
        await pilot.press("1")  # still alive
        await pilot.press("r")
        assert isinstance(app.screen, StartScreen)


async def test_open_a_run_from_the_runs_screen(tmp_path: Path) -> None:
    runs = copy_fixture_runs(tmp_path / "runs")
    app = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RunsScreen) and len(screen.shown) == 16
        await pilot.press("down", "down", "down", "down", "enter")
        detail = app.screen
        assert isinstance(detail, RunScreen)
        assert detail.record.run_id == screen.shown[4].run_id
        await pilot.pause(0.4)
        assert detail.query_one("#run-loss", LossChart).builds >= 1
        await pilot.press("escape")
        assert app.screen is screen


async def test_runs_filter_and_sort(tmp_path: Path) -> None:
    runs = copy_fixture_runs(tmp_path / "runs")
    app = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        from textual.widgets import Select

        screen.query_one("#filter-status", Select).value = "completed"
        await pilot.pause()
        assert len(screen.shown) == 14 and {r.status for r in screen.shown} == {"completed"}
        screen.query_one("#filter-method", Select).value = "lora"
        await pilot.pause()
        assert {r.method for r in screen.shown} == {"lora"} and len(screen.shown) == 5
        await pilot.press("escape")  # clears the filters
        assert len(screen.shown) == 16
        await pilot.press("s")  # sort: pick the column in a list
        from textual.widgets import OptionList

        options = app.screen.query_one(OptionList)
        options.highlighted = [options.get_option_at_index(i).id
                               for i in range(options.option_count)].index("metric")
        await pilot.press("enter")
        assert screen.sort_key == "metric" and screen.sort_reverse
        values = [r.metrics.get("accuracy", r.metrics.get("exact_match"))
                  for r in screen.shown if r.metrics]
        assert values[0] == max(v for v in values if v is not None)


async def test_compare_two_selected_runs(tmp_path: Path) -> None:
    from rich.console import Console

    from ftbench.report.groups import build_comparison
    from ftbench.report.tables import section_tables

    runs = copy_fixture_runs(tmp_path / "runs")
    app = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        screen = app.screen
        # newest first: the oldest runs (full s0, then full s1 ... lora s0) are at the end
        first, second = screen.shown[-1], screen.shown[-4]  # full s0 and lora s0
        assert (first.method, first.seed, second.method, second.seed) == ("full", 0, "lora", 0)
        await pilot.press(*["down"] * 15, "space", "up", "up", "up", "space", "c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert set(app.workspace.compare.ids) == {first.run_id, second.run_id}
        await app.workers.wait_for_complete()
        await pilot.pause()
        compare = app.screen
        assert {r.run_id for r in compare.selected()} == {first.run_id, second.run_id}
        # the screen shows exactly what the report module builds for these runs
        shown = compare.report
        console = Console(width=200, record=True, file=open("/dev/null", "w"))
        console.print(shown)
        text = console.export_text()
        comparison = build_comparison([first, second])
        expected = Console(width=200, record=True, file=open("/dev/null", "w"))
        body = compare.query_one("#compare-body")
        width = body.content_size.width - body.styles.scrollbar_size_vertical
        for table in section_tables(comparison.sections[0], width):
            expected.print(table)
        for line in expected.export_text().splitlines():
            if line.strip():
                assert line.rstrip() in text
        assert "Pareto front" in text
        # g: one row per run instead of mean ± std
        await pilot.press("g")
        await app.workers.wait_for_complete()
        assert compare.per_run


async def test_step_bursts_are_coalesced_and_charts_throttled(tmp_path: Path) -> None:
    """200 steps posted at once: the feed keeps all, the loss chart builds a few times."""
    from ftbench.engine.events import RunStarted, Step
    from ftbench.presets import expand
    from ftbench.tui.session import RunQueue

    app = make_app(tmp_path / "runs")
    hook = Messages()
    async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
        await pilot.press("2")
        await wait_until(pilot, lambda: bool(app.screen.query(MemoryPanel)), 10,
                         "the live screen")  # composed later on a busy machine
        queue = RunQueue("tiny", expand(tiny_preset()))
        item, _ = queue.take_next()
        app.queue = queue
        app.screen.show_all()
        emit = app._emitter(item)
        emit(RunStarted("r", "tiny", "full", "tiny-bert", "synthetic", 7, 200, {}, "cpu", "x"))
        for i in range(1, 201):
            emit(Step("r", i, 200, i / 200, 1.0 / i, 1e-3, 50.0, None, i * 0.1, 1.0, None, 500.0))
        await pilot.pause(0.8)
        assert len(item.feed.steps) == 200
        # 201 notices to each of the app and the live screen, coalesced on the way
        assert len(hook.of(RunProgress)) < 2 * 201
        builds = app.screen.query_one(LossChart).builds
        assert 1 <= builds <= 5


async def test_every_screen_and_run_is_in_the_command_palette(tmp_path: Path) -> None:
    runs = copy_fixture_runs(tmp_path / "runs")
    app = make_app(runs)
    async with app.run_test(size=(100, 30)) as pilot:
        from ftbench.tui.commands import FtbenchCommands

        titles = [title for title, _, _ in FtbenchCommands(app.screen).commands()]
        for expected in ("Presets", "Live run", "Runs", "Compare", "Run tiny…",
                         "Compare quickstart", "Reload runs", "Light / dark theme"):
            assert expected in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"compare qu")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert app.workspace.compare.preset == "quickstart"


async def test_ftbench_run_on_a_terminal_opens_live_and_trains_at_once(tmp_path: Path) -> None:
    """`ftbench run --preset X` without --headless on a TTY: the runs the CLI expanded (its
    overrides applied) start on the live screen with no key pressed."""
    from ftbench.presets import Overrides, expand

    runs = tmp_path / "runs"
    preset = tiny_preset()
    specs = expand(preset, Overrides(methods=("head-only",), max_steps=2))
    app = FtbenchApp(runs, presets=[preset], machine=CPU, cursor_blink=False,
                     start=Prepared.given(preset.name, specs))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), 10, "live screen")
        await wait_until(pilot, lambda: app.queue is not None and not app.training, 120,
                         "the run to finish")
        assert app.queue is not None
        assert [(i.spec.method.name, i.status) for i in app.queue] == [("head-only", "completed")]
    saved = load_runs(runs).records
    assert [(r.method, r.status, r.spec["train"]["max_steps"]) for r in saved] == [
        ("head-only", "completed", 2)]


def test_ftbench_run_on_a_terminal_uses_the_tui_and_its_exit_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import ftbench.tui
    from ftbench.cli import main

    seen: dict[str, Any] = {}

    def fake_tui(runs_dir: str | None, start: Any = None) -> int:
        seen["runs_dir"], seen["start"] = runs_dir, start
        return 130

    monkeypatch.setattr(ftbench.tui, "main", fake_tui)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    preset_file = tmp_path / "tiny.toml"
    preset_file.write_text(TINY_PRESET)
    code = main(["run", "--preset", str(preset_file), "--method", "full",
                 "--runs-dir", str(tmp_path / "runs")])
    assert code == 130
    start = seen["start"]  # prepared and gated by the CLI, as a headless run is
    assert start.preset == "tiny" and [s.method.name for s in start.specs] == ["full"]
    assert start.gated and start.specs[0].resolved_for == "cpu"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_ftbench_run_nproc_on_a_terminal_gives_the_tui_every_local_gpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: the launch's local GPUs (through CUDA_VISIBLE_DEVICES) reach the TUI."""
    import sys

    import ftbench.tui
    from ftbench.cli import main

    seen: dict[str, Any] = {}

    def fake_tui(runs_dir: str | None, start: Any = None, runner: Any = None,
                 gpus: tuple[int, ...] = ()) -> int:
        seen["runner"], seen["gpus"] = runner, gpus
        return 0

    monkeypatch.setattr(ftbench.tui, "main", fake_tui)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    preset_file = tmp_path / "tiny.toml"
    preset_file.write_text(TINY_PRESET)
    assert main(["run", "--preset", str(preset_file), "--method", "full", "--nproc-per-node",
                 "2", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert seen["runner"] is not None and seen["gpus"] == (2, 3)


async def test_compare_warns_on_budget_mismatch_and_b_groups_by_budget(tmp_path: Path) -> None:
    import json

    from rich.console import Console

    runs = copy_fixture_runs(tmp_path / "runs")
    source = runs / "20261128T080800-quickstart-lora-s0-000004.json"
    doc = json.loads(source.read_text())
    doc.update(run_id="20261129T000000-quickstart-lora-s0-short1",
               created_at="2026-11-29T00:00:00+00:00")
    doc["spec"]["train"]["max_steps"] = 5
    (runs / f"{doc['run_id']}.json").write_text(json.dumps(doc))

    def shown(screen: CompareScreen) -> str:
        console = Console(width=200, record=True, file=open("/dev/null", "w"))
        console.print(screen.report)
        return " ".join(console.export_text().split())

    app = make_app(runs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.compare_preset("quickstart")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        assert "⚠ these runs differ in budget (max_steps 5 / none)" in shown(compare)
        await pilot.press("b")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = shown(compare)
        assert compare.by_budget and "differ in budget" not in text
        assert "quickstart [max_steps 5]" in text and "quickstart [max_steps none]" in text
        # Every run's loss on one chart; x switches its axis from steps to training time.
        assert "training loss over steps (per run)" in text
        await pilot.press("x")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "training loss over train time (per run)" in shown(compare)
        await pilot.press("ctrl+s")  # the charts as an SVG picture beside the run files
        assert compare.saved is not None and compare.saved.parent == runs
        assert compare.saved.read_text().startswith("<svg")


async def test_runs_screen_newest_first_with_steps_and_escape_leaves_the_filters(
        tmp_path: Path) -> None:
    from textual.widgets import DataTable, Select

    runs = copy_fixture_runs(tmp_path / "runs")
    app = make_app(runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        created = [r.created_at for r in screen.shown]
        assert created == sorted(created, reverse=True)  # newest first, as docs/tui.md says
        table = screen.query_one(DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[:8] == [" ", "created ▼", "preset", "method", "seed", "status", "steps",
                              "metric"]
        newest = table.get_row_at(0)
        assert [str(c) for c in newest[1:8]] == ["11-28 08:32", "roberta-imd…", "lora", "42",
                                                 "completed", "376", "acc 0.925"]
        assert str(newest[-1]) == "000010"  # the short id `ftbench runs` shows
        # / goes to the filters; Esc comes back to the table (twice if a list is open)
        await pilot.press("slash")
        assert isinstance(app.focused, Select)
        await pilot.press("enter")  # opens the dropdown
        await pilot.press("escape")
        await pilot.press("escape")
        assert app.focused is table
        await pilot.press("slash", "tab")
        assert isinstance(app.focused, Select)
        await pilot.press("escape")
        assert app.focused is table
        # a filter chosen in the dropdowns survives the Esc back to the table; Esc there clears
        screen.query_one("#filter-method", Select).value = "lora"
        screen.query_one("#filter-method", Select).focus()
        await pilot.pause()
        await pilot.press("escape")
        assert app.focused is table and len(screen.shown) == 5
        await pilot.press("escape")
        assert len(screen.shown) == 16


async def test_start_dialog_keys_work_at_once_and_sizes_can_be_set(tmp_path: Path) -> None:
    """Focus starts on the methods (space toggles at once), enter starts, and the train and
    eval sizes are fields of their own."""
    from textual.widgets import Input, SelectionList

    app = make_app(tmp_path / "runs")
    started: list[Any] = []
    app.start_runs = lambda prepared: started.append(prepared.specs)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        dialog = app.screen
        assert isinstance(dialog, StartScreen)
        methods = dialog.query_one(SelectionList)
        assert app.focused is methods
        await pilot.press("space")  # toggles the highlighted method (full) off
        assert methods.selected == ["head-only"]
        dialog.query_one("#start-train-size", Input).value = "40"
        dialog.query_one("#start-eval-size", Input).value = "12"
        await pilot.pause()
        assert "train 40, eval 12" in str(dialog.query_one("#start-summary").render())
        dialog.query_one("#start-eval-size", Input).value = "0"  # refused, as the CLI does
        await pilot.pause()
        assert dialog.query_one("#start-go").disabled
        dialog.query_one("#start-eval-size", Input).value = "12"
        methods.focus()
        await pilot.pause()
        await pilot.press("enter")  # starts once the runs are planned (a worker)
        await wait_until(pilot, lambda: app.activity == "▶ tiny starting…", 60, "the start")
        await pilot.pause()
    (specs,) = started
    assert [s.method.name for s in specs] == ["head-only"]
    assert (specs[0].data.train_size, specs[0].data.eval_size) == (40, 12)


async def test_a_run_plan_says_will_not_fit_is_refused_unless_forced(tmp_path: Path) -> None:
    """As `ftbench run` without --force: on a GPU too small for the runs, Start is refused with
    the CLI's line before anything is queued or trained, and each method's line says NO FIT;
    ticking "Run anyway" (the CLI's --force) starts them."""
    from textual.widgets import Checkbox

    from ftbench.plan.device import DeviceInfo
    from ftbench.tui.screens.start import MethodsList

    small_gpu = DeviceInfo("cuda", "small GPU", 1024.0, 100.0, "test")
    runs = tmp_path / "runs"
    app = FtbenchApp(runs, presets=[tiny_preset()], machine=CPU, cursor_blink=False,
                     device=small_gpu)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("r")
        dialog = app.screen
        assert isinstance(dialog, StartScreen)
        force = dialog.query_one("#start-force", Checkbox)  # shown once plan says NO FIT
        await pilot.press("enter")  # pressed before the plan is ready: waits for it, then refuses
        await wait_until(pilot, lambda: dialog.prepared is not None
                         and dialog.prepared.plans is not None and not dialog.start_pending,
                         60, "the plan")
        await pilot.pause()
        assert app.screen is dialog and app.queue is None  # refused: nothing queued or trained
        summary = str(dialog.query_one("#start-summary").render())
        assert "full on tiny-bert: predicted peak" in summary
        assert "exceeds the 100 MB free on small GPU" in summary and "(--force runs it anyway)" in summary
        lines = dialog.query_one(MethodsList)
        assert all("NO FIT" in str(lines.get_option_at_index(i).prompt) for i in range(2))
        assert force.display
        force.value = True
        lines.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.queue is not None and not app.training, 120,
                         "the forced runs")
        assert [i.status for i in app.queue] == ["completed", "completed"]
    saved = load_runs(runs).records
    assert sorted(r.method for r in saved) == ["full", "head-only"]
    assert all(r.spec["resolved_for"] == "cuda" for r in saved)  # the runs the plan judged


async def test_cancel_dialog_offers_cancel_and_evaluate(tmp_path: Path) -> None:
    from textual.widgets import Checkbox
    from tui_helpers import show_scene

    app = make_app(copy_fixture_runs(tmp_path / "runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        await show_scene(pilot, "running")
        queue = app.queue
        cancel = queue._cancel
        await pilot.press("c")
        assert isinstance(app.screen, CancelRunScreen)
        assert app.screen.query_one("#evaluate", Checkbox).value is False  # default: no eval
        app.screen.query_one("#evaluate", Checkbox).value = True
        await pilot.click("#stop")
        await pilot.pause()
        assert cancel.is_set() and cancel.evaluate
        assert any("evaluated once, then saved" in ev.message for _, ev in queue.log)


async def test_progress_moves_every_step_the_clock_ticks_and_eval_is_its_own_phase(
        tmp_path: Path) -> None:
    """Fixed events through the real message path; the panel's clock is pinned and moved."""
    from ftbench.engine.events import Eval, EvalProgress, StepProgress
    from ftbench.tui import session
    from ftbench.tui.widgets.progress_panel import ProgressPanel
    from tui_helpers import show_scene

    now = [1000.0]
    real = session.monotonic
    session.monotonic = lambda: now[0]
    try:
        app = make_app(copy_fixture_runs(tmp_path / "runs"))
        async with app.run_test(size=(120, 40)) as pilot:
            await show_scene(pilot, "running")  # logged up to step 30 of 50 (37.2 s)
            panel = app.screen.query_one(ProgressPanel)
            item = app.queue.current
            emit = app._emitter(item)

            def stats() -> str:
                return str(panel.query_one("#progress-stats").render())

            assert "30/50" in stats() and "0:37 elapsed" in stats()
            emit(StepProgress("lora-run", 33, 50, 0.66, 40.9))  # between logging steps
            await pilot.pause()
            assert "33/50" in stats() and "0:41 elapsed" in stats()
            assert "head-only 33/50" in app.activity
            now[0] += 3.0  # no event for 3 s: the clock goes on by itself
            panel._tick()
            assert "0:44 elapsed" in stats()
            emit(EvalProgress("lora-run", 35, 0, None, 0.0))
            await pilot.pause()
            assert "evaluating at step 35 · starting" in stats()
            assert "evaluating" in app.activity
            emit(EvalProgress("lora-run", 35, 4, 13, 2.0))
            await pilot.pause()
            now[0] += 5.0
            panel._tick()
            assert "evaluating at step 35 · batch 4/13 · 0:07" in stats()
            assert panel.query_one("#progress-bar").total == 13
            emit(Eval("lora-run", 35, 0.7, {"accuracy": 0.8}, 7.5))
            await pilot.pause()
            # back to training: the clock resumes from where training stopped (not + eval)
            assert "33/50" in stats() and "0:44 elapsed" in stats()
    finally:
        session.monotonic = real


async def test_a_new_run_starts_with_clear_panels(tmp_path: Path) -> None:
    from ftbench.engine.events import RunFinished
    from ftbench.tui.messages import ItemStarted
    from ftbench.tui.widgets.eval_chart import EvalChart
    from ftbench.tui.widgets.progress_panel import ProgressPanel
    from ftbench.tui.widgets.rate_panel import RatePanel
    from tui_helpers import demo_preset, record_of, show_scene

    app = make_app(copy_fixture_runs(tmp_path / "runs"), demo_preset())  # full, lora, head-only
    async with app.run_test(size=(120, 40)) as pilot:
        await show_scene(pilot, "running")
        screen = app.screen
        queue = app.queue
        running = queue.current
        assert screen.query_one(LossChart)._lines  # the lora run's loss is drawn
        record = record_of("20261128T080800-quickstart-lora-s0")
        app.controller.ended(queue, running, RunFinished(record, None))
        await pilot.pause()
        # the log ends the run with its figures and where it was saved
        assert any(ev.message.startswith("lora · seed 0: completed · accuracy 0.7900")
                   for _, ev in queue.log)
        nxt, _ = queue.take_next()
        app.controller.post(partial(ItemStarted, queue, nxt))
        await pilot.pause()
        await pilot.pause()
        assert screen.focus_item() is nxt
        assert screen.query_one(LossChart)._lines == []
        assert screen.query_one(EvalChart)._lines == []
        assert str(screen.query_one(RatePanel).render()) == ""
        assert "preparing" in str(screen.query_one("#progress-stats").render())
        assert "head-only" in str(screen.query_one(ProgressPanel).query_one(
            "#progress-title").render())

async def start_first_item_on_live_screen(app: FtbenchApp, pilot: Any) -> Any:
    """Open the live screen and announce the tiny preset's first run as started, as the
    controller does, with no engine behind it; waits for the panels (composed later on a busy
    machine, and again when a run starts) so the caller can query them."""
    from ftbench.presets import expand
    from ftbench.tui.messages import ItemStarted
    from ftbench.tui.session import RunQueue

    await pilot.press("2")
    await wait_until(pilot, lambda: bool(app.screen.query(MemoryPanel)), 10, "the live screen")
    queue = RunQueue("tiny", expand(tiny_preset()))
    app.queue = queue
    item, _ = queue.take_next()
    app.controller.post(partial(ItemStarted, queue, item))
    await pilot.pause()  # the live screen clears its panels for the new run: wait for them
    await wait_until(pilot, lambda: bool(app.screen.query(MemoryPanel)), 10, "the new run's panels")
    return item



async def test_memory_panel_shows_the_gpu_while_a_run_prepares(tmp_path: Path) -> None:
    """Issue 11: a queued GPU run shows the device from NVML at once, not "no NVIDIA GPU".
    The GPU is simulated through the app's (and the engine's) GPU sampler."""
    reads: list[int] = []

    def fake_gpu(sample: Any) -> None:
        reads.append(1)
        sample.gpu_used_mb, sample.gpu_total_mb, sample.gpu_util = 1234.0, 143771.0, 7.0

    h200 = Machine(True, "NVIDIA H200", 143771.0)
    app = FtbenchApp(tmp_path / "runs", presets=[tiny_preset()], machine=h200,
                     cursor_blink=False, gpu_sampler=fake_gpu)
    async with app.run_test(size=(120, 40)) as pilot:
        await start_first_item_on_live_screen(app, pilot)  # the engine is still loading: no events
        await pilot.pause()
        panel = app.screen.query_one(MemoryPanel)
        text = str(panel.query_one("#memory-text").render())
        assert "NVIDIA H200" in text and "no NVIDIA GPU" not in text and "CPU" not in text
        app.screen.poll_gpu()  # (the live screen also polls once a second on its own)

        def shown() -> str:
            return str(panel.query_one("#memory-text").render())

        await wait_until(pilot, lambda: "used 1,234" in shown(), 10, "the NVML reading")
        text = shown()
        assert reads and "used 1,234 / 143,771 MB (1%) · util 7%" in text
        assert "preparing the run" in text


@pytest.mark.parametrize("gpus", [(0, 1), ()], ids=["two-gpus", "one-gpu"])
async def test_memory_panel_shows_one_row_per_gpu_of_a_multi_process_run(
        tmp_path: Path, gpus: tuple[int, ...]) -> None:
    """Issue 15: with the GPUs of a multi-process run (its launch), the app reads each through
    NVML (a simulated GPU sampler here) and the panel shows a row per GPU; a one-GPU run keeps the
    single "used" line, from its own samples."""
    from ftbench.engine.events import GpuSample
    from tui_helpers import TWO_GPUS, fake_gpus

    h100 = Machine(True, "NVIDIA H100", 81559.0)
    app = FtbenchApp(tmp_path / "runs", presets=[tiny_preset()], machine=h100, gpus=gpus,
                     cursor_blink=False, gpu_sampler=fake_gpus(TWO_GPUS))
    async with app.run_test(size=(120, 40)) as pilot:
        item = await start_first_item_on_live_screen(app, pilot)
        await pilot.pause()
        app._emitter(item)(GpuSample("r", 0.5, 61440.0, 81559.0, 91.0))  # rank 0's own sample
        app.screen.poll_gpus()  # (the live screen also polls every 0.5 s on its own)
        panel = app.screen.query_one(MemoryPanel)

        def shown() -> str:
            return str(panel.query_one("#memory-text").render())

        if gpus:
            await wait_until(pilot, lambda: "GPU 1" in shown(), 10, "the rows per GPU")
            assert shown().splitlines()[:3] == [
                "2 GPUs · NVIDIA H100",
                "GPU 0 ████████░░ 61,440 / 81,559 MB (75%) · util 91%",
                "GPU 1 █░░░░░░░░░ 10,240 / 143,771 MB (7%) · util 34%"]
        else:
            await wait_until(pilot, lambda: "used" in shown(), 10, "rank 0's sample")
            await pilot.pause(0.6)
            assert shown().splitlines()[:2] == ["NVIDIA H100 · util 91%",
                                                "used 61,440 / 81,559 MB (75%)"]
            assert "GPU 0" not in shown() and panel.gpus == ()


async def test_help_opens_with_question_mark_f1_and_the_palette(tmp_path: Path) -> None:
    from textual.command import CommandPalette
    from textual.widgets import HelpPanel

    from ftbench.tui.screens.help import HelpScreen

    app = make_app(copy_fixture_runs(tmp_path / "runs"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        from rich.console import Console

        from ftbench.tui.screens.help import help_text

        console = Console(width=100, record=True, file=open("/dev/null", "w"))
        console.print(help_text())
        text = console.export_text()
        for expected in ("1  Presets", "3  Runs", "Keys · Runs", "Filter", "Keys · Compare",
                         "By budget", "ctrl+p"):
            assert expected in text, expected
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("3", "f1")  # from another screen, with F1
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"help")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        # Textual's keys panel closes on Esc too
        app.action_show_help_panel()
        await pilot.pause()
        assert app.screen.query(HelpPanel)
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query(HelpPanel)


def test_run_summary_line_for_the_log() -> None:
    from ftbench.tui.app import run_summary
    from tui_helpers import record_of

    done = record_of("20261128T080800-quickstart-lora-s0")
    line = run_summary(done, "runs/x.json")
    assert line == ("lora · seed 0: completed · accuracy 0.7900 at step 50 · f1 0.7908 · "
                    "train 0:41 (50 steps) · saved runs/x.json")
    failed = record_of("20261128T082800-quickstart-qlora-s0")
    assert run_summary(failed, None).endswith("this machine has none · not saved")


def test_run_in_the_tui_prints_the_results_table_after_quitting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`ftbench run` on a terminal: after q, the headless results table is printed."""
    from ftbench.presets import expand
    from ftbench.tui import app as app_module
    from ftbench.tui.session import RunQueue
    from tui_helpers import record_of

    specs = expand(tiny_preset())

    def fake_run(self: FtbenchApp, *args: Any, **kwargs: Any) -> None:
        queue = self.queue = RunQueue("tiny", specs)
        for name in ("20261128T080800-quickstart-lora-s0", "20261128T081400-quickstart-head-only-s0"):
            item, _ = queue.take_next()
            queue.finish(item, record_of(name), None)

    monkeypatch.setattr(app_module.FtbenchApp, "run", fake_run)
    assert app_module.run_app(str(tmp_path), start=Prepared.given("tiny", specs)) == 0
    out = capsys.readouterr().out
    assert "ftbench results" in out and "lora" in out and "head-only" in out and "0.7900" in out


async def test_an_unwritable_runs_folder_stops_the_queue_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    app = make_app(blocker / "runs")
    notes = spy_notifications(app)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("r", "enter")
        await wait_until(pilot, lambda: any("is a file, not a folder" in message
                                            and severity == "error"
                                            for message, severity in notes), 20, "the refusal")
        assert [i.status for i in app.queue] == ["skipped", "skipped"]
        assert all(not i.feed.steps and i.feed.started is None for i in app.queue)
