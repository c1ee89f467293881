"""The line at the top of every screen: where you are, where you can go, what is training."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

SCREENS = (("presets", "1", "Presets"), ("live", "2", "Live"), ("runs", "3", "Runs"),
           ("compare", "4", "Compare"))


class NavBar(Static):
    DEFAULT_CSS = """
    NavBar { height: 1; width: 1fr; background: $panel; }
    """

    current: reactive[str] = reactive("presets")
    activity: reactive[str] = reactive("")

    def __init__(self, current: str) -> None:
        super().__init__()
        self.set_reactive(NavBar.current, current)

    def on_mount(self) -> None:
        if hasattr(self.app, "activity"):
            self.watch(self.app, "activity", self._follow)

    def _follow(self, activity: str) -> None:
        self.activity = activity

    def render(self) -> Content:
        markup = "[bold $accent] ftbench [/]"
        for mode, key, label in SCREENS:
            if mode == self.current:
                markup += f"[@click=app.switch_mode('{mode}')][reverse bold] {key} {label} [/][/]"
            else:
                markup += f"[@click=app.switch_mode('{mode}')] [dim]{key}[/] {label} [/]"
        left = Content.from_markup(markup)
        style = "$text-warning" if "cancel" in self.activity else "$text-success"
        right = Content.styled(self.activity + " ", style) if self.activity else Content("")
        gap = max(self.size.width - left.cell_length - right.cell_length, 1)
        if left.cell_length + right.cell_length + 1 > self.size.width > 0:
            right = right.truncate(max(self.size.width - left.cell_length - 1, 0), ellipsis=True)
        return Content.assemble(left, " " * gap, right)
