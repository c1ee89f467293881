"""One saved run: status, metrics, parameters, timing, memory, environment, spec and curves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ftbench.plan.judge import prediction_error
from ftbench.report.planned import error_text
from ftbench.tui.format import STATUS_STYLE, count, duration, mb, number, one_line, rate, short_time
from ftbench.tui.sft_view import comparison_table, is_generative, samples_table
from ftbench.tui.widgets.eval_chart import EvalChart
from ftbench.tui.widgets.loss_chart import LossChart
from ftbench.tui.widgets.navbar import NavBar

if TYPE_CHECKING:
    from ftbench.results.record import RunRecord
    from ftbench.tui.app import FtbenchApp


def _grid(title: str) -> Table:
    table = Table.grid(padding=(0, 2))
    table.title = title
    table.title_justify = "left"
    table.title_style = "bold"
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def _value(value: Any) -> Text:
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, float):
        return Text(f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}")
    if isinstance(value, int) and not isinstance(value, bool):
        return Text(f"{value:,}")
    return Text(one_line(str(value), 300))


def metrics_table(record: RunRecord) -> Table:
    table = _grid("Metrics" + (f" (at step {record.metrics['at_step']})"
                               if isinstance(record.metrics.get("at_step"), int) else ""))
    matrix = None
    for key, value in record.metrics.items():
        if key == "at_step":
            continue
        if key == "confusion_matrix" and isinstance(value, list):
            matrix = value
            continue
        if isinstance(value, (list, dict)):
            continue
        table.add_row(key, _value(value))
    if not record.metrics:
        table.add_row("none", Text("no evaluation finished", style="dim"))
    if matrix:
        labels = record.metrics.get("labels")
        labels = labels if isinstance(labels, list) and len(labels) == len(matrix) else \
            [str(i) for i in range(len(matrix))]
        cm = Table(box=None, show_edge=False, pad_edge=False, header_style="dim")
        cm.add_column("true \\ pred", style="dim")
        for label in labels:
            cm.add_column(one_line(str(label), 12), justify="right")
        for label, row in zip(labels, matrix):
            cm.add_row(one_line(str(label), 12), *(_value(v) for v in row))
        table.add_row("confusion", cm)
    return table


def facts(record: RunRecord) -> Group:
    params, timing, memory = record.params, record.timing, record.memory
    p = _grid("Parameters")
    pct = number(params.get("trainable_pct"))
    trainable, total = number(params.get("trainable")), number(params.get("total"))
    if pct is None and trainable is not None and total:
        pct = 100 * trainable / total
    p.add_row("trainable", Text(count(trainable) + (f" ({pct:.2f}%)" if pct is not None else "")))
    p.add_row("without head", Text(count(params.get("trainable_without_head"))))
    p.add_row("total", Text(count(total)))
    t = _grid("Timing")
    train_s = timing.get("train_s")
    t.add_row("train", Text(f"{duration(train_s)} ({_value(train_s)} s, excludes eval)"))
    t.add_row("eval", Text(f"{_value(timing.get('eval_s'))} s"))
    t.add_row("steps", Text(f"{count(timing.get('steps'))} of {count(timing.get('total_steps'))}"))
    t.add_row("samples/s", Text(rate(timing.get("samples_per_s"))))
    t.add_row("tokens/s", Text(rate(timing.get("tokens_per_s"))))
    if timing.get("trained_tokens_per_s") is not None:  # causal-lm: the response tokens alone
        t.add_row("trained tok/s", Text(rate(timing.get("trained_tokens_per_s"))))
    if "base_eval_s" in timing and is_generative(record):
        t.add_row("base eval", Text(f"{_value(timing.get('base_eval_s'))} s"
                                    + ("" if timing.get("base_eval_s") is not None
                                       else " (reused)")))
    m = _grid("Memory (peaks)")
    m.add_row("torch allocated", Text(mb(memory.get("torch_peak_allocated_mb"))))
    m.add_row("torch reserved", Text(mb(memory.get("torch_peak_reserved_mb"))))
    m.add_row("NVML device", Text(mb(memory.get("nvml_peak_used_mb"))))
    m.add_row("process RSS", Text(mb(memory.get("process_peak_rss_mb"))))
    planned = plan_vs_measured(record)
    if planned is not None:
        m.add_row("plan", planned)
    env = _grid("Environment")
    for key, value in record.environment.items():
        if isinstance(value, (dict, list)):
            continue
        env.add_row(key, _value(value))
    spec = _grid("Spec")
    s = record.spec
    train = s.get("train") if isinstance(s.get("train"), dict) else {}
    method = s.get("method") if isinstance(s.get("method"), dict) else {}
    spec.add_row("model", _value(s.get("model")))
    spec.add_row("dataset", _value(record.dataset))
    args = method.get("args") or {}
    shown_args = ", ".join(f"{k}={v}" for k, v in args.items()) if isinstance(args, dict) else ""
    spec.add_row("method", Text(record.method + (f" {shown_args}" if shown_args else "")))
    spec.add_row("seed", _value(record.seed))
    for key in ("epochs", "max_steps", "batch_size", "max_length", "precision"):
        if train.get(key) is not None:
            spec.add_row(key, _value(train.get(key)))
    lr = s.get("learning_rate")
    spec.add_row("learning_rate", Text(f"{lr:g}" if isinstance(lr, (int, float)) else "-"))
    for line in s.get("substitutions") or []:
        spec.add_row("offline", _value(line))
    blank = Text("")
    lm = [comparison_table(record), blank, samples_table(record), blank] \
        if is_generative(record) else []
    return Group(metrics_table(record), blank, *lm, p, blank, t, blank, m, blank, spec, blank, env)


def plan_vs_measured(record: RunRecord) -> Text | None:
    """``1,057 MB needs · measured 1,081 MB (RSS growth …) · -2%``, or why it cannot be
    measured; None when the run stored no prediction or measured nothing to hold it against."""
    j = prediction_error(record)
    if j is None:
        return None
    text = Text(f"{j.predicted_mb:,.0f} MB {j.predicted}")
    if j.unmeasurable is not None:
        text.append(f" · not measurable: {one_line(j.unmeasurable, 160)}", style="dim")
        return text
    text.append(f" · measured {j.measured_mb:,.0f} MB ")
    text.append(f"({j.measure}) · ", style="dim")
    return text.append_text(error_text(j))


class RunScreen(Screen[None]):
    """Pushed over Runs (or Live); escape goes back."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="run.back"),
        Binding("space", "mark", "Select", tooltip="Mark this run for Compare", id="run.mark"),
    ]

    app: FtbenchApp

    def __init__(self, record: RunRecord, path: str | None = None) -> None:
        super().__init__()
        self.record = record
        self.path = path

    def compose(self) -> ComposeResult:
        yield NavBar(self.app.current_mode)
        yield Static(self._header(), id="run-header")
        with Horizontal(id="run-body"):
            with VerticalScroll(id="run-facts") as facts_box:
                facts_box.border_title = "Run"
                yield Static(facts(self.record))
            with Vertical(id="run-curves"):
                yield LossChart(id="run-loss")
                yield EvalChart(id="run-eval")
        yield Footer()

    def _header(self) -> Text:
        r = self.record
        text = Text()
        text.append(r.status, style="bold " + STATUS_STYLE.get(r.status, ""))
        text.append(f"  {r.preset} · {r.method} · seed {r.seed} · {r.model} on {r.dataset}")
        text.append(f"\n{r.run_id} · {short_time(r.created_at)} UTC", style="dim")
        if r.error:
            text.append(f"\n{one_line(r.error, 300)}", style=STATUS_STYLE.get(r.status, "red"))
        return text

    def on_mount(self) -> None:
        loss = self.query_one("#run-loss", LossChart)
        loss.show_series(self.record.series.get("train", []))
        self.query_one("#run-eval", EvalChart).show_series(self.record.series.get("eval", []),
                                                           self.record.task)
        self.query_one("#run-facts").focus()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_mark(self) -> None:
        self.app.toggle_mark(self.record.run_id)
