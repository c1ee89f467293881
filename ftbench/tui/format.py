"""Small, pure formatting helpers shared by the TUI's widgets (no Textual imports)."""

from __future__ import annotations

import math
from typing import Any

STATUS_STYLE = {
    "completed": "green", "cancelled": "yellow", "failed": "red", "diverged": "red",
    "running": "bold", "queued": "dim", "skipped": "dim",
}
STATUS_ICON = {
    "completed": "✓", "cancelled": "■", "failed": "✗", "diverged": "✗",
    "running": "▶", "queued": "·", "skipped": "–",
}


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


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


def fixed(value: Any, digits: int = 3) -> str:
    v = number(value)
    return "-" if v is None else f"{v:.{digits}f}"


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
    from ftbench.report.groups import PRIMARY_METRICS

    names = PRIMARY_METRICS.get(task, ("accuracy", "exact_match", "f1"))
    for name in names:
        v = number(metrics.get(name))
        if v is not None:
            return name, v
    return names[0], None


def peak_memory(memory: dict[str, Any]) -> tuple[str, float | None]:
    """The most specific peak a record has: torch allocator, then NVML, then process RSS."""
    for key, name in (("torch_peak_allocated_mb", "torch"), ("nvml_peak_used_mb", "NVML"),
                      ("process_peak_rss_mb", "RSS")):
        v = number(memory.get(key))
        if v is not None:
            return name, v
    return "", None


def one_line(text: str, limit: int = 200) -> str:
    """File contents in a message: printable, one line, bounded."""
    clean = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
