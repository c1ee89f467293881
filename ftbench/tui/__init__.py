"""The ftbench TUI (Textual). Importing this package loads neither Textual nor torch;
`ftbench.tui.app` loads Textual, and torch loads only when a run starts (in its worker)."""

from __future__ import annotations


def main(runs_dir: str | None = None) -> int:
    """Open the TUI on ``runs_dir`` (default: $FTBENCH_RUNS_DIR or ./runs)."""
    from ftbench.tui.app import run_app

    return run_app(runs_dir)
