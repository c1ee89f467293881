"""Exports: CSV (one flat row per run), Markdown (a README-ready table), JSON (the records).

CSV is for spreadsheets and pandas: every run one row, every measurement one column, no
averaging, so nothing is lost. Markdown is for people: one table per preset with mean ± std
per group, the reported figures marked, and the Pareto fronts named. JSON is the records
themselves (``record.to_dict()``), so a round trip through `parse_record` gives them back.

Writing to a file is atomic (temporary file in the same folder + `os.replace`): an
interrupted export leaves the old file or none, never half a table.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ftbench.errors import FtbenchError
from ftbench.report.groups import (
    IDENTITY_COLUMNS, MEMORY_NAMES, RATE_KEYS, WHOLE_RUN_MARK, Comparison, Section, Stat,
    build_comparison, flatten_record, fmt_count, fmt_number, fmt_pct, fmt_stat,
)
from ftbench.report.serving import serving_columns, serving_note
from ftbench.report.tables import Column, best_groups, section_columns
from ftbench.results.record import RunRecord
from ftbench.results.store import _umask
from ftbench.terms import json_safe

FORMATS: tuple[str, ...] = ("csv", "md", "json")
_SECTION_ORDER = ("params", "timing", "memory", "metrics", "baseline", "serving")


class ExportError(FtbenchError):
    """An export that cannot be written; one line for the user."""


# --- CSV ------------------------------------------------------------------------------------

def csv_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Identity columns, then params.*, timing.*, memory.*, metrics.* in first-seen order.

    The order is stable for a given set of runs, so two exports of the same runs diff cleanly.
    """
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    rest = [k for k in seen if k not in IDENTITY_COLUMNS]
    ordered = sorted(rest, key=lambda k: (_SECTION_ORDER.index(k.split(".", 1)[0])
                                          if k.split(".", 1)[0] in _SECTION_ORDER else 99))
    return [*IDENTITY_COLUMNS, *ordered]


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def to_csv(records: Sequence[RunRecord]) -> str:
    """One row per run, flat columns; missing values are empty cells."""
    rows = [flatten_record(r) for r in records]
    columns = csv_columns(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
    return out.getvalue()


# --- JSON -----------------------------------------------------------------------------------

def to_json(records: Sequence[RunRecord]) -> str:
    """The records as a JSON list, as stored in runs/ (a NaN read from a hand-edited file
    becomes null: NaN is not JSON, and other tools would refuse the whole export)."""
    return json.dumps(json_safe([r.to_dict() for r in records]), indent=2, allow_nan=False,
                      default=str) + "\n"


def comparison_json(comparison: Comparison,
                    problems: Sequence[tuple[Path, str]] = ()) -> dict[str, Any]:
    """The machine-readable comparison for ``compare --json``: sections (groups with
    mean/std/n, reference rows, Pareto members), per-run rows, and skipped files."""
    return {
        "format": "ftbench-compare",
        "version": 1,
        **comparison.to_dict(),
        "skipped": [{"path": str(path), "problem": problem} for path, problem in problems],
    }


def dumps_json(data: Any) -> str:
    """JSON text without NaN/Infinity (not valid JSON): they become null."""
    return json.dumps(json_safe(data), indent=2, default=str) + "\n"




# --- Markdown -------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    """Cell text that cannot break the table: pipes escaped, newlines flattened."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_section(section: Section, references: bool) -> list[str]:
    results, cost = section_columns(section, references=references)
    columns: list[Column] = [*results, *cost]
    vary_model = len(section.models) > 1
    vary_data = len(section.datasets) > 1
    heading = f"### {section.preset}" + (f" ({_md_escape(section.budget)})"
                                         if section.budget else "")
    context = []
    if not vary_model:
        context.append(f"model `{section.models[0]}`")
    if not vary_data:
        context.append(f"dataset `{section.datasets[0]}`")
    context.append(f"task {section.task}")
    header = ["method"] + (["model"] if vary_model else []) + (["dataset"] if vary_data else [])
    header += ["seed" if section.per_run else "n"] + [_md_header(c) for c in columns] + ["status"]
    identity = len(header) - len(columns) - 2  # method [model] [dataset]; then n, values, status
    align = ["---"] * identity + ["---:"] * (len(columns) + 1) + ["---"]
    lines = [heading, "", ", ".join(context), ""]
    for warning in section.warnings:
        lines += [f"> **Warning:** {_md_escape(warning.removeprefix('⚠ '))}", ""]
    lines += [_md_row(header), _md_row(align)]
    best = {c.key: best_groups(section.groups, c) for c in columns}
    for g in section.groups:
        ident = [g.key.method] + ([g.key.model] if vary_model else []) + \
            ([g.key.dataset] if vary_data else [])
        count = (str(g.runs[0].seed) if g.runs[0].seed is not None else "-") \
            if section.per_run else str(g.n)
        cells = [_md_escape(x) for x in ident] + [count]
        for c in columns:
            if c.key == "params.trainable":
                text = _trainable(g.stat("params.trainable"), g.stat("params.trainable_pct"))
            else:
                mark = WHOLE_RUN_MARK if c.key in RATE_KEYS and g.whole_run_rates else ""
                text = fmt_stat(g.stat(c.key), c.kind, mark=mark)
            cells.append(f"**{text}**" if id(g) in best[c.key] and text != "-" else text)
        status = ", ".join(f"{n} {s}" if len(g.status_counts) > 1 else s
                           for s, n in g.status_counts.items())
        cells.append(_md_escape(status))
        lines.append(_md_row(cells))
    if references:
        for ref in section.references:
            values = ref.values
            ident = [ref.method] + (["-"] if vary_model else []) + (["-"] if vary_data else [])
            cells = [f"_{_md_escape(x)}_" for x in ident] + ["-"]
            for c in columns:
                if c.key == "params.trainable":
                    count_v, pct = values.get("params.trainable"), values.get("params.trainable_pct")
                    text = fmt_count(count_v) if count_v is not None else "-"
                    if pct is not None:
                        text += f" ({fmt_pct(pct)})"
                else:
                    text = fmt_number(values.get(c.key), c.kind)
                cells.append(f"_{text}_" if text != "-" else text)
            cells.append(f"_{_md_escape(ref.label)}_")
            lines.append(_md_row(cells))
    lines.append("")
    lines.extend(_md_notes(section, references))
    lines.extend(_md_serving(section))
    return lines


def _md_serving(section: Section) -> list[str]:
    """The serving table (size, latency, throughput) where runs measured it."""
    columns = [Column(*c) for c in serving_columns(section.task)
               if any(g.mean(c[0]) is not None for g in section.groups)]
    if not columns:
        return []
    header = ["method", "seed" if section.per_run else "n"] + [c.header for c in columns]
    lines = [f"#### {section.preset}: serving", "", _md_row(header),
             _md_row(["---"] + ["---:"] * (len(columns) + 1))]
    best = {c.key: best_groups(section.groups, c) for c in columns}
    for g in section.groups:
        count = (str(g.runs[0].seed) if g.runs[0].seed is not None else "-") \
            if section.per_run else str(g.n)
        cells = [_md_escape(g.key.method), count]
        for c in columns:
            text = fmt_stat(g.stat(c.key), c.kind)
            cells.append(f"**{text}**" if id(g) in best[c.key] and text != "-" else text)
        lines.append(_md_row(cells))
    note = serving_note([r for g in section.groups for r in g.completed], section.task)
    return lines + [""] + [f"- {_md_escape(line)}" for line in note.splitlines()] + [""]


def _md_header(column: Column) -> str:
    """Full metric names in Markdown: a README has the width a terminal lacks."""
    if column.kind != "metric":
        return column.header
    return column.key.removeprefix("metrics.").replace("baseline.", "base ", 1)


def _trainable(count: Stat, pct: Stat) -> str:
    text = fmt_count(count.mean)
    return text + (f" ({fmt_pct(pct.mean)})" if pct.mean is not None else "")


def _md_notes(section: Section, references: bool) -> list[str]:
    notes = []
    if not section.per_run and any(g.n > 1 for g in section.groups):
        notes.append("Values are mean ± sample standard deviation over seeds; "
                     "n counts completed runs. Best value per column in bold.")
    else:
        notes.append("Best value per column in bold.")
    if section.rate_note:
        notes.append(section.rate_note[0].upper() + section.rate_note[1:] + ".")
    for front, what in ((section.params_front, "trainable parameters"),
                        (section.memory_front, None), (section.time_front, "training time"),
                        (section.latency_front, "serving latency"),
                        (section.size_front, "size on disk")):
        if front is None or front.points < 2:
            continue
        cost = what or f"peak {MEMORY_NAMES.get(front.cost, front.cost)} memory"
        names = " → ".join(_md_escape(g.label) for g in front.members)
        notes.append(f"Pareto front, {front.metric.removeprefix('metrics.')} vs {cost}: {names}.")
    if references and section.references:
        sources = "; ".join(dict.fromkeys(_md_escape(r.note or r.source)
                                          for r in section.references))
        notes.append(f"_Italic rows_ are figures reported by the write-up ({sources}), "
                     "not measured here; they are not averaged or put on fronts.")
        if any("memory.torch_peak_allocated_mb" in r.values for r in section.references):
            notes.append("Reported peak memory is shown under torch MB; the write-up does not "
                         "say how it was measured.")
    notes.extend(_md_escape(n) for n in section.notes)
    return [f"- {n}" for n in notes] + [""]


def to_markdown(comparison: Comparison, *, references: bool = True) -> str:
    """README-ready Markdown: one table per preset with mean ± std, then notes."""
    lines: list[str] = []
    for section in comparison.sections:
        lines.extend(_md_section(section, references))
    return "\n".join(lines).rstrip() + "\n"


# --- writing --------------------------------------------------------------------------------

def export_text(fmt: str, records: Sequence[RunRecord], comparison: Comparison | None = None,
                *, references: bool = True) -> str:
    """The export in one of `FORMATS`."""
    if fmt == "csv":
        return to_csv(records)
    if fmt == "json":
        return to_json(records)
    if fmt == "md":
        return to_markdown(comparison or build_comparison(records), references=references)
    raise ExportError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and `os.replace`.

    Refuses a directory (or a path ending in a separator) and a missing parent folder,
    rather than creating folders the user did not ask for; on any failure the temporary
    file is removed, so no partial file is ever left behind.
    """
    raw = os.fspath(path)
    target = Path(raw)
    if raw.endswith(("/", os.sep)) or target.is_dir():
        raise ExportError(f"cannot write to {raw}: it is a directory; give a file name")
    folder = target.parent
    if not folder.is_dir():
        raise ExportError(f"cannot write to {raw}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ExportError(f"cannot write to {raw}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the export from others
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write to {raw}: {exc.strerror or exc}") from exc
        raise
    return target
