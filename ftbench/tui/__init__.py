"""The ftbench TUI (Textual). Importing this package loads neither Textual nor torch;
`ftbench.tui.app` loads Textual, and torch loads only when a run starts (in its worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ftbench.prepare import Prepared


def main(runs_dir: str | None = None, start: "Prepared | None" = None,
         runner: "Callable[..., Any] | None" = None, gpus: tuple[int, ...] = ()) -> int:
    """Open the TUI on ``runs_dir`` (default: $FTBENCH_RUNS_DIR or ./runs); with ``start``
    (a preset's prepared runs) those runs start at once on the live screen; ``gpus``: the
    local GPUs (NVML indices) a multi-process ``runner`` uses, one Memory panel row each."""
    from ftbench.tui.app import run_app  # Textual loads only here: this package imports without it

    return run_app(runs_dir, start, runner, gpus)
