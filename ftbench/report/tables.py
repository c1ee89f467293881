"""Rich tables for a comparison. Returns renderables; printing is the caller's business.

One section (preset) gives one table on a wide terminal, or two narrower ones (results, then
cost) when one does not fit, so an 80-column terminal loses no column; when even those do not
fit, the ± spread and the trainable share go on a second line of the cell instead.

Every string that comes from a run file goes into a `rich.text.Text`, never through Rich
markup: a method called ``[bold]`` must print as itself, not restyle (or break) the table.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ftbench.report.groups import (
    LOWER_METRICS, MEMORY_KEYS, MEMORY_NAMES, NEUTRAL_METRICS, RATE_KEYS, WHOLE_RUN_MARK, Comparison, Group,
    ReferenceRow, Section, Stat, fmt_count, fmt_number, fmt_pct, fmt_stat,
)
from ftbench.report.serving import serving_columns, serving_note

BEST_STYLE = "bold green"
WARNING_STYLE = "bold red"
REFERENCE_STYLE = "dim italic"
STATUS_STYLES = {"completed": "", "failed": "red", "diverged": "red", "cancelled": "yellow"}


@dataclass(frozen=True)
class Column:
    """A numeric column: the stat key it shows, how to format it, and which way is better."""

    key: str
    header: str
    kind: str               # metric | count | int | seconds | rate | mb | pct | fraction
    better: str | None      # "max", "min" or None (no highlight)

    def title(self, compact: bool) -> str:
        """The header; on narrow terminals the unit goes on a second line to save width."""
        if not compact:
            return self.header
        return {"samples/s": "samples\nper s", "w/o head": "w/o\nhead"}.get(
            self.header, self.header.replace(" ", "\n", 1))


def _metric_header(key: str) -> str:
    name = key.removeprefix("metrics.")
    return {"exact_match": "EM", "start_accuracy": "start acc", "end_accuracy": "end acc",
            "no_answer_rate": "no-ans", "precision": "prec", "perplexity": "ppl",
            "response_loss": "resp loss", "general_loss": "gen loss",
            "forgetting": "forget"}.get(name, name)


def _better(key: str) -> str | None:
    name = key.removeprefix("metrics.")
    return None if name in NEUTRAL_METRICS else "min" if name in LOWER_METRICS else "max"


# causal-lm: the task metrics a table shows (the rest are in CSV / JSON), the base model's
# score beside the tuned one, and the rates of every real token and of the trained ones
LM_TABLE_METRICS = ("metrics.exact_match", "metrics.perplexity", "metrics.forgetting")


def _present(section: Section, key: str, references: bool) -> bool:
    if any(g.mean(key) is not None for g in section.groups):
        return True
    return references and any(key in r.values for r in section.references)


def section_columns(section: Section, *, references: bool = True) -> tuple[list[Column], list[Column]]:
    """(result columns, cost columns) that have at least one value to show."""
    keys = section.metric_keys(references)
    if section.task == "causal-lm":
        keys = [k for k in keys if k in LM_TABLE_METRICS]
    results = [Column(k, _metric_header(k), "metric", _better(k)) for k in keys]
    if section.task == "causal-lm":
        for i, column in enumerate(results):   # the base model's score before the tuned one
            base = column.key.replace("metrics.", "baseline.", 1)
            if column.key == "metrics.exact_match" and _present(section, base, False):
                results.insert(i, Column(base, "base EM", "metric", None))
                break
    if results and _present(section, "timing.steps", False):
        # How long each run trained: a 5-step run beside a 50-step one must be visible.
        results.insert(0, Column("timing.steps", "steps", "int", None))
    candidates = [
        Column("params.trainable", "trainable", "count", "min"),
        Column("params.trainable_without_head", "w/o head", "count", "min"),
        Column("timing.train_s", "train s", "seconds", "min"),
        # Steady state after warm-up where measured (RATE_KEYS); † marks whole-run figures.
        Column("rate.samples_per_s", "samples/s", "rate", "max"),
        *((Column("rate.tokens_per_s", "tokens/s", "rate", "max"),
           Column("rate.trained_tokens_per_s", "trained tok/s", "rate", "max"))
          if section.task == "causal-lm" else ()),
        Column("rate.mfu", "MFU", "fraction", "max"),  # GPU runs on a known device only
        *(Column(k, f"{MEMORY_NAMES[k]} MB", "mb", "min") for k in MEMORY_KEYS),
    ]
    cost = [c for c in candidates if _present(section, c.key, references)]
    if not cost and _present(section, "params.trainable_pct", references):
        cost = [Column("params.trainable", "trainable", "count", "min")]
    return results, cost


def best_groups(groups: Sequence[Group], column: Column) -> set[int]:
    """ids of the groups holding the best mean of a column (all of them on a tie).

    Nothing is highlighted when fewer than two groups have a value: a lone value is not "best".
    """
    if column.better is None:
        return set()
    values = [(id(g), v) for g in groups if (v := g.mean(column.key)) is not None]
    if len(values) < 2:
        return set()
    pick = max if column.better == "max" else min
    best = pick(v for _, v in values)
    return {gid for gid, v in values if math.isclose(v, best, rel_tol=1e-9, abs_tol=1e-12)}


def _trainable_cell(count: Stat, pct: Stat, sep: str) -> str:
    text = fmt_count(count.mean)
    if pct.mean is not None:
        text += f"\n{fmt_pct(pct.mean)}" if sep == "\n" else f" ({fmt_pct(pct.mean)})"
    return text


def _status_text(group: Group, sep: str) -> Text:
    counts = group.status_counts
    if len(counts) == 1:
        status = next(iter(counts))
        return Text(status, style=STATUS_STYLES.get(status, ""))
    text = Text()
    for i, (status, count) in enumerate(counts.items()):
        if i:
            text.append(sep)
        text.append(f"{count} {status}", style=STATUS_STYLES.get(status, ""))
    return text


def _title(section: Section, part: str | None) -> str:
    """``quickstart: minilm-l6 on rotten_tomatoes — results`` (constant model/dataset only)."""
    title = section.preset + (f" [{section.budget}]" if section.budget else "")
    if len(section.models) == 1 and len(section.datasets) == 1:
        title += f": {section.models[0]} on {section.datasets[0]}"
    elif len(section.models) == 1:
        title += f": {section.models[0]}"
    elif len(section.datasets) == 1:
        title += f": {section.datasets[0]}"
    if section.task != "classification":
        title += f" ({section.task})"
    return f"{title} — {part}" if part else title


def _title_text(section: Section, title: str) -> Text:
    """The title, then the section's warnings in red: a reader sees them before any figure."""
    text = Text(title)
    for warning in section.warnings:
        text.append("\n" + warning, style=WARNING_STYLE)
    return text


def _caption(section: Section, references: bool) -> str | None:
    lines = list(section.notes)
    if section.rate_note:
        lines.append(section.rate_note)
    if not section.per_run and any(g.n > 1 for g in section.groups):
        lines.append("mean ± sample std over seeds; n = completed runs")
    if references and section.references:
        lines.append("reported rows: the write-up's figures, not measured here; "
                     "never averaged or put on fronts")
        if any("memory.torch_peak_allocated_mb" in r.values for r in section.references):
            lines.append("reported peak memory is shown under torch MB (source not stated)")
    return "\n".join(lines) or None


class _Builder:
    """Builds one table for a section from a chosen subset of columns."""

    def __init__(self, section: Section, compact: bool, references: bool) -> None:
        self.section = section
        self.compact = compact
        self.references = references
        self.stat_sep = "\n±" if compact else " ± "
        self.pct_sep = "\n" if compact else " "
        self.vary_model = len(section.models) > 1
        self.vary_data = len(section.datasets) > 1

    def table(self, columns: Sequence[Column], title: str, status: bool, caption: bool,
              count: bool = True) -> Table:
        caption_text = _caption(self.section, self.references) if caption else None
        # Titles name the preset, model and dataset read from run files: Text, not markup.
        # Warnings go on the first table of a section only (the one with the status column).
        table = Table(title=_title_text(self.section, title) if status else Text(title),
                      box=box.SIMPLE_HEAD, padding=(0, 1), title_justify="left",
                      caption=Text(caption_text) if caption_text else None,
                      caption_justify="left", header_style="bold", collapse_padding=True)
        longest = max((len(g.key.method) for g in self.section.groups), default=6)
        table.add_column("method", overflow="fold", min_width=min(longest, 16))
        if self.vary_model:
            table.add_column("model", overflow="fold")
        if self.vary_data:
            table.add_column("dataset", overflow="fold")
        self.count = count
        if count:
            table.add_column("seed" if self.section.per_run else "n", justify="right")
        for col in columns:
            table.add_column(col.title(self.compact), justify="right", overflow="fold")
        if status:
            table.add_column("status", overflow="fold")
        best = {col.key: best_groups(self.section.groups, col) for col in columns}
        for group in self.section.groups:
            table.add_row(*self._group_cells(group, columns, best, status))
        if self.references:
            for ref in self.section.references:
                table.add_row(*self._reference_cells(ref, columns, status), style=REFERENCE_STYLE)
        return table

    def _identity(self, method: str, model: str, dataset: str, count: str) -> list[Text]:
        cells = [Text(method)]
        if self.vary_model:
            cells.append(Text(model))
        if self.vary_data:
            cells.append(Text(dataset))
        if self.count:
            cells.append(Text(count))
        return cells

    def _group_cells(self, group: Group, columns: Sequence[Column],
                     best: dict[str, set[int]], status: bool) -> list[Text]:
        count = (str(group.runs[0].seed) if group.runs[0].seed is not None else "-") \
            if self.section.per_run else str(group.n)
        cells = self._identity(group.name, group.key.model, group.key.dataset, count)
        for col in columns:
            if col.key == "params.trainable":
                text = _trainable_cell(group.stat(col.key), group.stat("params.trainable_pct"),
                                       self.pct_sep)
            else:
                mark = WHOLE_RUN_MARK if col.key in RATE_KEYS and group.whole_run_rates else ""
                text = fmt_stat(group.stat(col.key), col.kind, self.stat_sep, mark)
            cells.append(Text(text, style=BEST_STYLE if id(group) in best[col.key] else ""))
        if status:
            cells.append(_status_text(group, "\n" if self.compact else ", "))
        return cells

    def _reference_cells(self, ref: ReferenceRow, columns: Sequence[Column],
                         status: bool) -> list[Text]:
        values = ref.values
        cells = self._identity(ref.method, "-", "-", "-")
        for col in columns:
            if col.key == "params.trainable":
                count, pct = values.get("params.trainable"), values.get("params.trainable_pct")
                text = fmt_count(count) if count is not None else ("~" if pct is not None else "-")
                if pct is not None:
                    text += f"\n{fmt_pct(pct)}" if self.compact else f" ({fmt_pct(pct)})"
            else:
                text = fmt_number(values.get(col.key), col.kind)
            cells.append(Text(text))
        if status:
            cells.append(Text(ref.label))
        return cells


def _fits(table: Table, width: int) -> bool:
    """Whether a table's natural width fits, measured by Rich itself (no printing)."""
    # Rich clamps a measurement to the console width, so measure on an unbounded console.
    console = Console(width=100_000, file=io.StringIO(), color_system=None)
    return console.measure(table).maximum <= width


def section_tables(section: Section, width: int | None = None, *,
                   references: bool = True) -> list[Table]:
    """The tables for one section, laid out for ``width`` columns (None: no limit).

    The widest layout that fits wins: one table; else results and cost tables; else the same
    two with two-line cells. Nothing is dropped, so an 80-column terminal shows every figure.
    Where runs measured their serving cost, a serving table follows (`serving_table`).
    """
    results, cost = section_columns(section, references=references)
    serving = serving_table(section, width)
    extra = [serving] if serving is not None else []
    wide = _Builder(section, False, references)
    combined = wide.table([*results, *cost], _title(section, None), True, True)
    if width is None or not (results and cost) or _fits(combined, width):
        return [combined, *extra]
    narrow = _Builder(section, True, references)
    tables = []
    for columns, part, status, caption, count in ((results, "results", True, False, True),
                                                  (cost, "cost", False, True, False)):
        table = wide.table(columns, _title(section, part), status, caption, count)
        if not _fits(table, width):
            table = narrow.table(columns, _title(section, part), status, caption, count)
        tables.append(table)
    return [*tables, *extra]


def serving_table(section: Section, width: int | None = None) -> Table | None:
    """The section's serving cost (size, latency, throughput), or None where no run measured it."""
    columns = [Column(*c) for c in serving_columns(section.task) if _present(section, c[0], False)]
    if not columns:
        return None
    title = _title(section, "serving")
    table = _Builder(section, False, False).table(columns, title, False, False)
    if width is not None and not _fits(table, width):
        table = _Builder(section, True, False).table(columns, title, False, False)
    table.caption = Text(serving_note([r for g in section.groups for r in g.completed],
                                      section.task))
    return table


def comparison_tables(comparison: Comparison, width: int | None = None, *,
                      references: bool = True) -> list[Table]:
    """Every section's tables, in order. The TUI passes its pane width."""
    return [t for s in comparison.sections for t in section_tables(s, width, references=references)]

