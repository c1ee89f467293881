"""What every main screen shares: the navigation line on top, the footer at the bottom."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from ftbench.tui.widgets.navbar import NavBar


class MainScreen(Screen[None]):
    """A screen of one mode (presets, live, runs, compare)."""

    MODE: ClassVar[str] = ""

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()
