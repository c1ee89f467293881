"""`ftbench run --headless`: run a preset's runs in order and print progress.

Rich progress (step, loss, samples/s, ETA, memory) on a TTY; one plain line per logging step
otherwise. Ctrl+C (or SIGTERM) cancels the run in flight, which is saved as ``cancelled``;
a second Ctrl+C aborts at once (the run is still saved). Exit codes: 0 all completed,
1 any failed/diverged (or a record that could not be saved anywhere; it is then printed),
2 usage or preset error, 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from functools import partial
from typing import Any, Callable, TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from ftbench.engine.events import (
    Eval, EvalProgress, Event, GpuSample, Log, RunFinished, RunStarted, Step, StepProgress,
)
from ftbench.spec import RunSpec
from ftbench.tasks.info import primary_metrics, short_name
from ftbench.terms import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, fixed, peak_memory



def _fmt_num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class PlainPrinter:
    """One line per event of interest, for logs and CI."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        line = self.format(event)
        if line:
            print(line, file=self.out, flush=True)

    def format(self, event: Event) -> str | None:
        if isinstance(event, RunStarted):
            p = event.params
            return (f"[start] {event.run_id} method={event.method} model={event.model} "
                    f"dataset={event.dataset} seed={event.seed} steps={event.total_steps} "
                    f"device={event.device} trainable={p.get('trainable')}/{p.get('total')}")
        if isinstance(event, Step):
            mem = (f" mem={event.torch_allocated_mb:.0f}MB" if event.torch_allocated_mb is not None
                   else f" rss={event.rss_mb:.0f}MB" if event.rss_mb is not None else "")
            sps = f"{event.samples_per_s:.1f}" if event.samples_per_s else "-"
            tps = f"{event.tokens_per_s:.0f}" if event.tokens_per_s else "-"
            return (f"[step] {event.step}/{event.total_steps} epoch={event.epoch:.2f} "
                    f"loss={_fmt_num(event.loss)} samples/s={sps} tokens/s={tps} "
                    f"eta={_fmt_eta(event.eta_s)}{mem}")
        if isinstance(event, Eval):
            keys = [k for k in ("accuracy", "f1", "exact_match", "perplexity", "forgetting", "loss")
                    if k in event.metrics]
            shown = " ".join(f"{k}={_fmt_num(event.metrics[k])}" for k in keys)
            stage = event.metrics.get("stage")   # causal-lm: the base and the tuned model
            stage = f" {stage}" if stage in ("base", "tuned") else ""
            return f"[eval{stage}] step={event.step} {shown} ({event.eval_s:.1f}s)"
        if isinstance(event, Log):
            if event.level == "info":
                return f"[info] {event.message}"
            return f"[{event.level}] {event.message}"
        if isinstance(event, RunFinished):
            r = event.record
            where = event.path or "(not saved)"
            err = f" error={r.error}" if r.error else ""
            return f"[done] {r.run_id} status={r.status}{err} -> {where}"
        return None


class RichPrinter:
    """A live progress bar per run plus log lines above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.fields[label]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} samples/s"),
            TextColumn("{task.fields[mem]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.label = ""
        self.lock = threading.Lock()

    def __enter__(self) -> "RichPrinter":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            label = self.label = f"{event.method} s{event.seed}"
            self.task = self.progress.add_task("run", total=event.total_steps or None, label=label,
                                               loss="-", rate="-", mem="")
            p = event.params
            self.console.print(f"[dim]{event.run_id}[/] on {event.device}: trainable "
                               f"{p.get('trainable'):,} of {p.get('total'):,}")
        elif isinstance(event, Step) and self.task is not None:
            mem = (f"{event.torch_allocated_mb:.0f} MB" if event.torch_allocated_mb is not None
                   else f"RSS {event.rss_mb:.0f} MB" if event.rss_mb is not None else "")
            self.progress.update(self.task, completed=event.step, loss=_fmt_num(event.loss),
                                 rate=f"{event.samples_per_s:.1f}" if event.samples_per_s else "-", mem=mem)
        elif isinstance(event, StepProgress) and self.task is not None:
            # every optimizer step (throttled): the counter and ETA move between log lines
            self.progress.update(self.task, completed=event.step, label=self.label)
        elif isinstance(event, EvalProgress) and self.task is not None:
            of = f"/{event.total}" if event.total else ""
            self.progress.update(self.task, label=f"{self.label} · evaluating step {event.step}"
                                                  f" · batch {event.done}{of}")
        elif isinstance(event, GpuSample) and self.task is not None:
            self.progress.update(self.task, mem=f"GPU {event.used_mb:.0f}/{event.total_mb:.0f} MB")
        elif isinstance(event, Eval):
            if self.task is not None:
                self.progress.update(self.task, label=self.label)
            keys = [k for k in ("accuracy", "f1", "exact_match") if k in event.metrics]
            shown = "  ".join(f"{k} {_fmt_num(event.metrics[k])}" for k in keys)
            self.console.print(f"  eval @ step {event.step}: {shown}")
        elif isinstance(event, Log):
            style = {"error": "bold red", "warning": "yellow"}.get(event.level, "dim")
            self.console.print(f"[{style}]{event.message}[/]", highlight=False)
        elif isinstance(event, RunFinished):
            r = event.record
            colour = {"completed": "green", "cancelled": "yellow"}.get(r.status, "red")
            if self.task is not None:
                self.progress.update(self.task, visible=True)
                self.task = None
            self.console.print(f"[{colour}]{r.status}[/] {r.run_id} → {event.path or 'not saved'}")


class Interrupts:
    """First Ctrl+C/SIGTERM sets ``cancel``; the second raises KeyboardInterrupt."""

    def __init__(self, cancel: threading.Event, notify: Any) -> None:
        self.cancel = cancel
        self.notify = notify
        self.count = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.cancel.set()
        if self.count == 1:
            self.notify("cancelling: the run in flight stops after this step and is saved "
                        "(Ctrl+C again to abort now)")
        else:
            raise KeyboardInterrupt


def summary_table(records: list[Any]) -> Table:
    """One row per run; fits 80 columns (the report module has the full comparison)."""
    primary = primary_metrics(next((r.task for r in records), "classification"))[0]
    first = (short_name(primary), primary)
    table = Table(title="ftbench results", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False,
                  show_edge=False, collapse_padding=True)
    for col in ("method", "seed", "status", first[0], "F1", "trainable", "train s", "samp/s",
                "peak MB"):
        table.add_column(col, justify="left" if col in ("method", "status") else "right",
                         no_wrap=True, min_width=len(col))
    sources: set[str] = set()
    whole_run = False
    for r in records:
        rate = r.timing.get("steady_samples_per_s")
        if rate is None and r.timing.get("samples_per_s") is not None:
            rate, whole_run = r.timing.get("samples_per_s"), True
        source, peak = peak_memory(r.memory)
        sources.add(source)
        trainable = r.params.get("trainable")
        table.add_row(
            r.method, str(r.seed), r.status, _fmt_metric(r.metrics.get(first[1])),
            _fmt_metric(r.metrics.get("f1")),
            f"{trainable:,}" if isinstance(trainable, int) else "-",
            _fmt_num(r.timing.get("train_s"), 1),
            _fmt_num(rate, 1) + ("*" if rate is not None and r.timing.get("steady_samples_per_s") is None else ""),
            f"{peak:,.0f}" if peak else "-",
        )
    notes = ["samp/s: steady state after the warm-up steps"
             + ("; * whole run (too short for a steady window)" if whole_run else "")]
    if "NVML" in sources:
        notes.append("peak MB: NVML (the whole GPU) where torch did not measure")
    if "RSS" in sources:
        notes.append("peak MB: process RSS where no GPU memory was measured")
    worlds = sorted({r.timing.get("world_size") for r in records if r.timing.get("world_size")})
    if worlds:
        notes.append(f"torchrun runs ({', '.join(map(str, worlds))} processes): samp/s summed "
                     "over the processes, peak MB is rank 0's")
    table.caption = "\n".join(notes)
    return table


def qa_lines(records: list[Any]) -> list[str]:
    """For QA runs: EM / F1 with the has-answer / no-answer split beside the all-no-answer
    baseline on the same questions, so a score at the baseline is seen for what it is."""
    out = []
    for r in records:
        m = r.metrics
        if not isinstance(m.get("exact_match"), (int, float)):
            continue
        line = f"{r.method} s{r.seed}: EM {m['exact_match']:.3f} F1 {_fmt_metric(m.get('f1'))[:5]}"
        if isinstance(m.get("has_ans_exact"), (int, float)):
            line += (f" · HasAns EM {m['has_ans_exact']:.3f} (n={m.get('has_ans_total')})"
                     f" · NoAns EM {_fmt_metric(m.get('no_ans_exact'))[:5]} (n={m.get('no_ans_total')})")
        base = (r.data_info.get("baselines") or {}).get("no_answer") or {}
        if isinstance(base.get("exact_match"), (int, float)):
            line += (f" · no-answer baseline EM {base['exact_match']:.3f}"
                     f" ({m['exact_match'] - base['exact_match']:+.3f})")
        out.append(line)
    return out


def _fmt_metric(value: Any) -> str:
    return fixed(value, 4)


def run_specs(specs: list[RunSpec], runs_dir: str | None, as_json: bool, stream: TextIO | None = None,
              runner: Callable[..., RunFinished] | None = None) -> int:
    """Run the specs in order; print progress; return the exit code. ``runner`` replaces the
    in-process `engine.runner.run` (a torchrun launch: `distributed.launch.run_distributed`)."""
    # the engine loads only when runs start here: --parallel's parent imports this module for its
    # printers alone
    from ftbench.engine.runner import run as run_here
    from ftbench.plan.record import prediction_for_record

    run = runner or partial(run_here, predict=prediction_for_record)
    out = stream or (sys.stderr if as_json else sys.stdout)
    tty = out.isatty()
    console = Console(file=out, highlight=False)
    cancel = threading.Event()
    events: list[RunFinished] = []
    interrupted = False

    def notify(message: str) -> None:
        if tty:
            console.print(f"[yellow]{message}[/]")
        else:
            print(f"[info] {message}", file=out, flush=True)

    printer: Any = RichPrinter(console) if tty else PlainPrinter(out)
    started = time.perf_counter()
    with Interrupts(cancel, notify):
        ctx = printer if tty else _Null()
        with ctx:
            for i, spec in enumerate(specs):
                if cancel.is_set():
                    interrupted = True
                    break
                if not tty:
                    print(f"[queue] run {i + 1}/{len(specs)}: {spec.method.name} seed {spec.seed}",
                          file=out, flush=True)
                try:
                    finished = run(spec, printer, cancel, runs_dir=runs_dir)
                except KeyboardInterrupt:
                    interrupted = True
                    break
                events.append(finished)
                if finished.record.status == "cancelled":
                    interrupted = True
                    break
    return report(events, time.perf_counter() - started, interrupted, console, out, as_json)


def report(events: list[RunFinished], total: float, interrupted: bool, console: Console,
           out: TextIO, as_json: bool) -> int:
    """The end of a headless session: unsaved records printed, the summary table, the JSON
    payload; returns the exit code."""
    records = [e.record for e in events]
    # a torchrun node other than 0 writes nothing by design (rank 0 on node 0 does)
    unsaved = [e for e in events if e.path is None and not e.extra.get("written_by")]
    for e in unsaved:  # neither the runs folder nor the fallback took it: print it, lose nothing
        print(f"ftbench: run {e.record.run_id} could not be saved ({e.save_error}); its record:",
              file=out, flush=True)
        print(json.dumps(e.record.to_dict(), indent=2, default=str), file=out, flush=True)
    if records:
        console.print(summary_table(records))
        for line in qa_lines(records):
            console.print(line, markup=False)
    console.print(f"{len(records)} run(s) in {total:.1f} s" + (" (interrupted)" if interrupted else ""))
    code = EXIT_INTERRUPTED if interrupted else (
        EXIT_FAILED if unsaved or any(r.status != "completed" for r in records) else EXIT_OK)
    if as_json:
        payload = {
            "exit_code": code,
            "runs": [dict(e.record.to_dict(), path=e.path, save_error=e.save_error) for e in events],
            "interrupted": interrupted,
            "wall_s": round(total, 2),
        }
        print(json.dumps(payload, indent=2, default=str), flush=True)
    return code


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None
