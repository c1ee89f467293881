"""Small, pure formatting helpers shared by the TUI's widgets (no Textual imports)."""

from __future__ import annotations

from typing import Any

from ftbench.tasks.info import primary_value
from ftbench.terms import fixed, number, peak_memory
from ftbench.text import one_line

__all__ = ["STATUS_ICON", "STATUS_STYLE", "duration", "fixed", "number", "mb", "count", "one_line",
           "peak_memory", "primary_metric", "rate", "short_time"]

STATUS_STYLE = {
    "completed": "green", "cancelled": "yellow", "failed": "red", "diverged": "red",
    "running": "bold", "queued": "dim", "skipped": "dim",
}
STATUS_ICON = {
    "completed": "✓", "cancelled": "■", "failed": "✗", "diverged": "✗",
    "running": "▶", "queued": "·", "skipped": "–",
}


def duration(seconds: float | None) -> str:
    """``0:07``, ``2:31``, ``1:02:03``; ``-`` when unknown."""
    s = number(seconds)
    if s is None or s < 0:
        return "-"
    total = int(round(s))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def mb(value: Any) -> str:
    v = number(value)
    return "-" if v is None else f"{v:,.0f} MB"


def rate(value: Any) -> str:
    v = number(value)
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def count(value: Any) -> str:
    v = number(value)
    return "-" if v is None else f"{int(v):,}"


def short_time(iso: str | None) -> str:
    """``2026-11-28T08:02:00+00:00`` -> ``2026-11-28 08:02`` (UTC, as stored)."""
    if not iso:
        return "-"
    return iso.replace("T", " ")[:16]


def primary_metric(metrics: dict[str, Any], task: str) -> tuple[str, float | None]:
    """(name, value) of the task's primary metric in a record's metrics."""
    return primary_value(task, {k: v for k, v in metrics.items() if number(v) is not None})
