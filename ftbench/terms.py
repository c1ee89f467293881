"""Terms every front end shares, defined once: exit codes, number formats, JSON-safe values
and which peak memory a run reports. Pure Python: no torch, no Textual."""

from __future__ import annotations

import math
from typing import Any, Mapping

# --- exit codes (ftbench run, compare, export, ...) -------------------------------------------
EXIT_OK = 0
EXIT_FAILED = 1        # a run failed, diverged or was cancelled, or a record could not be saved
EXIT_USAGE = 2         # bad flags, bad preset, unknown names: one line on stderr
EXIT_INTERRUPTED = 130  # Ctrl+C (128 + SIGINT)


# --- numbers --------------------------------------------------------------------------------
def number(value: Any) -> float | None:
    """A finite number as float; None for anything else (bool, NaN, text, None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fixed(value: Any, digits: int = 3) -> str:
    """``0.912`` with ``digits`` decimals; ``-`` when the value is not a finite number."""
    v = number(value)
    return "-" if v is None else f"{v:.{digits}f}"


# --- JSON -----------------------------------------------------------------------------------
def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinity as None (they are not JSON: unavailable, not invented),
    numpy scalars as Python numbers and tuples as lists, through dicts and lists."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# --- memory ---------------------------------------------------------------------------------
PEAK_SOURCES: tuple[tuple[str, str], ...] = (
    ("torch_peak_allocated_mb", "torch"),  # the allocator: what the run itself held
    ("nvml_peak_used_mb", "NVML"),         # the whole GPU, as the driver saw it
    ("process_peak_rss_mb", "RSS"),        # host memory, where no GPU memory was measured
)


def peak_memory(memory: Mapping[str, Any]) -> tuple[str, float | None]:
    """The most specific peak a record has: torch allocator, then NVML, then process RSS.
    Returns (source, MB); ("", None) when none was measured."""
    for key, name in PEAK_SOURCES:
        v = number(memory.get(key))
        if v is not None:
            return name, v
    return "", None
