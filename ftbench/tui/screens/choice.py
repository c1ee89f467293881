"""A small modal list: pick one of a few choices (sort column, preset for Compare)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class ChoiceScreen(ModalScreen["str | None"]):
    BINDINGS = [Binding("escape", "dismiss_none", "Back", id="choice.back")]

    def __init__(self, title: str, choices: list[tuple[str, str]], current: str | None = None,
                 note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices
        self.current = current
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-dialog", classes="dialog") as box:
            box.border_title = self.title_text
            options = [Option(Text(label), id=key) for key, label in self.choices]
            yield OptionList(*options, id="choice-list")
            if self.note:
                yield Static(Text(self.note, style="dim"), id="choice-note")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        keys = [key for key, _ in self.choices]
        if self.current in keys:
            options.highlighted = keys.index(self.current)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
