"""The engine's messages for the current queue, newest at the bottom."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ftbench.engine.events import Log
from ftbench.tui.format import one_line
from ftbench.tui.session import RunQueue

LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": ""}


class LogPane(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=1000, wrap=True, markup=False, highlight=False,
                         min_width=20)

        self._queue: RunQueue | None = None
        self._shown = 0
        self._hint = ""
        self._width = 0

    def on_mount(self) -> None:
        self.border_title = "Log"

    def on_resize(self) -> None:
        # Lines are wrapped when written: a new width means writing them again.
        if self.size.width != self._width:
            self._width = self.size.width
            queue, self._queue = self._queue, None
            self.sync(queue, self._hint)

    def sync(self, queue: RunQueue | None, idle_hint: str = "") -> None:
        """Show the queue's log lines not shown yet (all of them for a new queue)."""
        self._hint = idle_hint
        if queue is not self._queue or queue is None:
            self.clear()
            self._queue, self._shown = queue, 0
            if queue is None and idle_hint:
                self.note(idle_hint)
        if queue is None:
            return
        entries = queue.log[self._shown:]
        for item, event in entries:
            self.add(event, item.spec.method.name if item is not None else None)
        self._shown += len(entries)

    def add(self, event: Log, method: str | None = None) -> None:
        line = Text()
        if event.level != "info":
            line.append(f"{event.level}: ", style=LEVEL_STYLE.get(event.level, ""))
        if method:
            line.append(f"[{method}] ", style="dim")
        line.append(one_line(event.message, 500), style=LEVEL_STYLE.get(event.level, ""))
        self._write(line)

    def note(self, text: str, style: str = "dim") -> None:
        """A line outside the queue's log (the idle hint)."""
        self._write(Text(one_line(text, 500), style=style))

    def _write(self, line: Text) -> None:
        """Wrap at the pane's width (RichLog otherwise measures the text on its own)."""
        width = self.scrollable_content_region.width
        self.write(line, width=width if width > 10 else None)
