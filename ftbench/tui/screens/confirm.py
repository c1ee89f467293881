"""Confirmations: cancelling a run (and what the queue does next), quitting during a run."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Static


@dataclass(frozen=True)
class CancelChoice:
    """What the user chose in the cancel dialog."""

    stop_queue: bool  # also skip the runs queued after this one
    evaluate: bool    # evaluate at the cancel step before saving ("cancel and evaluate")


class CancelRunScreen(ModalScreen["CancelChoice | None"]):
    """Returns a `CancelChoice` (cancel this run, or it and the rest of the queue; with or
    without a last evaluation), or None (keep running)."""

    BINDINGS = [Binding("escape", "keep", "Keep running", id="cancel.keep")]

    def __init__(self, label: str, remaining: int) -> None:
        super().__init__()
        self.label = label
        self.remaining = remaining

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog") as box:
            box.border_title = "Cancel run?"
            text = Text.assemble(("Cancel ", ""), (self.label, "bold"), "? It stops after the "
                                 "current step and is saved at once as ", ("cancelled", "yellow"),
                                 " with everything measured so far.")
            if self.remaining:
                text.append(f"\n\n{self.remaining} more run{'s' if self.remaining > 1 else ''} "
                            "queued after it.")
            yield Static(text, id="confirm-text")
            yield Checkbox("Evaluate first (the metrics at this step)",
                           False, id="evaluate")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Keep running", id="keep")
                if self.remaining:
                    yield Button("Cancel, stop queue", variant="error", id="stop")
                    yield Button("Cancel, run next", variant="warning", id="continue")
                else:
                    yield Button("Cancel run", variant="error", id="stop")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "keep":
            self.dismiss(None)
            return
        evaluate = self.query_one("#evaluate", Checkbox).value
        self.dismiss(CancelChoice(stop_queue=event.button.id == "stop", evaluate=evaluate))

    def action_keep(self) -> None:
        self.dismiss(None)


class QuitScreen(ModalScreen[bool]):
    """Quit while training: the run in flight is cancelled and saved first."""

    BINDINGS = [Binding("escape", "stay", "Stay", id="quit.stay")]

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog", classes="dialog") as box:
            box.border_title = "Quit ftbench?"
            yield Static(Text.assemble((self.label, "bold"), " is training. Quitting cancels it "
                                       "(saved as ", ("cancelled", "yellow"), ") and skips the "
                                       "rest of the queue."))
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stay", id="stay")
                yield Button("Cancel run and quit", variant="error", id="quit")

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit")

    def action_stay(self) -> None:
        self.dismiss(False)
