"""What a `--tune` sweep found, from the run files alone: per method the default-rate result (when
untuned runs exist), the value chosen on the validation carve, the tuned result over seeds, who
is tied with the best, what the sweep spent; and the sensitivity chart (validation score
against the learning rate, log x axis, one line per method).

Trials and finals are told apart by ``spec.tune.role`` (ftbench.tune.sweep); a final names the
study whose trials chose its value, so this reads the same on any machine that has the files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from ftbench.report.charts import _build, _colorless, nice_ticks, tick_label
from ftbench.report.groups import Stat
from ftbench.report.stats import tie_note, tied
from ftbench.results.record import RunRecord
from ftbench.tasks.info import primary_value, short_name


MARKERS = ("●", "■", "▲", "◆", "✚", "✖")


@dataclass
class TunedMethod:
    preset: str
    method: str
    study: str
    metric: str
    params: dict[str, Any]
    validation: float | None
    tuned: Stat
    default: Stat | None                # untuned completed runs of the method, same preset
    default_rate: float | None
    curve: list[tuple[float, float | None, str]] = field(default_factory=list)  # (lr, score, status)
    spent: dict[str, Any] = field(default_factory=dict)
    tied: bool | None = None
    best: bool = False

    @property
    def label(self) -> str:
        return self.method + (" ≈" if self.tied else "") + (" (best)" if self.best else "")


def _tune(record: RunRecord) -> dict[str, Any]:
    tune = record.spec.get("tune") if isinstance(record.spec, dict) else None
    return tune if isinstance(tune, dict) else {}


def tuned_methods(records: Sequence[RunRecord]) -> list[TunedMethod]:
    """One entry per (preset, method, study) with final runs, in the order they first appear."""
    finals: dict[tuple[str, str, str], list[RunRecord]] = {}
    trials: dict[str, list[RunRecord]] = {}
    for r in records:
        tag = _tune(r)
        if tag.get("role") == "final":
            finals.setdefault((r.preset, r.method, str(tag.get("study"))), []).append(r)
        elif tag.get("role") == "trial":
            trials.setdefault(str(tag.get("study")), []).append(r)
    out: list[TunedMethod] = []
    for (preset, method, study), runs in finals.items():
        task = runs[0].task
        done = [r for r in runs if r.status == "completed"]
        metric = primary_value(task, done[0].metrics if done else {})[0]
        scores = [v for r in done if (v := primary_value(task, r.metrics)[1]) is not None]
        tag = _tune(runs[-1])
        plain = [r for r in records if r.preset == preset and r.method == method and not _tune(r)
                 and r.status == "completed" and r.model == runs[0].model and r.dataset == runs[0].dataset]
        plain_scores = [v for r in plain if (v := primary_value(task, r.metrics)[1]) is not None]
        curve = []
        for t in trials.get(study, []):
            lr = t.spec.get("learning_rate")
            score = primary_value(task, t.metrics)[1] if t.status == "completed" else None
            if isinstance(lr, (int, float)) and lr > 0:
                curve.append((float(lr), score, _trial_status(t)))
        out.append(TunedMethod(
            preset, method, study, metric, dict(tag.get("params") or {}),
            (tag.get("validation") or {}).get("value"), Stat.of(scores),
            Stat.of(plain_scores) if plain_scores else None,
            plain[0].spec.get("learning_rate") if plain else None,
            sorted(curve), dict(tag.get("sweep") or {})))
    for preset in dict.fromkeys(m.preset for m in out):
        same = [m for m in out if m.preset == preset and m.tuned.mean is not None]
        if not same:
            continue
        top = max(same, key=lambda m: m.tuned.mean or 0.0)
        top.best = True
        values = {id(m): _scores(records, m) for m in same}
        for m in same:
            if m is not top:
                m.tied = tied(values[id(top)], values[id(m)])
    return out


def _scores(records: Sequence[RunRecord], m: TunedMethod) -> list[float]:
    return [v for r in records if r.preset == m.preset and r.method == m.method and r.status == "completed"
            and _tune(r).get("role") == "final" and _tune(r).get("study") == m.study
            and (v := primary_value(r.task, r.metrics)[1]) is not None]


def _trial_status(record: RunRecord) -> str:
    if record.status == "cancelled" and (record.error or "").startswith("pruned"):
        return "pruned"
    return record.status


def _fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{'lr' if k == 'learning_rate' else k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in params.items()) or "-"


def _fmt_stat(stat: Stat | None) -> str:
    if stat is None or stat.mean is None:
        return "-"
    spread = f" ± {stat.std:.4f}" if stat.std is not None else ""
    return f"{stat.mean:.4f}{spread} (n={stat.n})"


def spent_text(spent: dict[str, Any]) -> str:
    """``4 trials, 0.012 CPU h``: what the sweep spent."""
    if not spent:
        return "-"
    hours = spent.get("device_hours") or {}
    parts = [f"{v:.3f} {k.upper()} h" for k, v in sorted(hours.items())]
    return f"{spent.get('trials', 0)} trials" + (", " + ", ".join(parts) if parts else "")


def tuning_table(methods: Sequence[TunedMethod]) -> Any:
    """The Rich table: one row per tuned method."""
    name = short_name(methods[0].metric) if methods else "score"
    table = Table(title=Text(f"{methods[0].preset if methods else ''}: tuned on a validation carve, "
                             "tested on the test set"), box=box.SIMPLE_HEAD, title_justify="left",
                  caption_justify="left", padding=(0, 1), collapse_padding=True)
    for column in ("method", f"default-rate {name}", "chosen", f"validation {name}",
                   f"tuned {name}", "sweep spent"):
        table.add_column(column, overflow="fold")
    for m in methods:
        default = _fmt_stat(m.default)
        if m.default is not None and m.default_rate is not None:
            default += f" at lr {m.default_rate:.3g}"
        table.add_row(Text(m.label), Text(default), Text(_fmt_params(m.params)),
                      Text(f"{m.validation:.4f}" if isinstance(m.validation, (int, float)) else "-"),
                      Text(_fmt_stat(m.tuned)), Text(spent_text(m.spent)))
    notes = ["tuned: mean ± sample std over the final runs' seeds, each on the whole training set",
             "default-rate: untuned runs of the method in the same folder (absent: none were run)"]
    if any(m.tied is not None for m in methods):
        best = next(m.method for m in methods if m.best)
        notes.append(tie_note(best, any(m.tied for m in methods)))
    if any(m.tied is None and not m.best for m in methods):
        notes.append("no mark: fewer than 2 seeds on one side, not judged")
    table.caption = Text("\n".join(notes))
    return table


def sensitivity_chart(methods: Sequence[TunedMethod], width: int = 80, height: int = 20,
                      colorless: bool | None = None) -> str:
    """Validation score against the learning rate (log x), one line per method; '' when no
    method has two scored rates."""
    lines = [(m, [(math.log10(lr), s) for lr, s, _ in m.curve if s is not None and math.isfinite(s)])
             for m in methods]
    lines = [(m, pts) for m, pts in lines if pts]
    if not lines or max(len(p) for _, p in lines) < 2:
        return ""
    xs = [x for _, pts in lines for x, _ in pts]
    ys = [y for _, pts in lines for _, y in pts]
    x_lo, x_hi = min(xs) - 0.15, max(xs) + 0.15
    pad = max((max(ys) - min(ys)) * 0.1, 0.005)
    y_lo, y_hi = min(ys) - pad, max(ys) + pad
    metric = short_name(methods[0].metric)
    title = f"{methods[0].preset}: validation {metric} vs learning rate"

    marks = dict(zip((m.method for m, _ in lines), MARKERS * (len(lines) // len(MARKERS) + 1)))

    def draw(plot: Any) -> None:
        # no legend box (it would hide the low rates' points): each method's points carry its
        # own marker, named under the chart, and a line joins them
        for _, pts in lines:
            if len(pts) > 1:
                plot.series([x for x, _ in pts], [y for _, y in pts], marker="braille", lines=True)
        for m, pts in lines:
            plot.series([x for x, _ in pts], [y for _, y in pts], marker=marks[m.method])
        plot.lim("x", x_lo, x_hi)
        plot.lim("y", y_lo, y_hi)
        powers = list(range(math.ceil(x_lo), math.floor(x_hi) + 1))
        if powers:
            plot.ticks("x", powers, [f"1e{p}" for p in powers])
        ticks = nice_ticks(y_lo, y_hi, max(height // 3, 2))
        if len(ticks) >= 2:
            plot.ticks("y", ticks, [tick_label(t, ticks) for t in ticks])
        plot.labels("learning rate (log)", f"validation {metric}")

    text = _build(width, height, title, _colorless(colorless), draw)
    text += "\n" + "   ".join(f"{marks[m.method]} {m.method}" for m, _ in lines)
    failed = [f"{m.method} {lr:.3g}: {status}" for m in methods for lr, s, status in m.curve if s is None]
    if failed:
        text += "\nnot drawn (no validation score): " + "; ".join(failed)
    return text


def tuning_lines(records: Sequence[RunRecord], width: int = 80, height: int = 18,
                 colorless: bool | None = None) -> list[Any]:
    """What `ftbench compare` adds for tuned runs, per preset: the table and the chart."""
    methods = tuned_methods(records)
    out: list[Any] = []
    for preset in dict.fromkeys(m.preset for m in methods):
        same = [m for m in methods if m.preset == preset]
        out.append(tuning_table(same))
        chart = sensitivity_chart(same, width, height, colorless)
        if chart:
            out.append(chart)
    return out
