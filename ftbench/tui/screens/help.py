"""Help: what each screen is for and every key, read from the bindings themselves.

Opened with ? or F1 anywhere, or "Help" in the command palette (ctrl+p). The keys come from
the screens' and the app's `BINDINGS`, so the help cannot drift from what the keys do.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("1", "Presets", "the built-in benchmarks; r runs the highlighted one (choose methods, "
                     "seeds, max steps, train and eval sizes)"),
    ("2", "Live", "the run in progress: step, clock and ETA, loss, evaluation, memory, log"),
    ("3", "Runs", "every saved run, newest first; / filters, s sorts, space selects, "
                  "c compares, enter opens one"),
    ("4", "Compare", "tables, overlaid curves and Pareto fronts; steady-state throughput; "
                     "a warning when budgets differ (b groups by budget)"),
)


def _keys(bindings: Iterable[Any]) -> list[tuple[str, str]]:
    out = []
    for binding in bindings:
        if isinstance(binding, tuple):
            binding = Binding(*binding)
        if not binding.description or binding.action.startswith("help"):
            continue
        key = binding.key_display or ", ".join(
            {"slash": "/", "question_mark": "?", "escape": "esc", "space": "space",
             "enter": "enter"}.get(k.strip(), k.strip()) for k in binding.key.split(","))
        out.append((key, binding.description))
    return out


def help_text() -> Table:
    # cycle: ftbench.tui.app imports this module; the app and the screens whose keys are listed
    # are imported here instead
    from ftbench.tui.app import FtbenchApp
    from ftbench.tui.screens.compare import CompareScreen
    from ftbench.tui.screens.live import LiveScreen
    from ftbench.tui.screens.presets import PresetsScreen
    from ftbench.tui.screens.runs import RunsScreen

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row(Text("Screens", style="bold underline"), "")
    for key, name, what in SCREENS:
        table.add_row(f"{key}  {name}", what)
    table.add_row("", "")
    for title, screen in (("Presets", PresetsScreen), ("Live", LiveScreen),
                          ("Runs", RunsScreen), ("Compare", CompareScreen)):
        keys = _keys(screen.BINDINGS)
        if keys:
            table.add_row(Text(f"Keys · {title}", style="bold underline"), "")
            for key, what in keys:
                table.add_row(key, what)
    table.add_row(Text("Keys · everywhere", style="bold underline"), "")
    for key, what in _keys(FtbenchApp.BINDINGS):
        table.add_row(key, what)
    table.add_row("? / F1", "this help")
    table.add_row("ctrl+p", "command palette: every action by name (type \"help\", \"compare\"…)")
    table.add_row("esc", "close a dialog or this help")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", show=False, id="help.close"),
        Binding("question_mark", "dismiss", "Close", show=False, id="help.close_question_mark"),
        Binding("f1", "dismiss", "Close", show=False, id="help.close_f1"),
        Binding("q", "dismiss", "Close", show=False, id="help.close_q"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog", classes="dialog") as box:
            box.border_title = "ftbench help"
            box.border_subtitle = "esc closes"
            yield Static(help_text(), id="help-text")

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(None)
