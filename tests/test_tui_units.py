"""The TUI's pure parts: the run queue, coalescing messages, smoothing, chart throttling,
and that opening the app loads no torch."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import threading
from typing import Any

from ftbench.engine.events import GpuSample, Log, Step
from ftbench.tui.session import LiveFeed, RunQueue, primary_eval_key, smooth, summary
from tui_helpers import tiny_preset


def _queue(n_seeds: int = 1) -> RunQueue:
    from ftbench.presets import Overrides, expand

    return RunQueue("tiny", expand(tiny_preset(), Overrides(seeds=n_seeds)))


def test_queue_runs_in_order_and_cancel_continue_or_stop() -> None:
    queue = _queue(2)
    assert [i.spec.method.name for i in queue] == ["full", "full", "head-only", "head-only"]
    first, cancel1 = queue.take_next()
    assert first.index == 0 and first.status == "running" and queue.current is first
    # cancel and continue: the event of this run is set, the queue goes on with a fresh one
    assert queue.cancel_current(stop_queue=False) is first and cancel1.is_set()
    queue.fail(first, "boom")
    second, cancel2 = queue.take_next()
    assert second.index == 1 and not cancel2.is_set()
    # cancel and stop: the rest is skipped
    queue.cancel_current(stop_queue=True)
    queue.fail(second, "x")
    assert queue.take_next() is None
    assert [i.status for i in queue] == ["failed", "failed", "skipped", "skipped"]
    assert queue.finished and summary(queue) == "2 failed, 2 skipped"


def test_queue_take_next_is_safe_from_two_threads() -> None:
    queue = _queue(10)
    taken: list[int] = []

    def worker() -> None:
        while (got := queue.take_next()) is not None:
            taken.append(got[0].index)
            queue.fail(got[0], "done")

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(20))


def test_progress_notices_coalesce_only_for_their_own_run() -> None:
    from ftbench.tui.messages import ItemStarted, RunProgress

    queue = _queue()
    a, b = queue.items[0], queue.items[1]
    assert RunProgress(a).can_replace(RunProgress(a))
    assert not RunProgress(a).can_replace(RunProgress(b))
    assert not RunProgress(a).can_replace(ItemStarted(queue, a))  # lifecycle notices all arrive


def test_the_emitter_keeps_every_event_and_log_line_and_notices_each_subscriber() -> None:
    """The controller posts one fresh notice per target: the app and each subscribed screen."""
    from ftbench.tui.controller import TrainingController
    from ftbench.tui.messages import RunProgress

    class Target:
        def __init__(self) -> None:
            self.got: list[Any] = []

        def post_message(self, message: Any) -> bool:
            self.got.append(message)
            return True

    app, screen = Target(), Target()
    controller = TrainingController(app)  # type: ignore[arg-type]
    controller.subscribe(screen)  # type: ignore[arg-type]
    controller.queue = queue = _queue()
    item, _ = queue.take_next()
    emit = controller.emitter(item)
    emit(Step("r", 1, 10, 0.1, 0.5, 1e-3, 10.0, None, 1.0, 9.0))
    emit(GpuSample("r", 0.5, 100.0, 1000.0, 50.0))
    emit(Log("r", "warning", "careful"))
    assert len(item.feed.steps) == 1 and len(item.feed.gpu) == 1
    assert [(i, e.message) for i, e in queue.log] == [(item, "careful")]
    assert [type(m) for m in app.got] == [RunProgress] * 3 == [type(m) for m in screen.got]
    assert all(m is not n for m, n in zip(app.got, screen.got))  # one message per target
    controller.unsubscribe(screen)  # type: ignore[arg-type]
    emit(Log("r", "info", "again"))
    assert len(app.got) == 4 and len(screen.got) == 3


def test_feed_keeps_every_event_in_order() -> None:
    feed = LiveFeed()
    for i in range(1, 6):
        feed.add(Step("r", i, 5, i / 5, 1.0 / i, None, None, None, float(i), None))
    feed.add(GpuSample("r", 0.5, 1.0, 2.0, None))
    assert [s.step for s in feed.steps] == [1, 2, 3, 4, 5] and len(feed.gpu) == 1
    assert feed.last_step is not None and feed.last_step.step == 5


def test_smoothing_is_debiased_and_follows_the_trend() -> None:
    assert smooth([]) == []
    assert smooth([2.0]) == [2.0]  # debiased: the first value is itself, not 0.8
    values = [1.0, 0.9, 0.8, 0.7, 0.6]
    smoothed = smooth(values)
    assert smoothed[0] == 1.0 and all(a >= b for a, b in zip(smoothed, smoothed[1:]))
    assert values[-1] < smoothed[-1] < values[0]


def test_eval_chart_follows_the_reports_primary_metric() -> None:
    from ftbench.engine.events import Eval

    evals = [Eval("r", 2, 0.5, {"f1": 0.4, "accuracy": 0.6, "loss": 0.7}, 0.1)]
    assert primary_eval_key("classification", evals) == "accuracy"
    assert primary_eval_key("qa", [Eval("r", 2, 0.5, {"exact_match": 30.0, "f1": 40.0}, 0.1)]) \
        == "exact_match"
    assert primary_eval_key("classification", []) is None


def test_opening_the_app_and_its_first_screen_loads_no_torch(tmp_path) -> None:
    code = textwrap.dedent(f"""
        import asyncio, json, sys
        from ftbench.tui.app import FtbenchApp
        from ftbench.tui.screens.presets import PresetsScreen

        async def main():
            app = FtbenchApp({str(tmp_path)!r})
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                assert isinstance(app.screen, PresetsScreen), app.screen
                await app.workers.wait_for_complete()  # the NVML probe included
                await pilot.press("3")
                await pilot.pause()
        asyncio.run(main())
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("torch", "transformers", "peft", "datasets", "optuna", "sqlalchemy"))
        print(json.dumps(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_help_stays_free_of_torch_and_textual() -> None:
    code = ("import sys, json\n"
            "from ftbench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'textual'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert "tui" in out.stdout


def test_no_arguments_without_a_terminal_prints_help() -> None:
    out = subprocess.run([sys.executable, "-m", "ftbench.cli"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert out.returncode == 0 and "usage: ftbench" in out.stdout


def test_gpu_samples_carry_the_torch_allocator_peaks() -> None:
    """The memory panel shows torch's peak allocated/reserved next to each NVML sample."""
    import types

    from ftbench.engine.session import Session
    from ftbench.engine.world import World
    from ftbench.engine.telemetry import TelemetrySample
    from ftbench.presets import expand
    from ftbench.results.record import RunRecord

    spec = expand(tiny_preset())[0]
    seen: list[object] = []
    record = RunRecord("r", "tiny", "full", "failed", "2026-01-01T00:00:00+00:00", {})
    session = Session(spec, record, seen.append, threading.Event(), World())
    mib = 2**20
    session.device = "cuda"
    session.torch = types.SimpleNamespace(cuda=types.SimpleNamespace(
        max_memory_allocated=lambda: 1385.24 * mib, max_memory_reserved=lambda: 1702 * mib))
    session.on_gpu_sample(TelemetrySample(t=0.5, rss_mb=900.0, gpu_used_mb=2100.0,
                                           gpu_total_mb=143771.0, gpu_util=88.0))
    (sample,) = seen
    assert isinstance(sample, GpuSample)
    assert (sample.used_mb, sample.total_mb, sample.util) == (2100.0, 143771.0, 88.0)
    assert (sample.torch_peak_allocated_mb, sample.torch_peak_reserved_mb) == (1385.2, 1702.0)
    # a counter that cannot be read leaves the peaks unknown, and the sample still goes out
    session.torch = types.SimpleNamespace(cuda=None)
    session.on_gpu_sample(TelemetrySample(t=1.0, rss_mb=900.0, gpu_used_mb=2200.0,
                                           gpu_total_mb=143771.0, gpu_util=90.0))
    assert seen[-1].torch_peak_allocated_mb is None and seen[-1].used_mb == 2200.0


def test_memory_panel_has_one_row_per_gpu_read_through_the_sampler_hook() -> None:
    """Issue 15: a multi-process run's GPUs, read by the TUI through the sampler hook, become
    one row each: NVML index, bar, used / total MB, share and utilisation."""
    from ftbench.distributed.launch import Launch
    from ftbench.tui.gpu_probe import gpus_now
    from ftbench.tui.widgets.memory_panel import gpu_rows
    from tui_helpers import TWO_GPUS, fake_gpus

    samples = gpus_now(fake_gpus(TWO_GPUS), (0, 1, 7))
    assert [(s.gpu_index, s.gpu_used_mb) for s in samples] == [(0, 61440.0), (1, 10240.0),
                                                               (7, None)]  # 7: not readable
    rows = [str(row) for row in gpu_rows(samples)]
    assert rows == ["GPU 0 ████████░░ 61,440 / 81,559 MB (75%) · util 91%",
                    "GPU 1 █░░░░░░░░░ 10,240 / 143,771 MB (7%) · util 34%",
                    "GPU 7 not readable"]
    # which GPUs a launch uses: local rank i drives CUDA device i, through CUDA_VISIBLE_DEVICES
    assert Launch(nproc_per_node=2).local_gpus({}) == (0, 1)
    assert Launch(nproc_per_node=2).local_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == (2, 3)


def test_a_queue_run_from_ftbench_run_exits_with_the_headless_codes() -> None:
    from ftbench.tui.app import queue_exit_code

    assert queue_exit_code(["completed", "completed"], 2) == 0
    assert queue_exit_code(["completed", "failed"], 2) == 1
    assert queue_exit_code(["diverged"], 1) == 1
    assert queue_exit_code(["completed", "cancelled"], 3) == 130   # cancelled, queue stopped
    assert queue_exit_code(["completed"], 2) == 130                # quit before the second run
    assert queue_exit_code(["failed", "cancelled"], 2) == 130


def test_a_chart_placeholder_is_dim_before_the_first_redraw_tick() -> None:
    """The redraw timer draws the placeholder dim; the first frame must already match it,
    or a screen caught before the first tick looks different (a flaky snapshot in CI)."""
    from rich.text import Text

    from ftbench.tui.widgets.chart import PlotView

    view = PlotView("waiting")
    assert view.content == Text("waiting", style="dim")
    assert view._render_chart(40, 10) == view.content


def test_run_detail_and_compare_show_plan_vs_measured() -> None:
    """Issue 22: the run detail's Memory says how far the stored prediction was from what the
    run measured (or why that cannot be said), and the TUI's Compare adds the plan table."""
    from rich.console import Console

    from ftbench.results.record import RunRecord
    from ftbench.tui.screens.compare import report_renderable
    from ftbench.tui.screens.run_detail import facts

    def text(renderable: Any) -> str:
        console = Console(width=140, record=True, file=io.StringIO())
        console.print(renderable)
        return " ".join(console.export_text().split())

    r = RunRecord(run_id="20261201T000000-quickstart-full-s0-aaaaaa", preset="quickstart",
                  method="full", status="completed", created_at="2026-12-01T00:00:00+00:00",
                  spec={"model": "minilm-l6", "seed": 0, "data": {"name": "rotten_tomatoes"}})
    assert "plan" not in text(facts(r)).split("process RSS")[1].split("Spec")[0]  # no prediction
    r.memory["process_peak_rss_mb"] = 1581.0
    r.prediction = {"device": {"kind": "cpu"}, "memory": {"peak_mb": 755.3, "device_total_mb": 1057.4},
                    "baseline_rss_mb": 500.0,
                    "rss_window": {"how": "kernel high-water mark", "problem": None, "runs_before": 0}}
    shown = text(facts(r))
    assert "plan 1,057 MB needs · measured 1,081 MB" in shown and "-2%" in shown
    r.prediction["rss_window"]["problem"] = "the kernel's high-water mark could not be reset (EPERM)"
    assert "not measurable: the kernel's high-water mark could not be reset" in text(facts(r))
    report = text(report_renderable([r], 120, 12, per_run=True, colorless=True))
    assert "plan vs measured memory · quickstart" in report and "not measurable" in report


def test_the_workspace_is_the_screens_shared_runs_and_selection(tmp_path) -> None:
    """Runs, the selection for Compare and what Compare shows: one object the screens share."""
    from tui_helpers import copy_fixture_runs

    from ftbench.tui.workspace import CompareRequest, Workspace

    ws = Workspace(copy_fixture_runs(tmp_path / "runs"))
    records = ws.runs().records
    assert ws.runs() is ws.runs() and ws.saved_presets()[0] == records[-1].preset
    first = records[0].run_id
    assert ws.toggle(first) and ws.marked == {first}
    assert not ws.toggle(first) and not ws.marked
    ws.toggle(first)
    ws.keep_marks_of({r.run_id for r in records[1:]})  # the run left the folder
    assert not ws.marked
    version = ws.version
    ws.reload()
    assert ws.version == version + 1 and ws.runs().records == records
    ws.compare = CompareRequest(preset="quickstart")
    assert ws.compare.preset == "quickstart" and not ws.compare.ids
