"""The dialog that starts a preset: methods, seeds, max steps, train/eval sizes, offline.

The methods list has focus first (space toggles a method, enter starts), so the keys the
dialog names work at once.

It expands the choice with `ftbench.presets.expand` (the CLI's own path), so an override the
CLI would refuse is refused here, with the same message, before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, SelectionList, Static

from ftbench.errors import FtbenchError

if TYPE_CHECKING:
    from ftbench.rules import Rule
    from ftbench.spec import Preset, RunSpec


@dataclass(frozen=True)
class StartRequest:
    preset: "Preset"
    specs: "list[RunSpec]"
    tune: bool = False  # search each method's learning rate first (ftbench.tune, docs/tuning.md)


class MethodsList(SelectionList[str]):
    """The methods: space toggles the highlighted one; enter starts (it does not toggle)."""

    BINDINGS = [Binding("enter", "screen.start", "Start", show=False, id="start.enter")]


class StartScreen(ModalScreen["StartRequest | None"]):
    BINDINGS = [
        Binding("escape", "dismiss_none", "Back", id="start.back"),
        Binding("ctrl+s", "start", "Start", show=False, id="start.start"),
    ]

    def __init__(self, preset: "Preset") -> None:
        super().__init__()
        self.preset = preset

    def compose(self) -> ComposeResult:
        preset = self.preset
        budget = (f"preset: {preset.train.max_steps}" if preset.train.max_steps
                  else f"preset: {preset.train.epochs:g} epoch(s)")
        with Vertical(id="start-dialog") as dialog:
            dialog.border_title = f"Run {preset.name}"
            yield Label("Methods [dim](space toggles, enter starts)[/]")
            yield MethodsList(*((m.name, m.name, True) for m in preset.methods),
                              id="start-methods")
            with Horizontal(id="start-numbers"):
                yield Label("Seeds", classes="start-label")
                yield Input(str(preset.seeds), type="integer", id="start-seeds",
                            tooltip="Seeds per method (runs differ only in seed)")
                yield Label("Max steps", classes="start-label")
                yield Input(placeholder=budget, type="integer", id="start-steps",
                            tooltip="Stop each run after this many optimizer steps")
            with Horizontal(id="start-sizes"):
                yield Label("Train size", classes="start-label")
                yield Input(placeholder=f"preset: {preset.data.train_size or 'all'}",
                            type="integer", id="start-train-size",
                            tooltip="Training examples (a subset of the dataset)")
                yield Label("Eval size", classes="start-label")
                yield Input(placeholder=f"preset: {preset.data.eval_size or 'all'}",
                            type="integer", id="start-eval-size",
                            tooltip="Evaluation examples: every evaluation reads all of them")
            from ftbench.presets import runnable_here

            offline_already = not runnable_here(preset).startswith("hub")
            yield Checkbox("Offline: not needed, the model and data are bundled" if offline_already
                           else "Offline: bundled model and data instead of the hub",
                           id="start-offline", disabled=offline_already)
            yield Checkbox("Tune each method's learning rate first (validation split)",
                           id="start-tune")
            yield Static(id="start-summary")
            with Horizontal(id="start-buttons"):
                yield Button("Back", id="start-back")
                yield Button("Start", variant="primary", id="start-go")

    def on_mount(self) -> None:
        blink = getattr(self.app, "cursor_blink", True)
        for field in self.query(Input):
            field.cursor_blink = blink
        self.query_one(MethodsList).focus()
        self.update_summary()

    # --- reading the form -----------------------------------------------------------------
    def _int(self, field_id: str, name: str, rule: "Rule") -> int | None:
        """A number field, checked by the same rule as the preset key and the CLI flag."""
        text = self.query_one(f"#{field_id}", Input).value.strip()
        if not text:
            return None
        return rule.parse(text, name)  # type: ignore[no-any-return]

    def build(self) -> "list[RunSpec]":
        from ftbench.presets import Overrides, expand
        from ftbench.spec import SEEDS, SIZE, STEPS

        chosen = set(self.query_one(SelectionList).selected)
        methods = tuple(m.name for m in self.preset.methods if m.name in chosen)
        if not methods:
            raise FtbenchError("choose at least one method")
        overrides = Overrides(
            methods=methods,
            seeds=self._int("start-seeds", "Seeds", SEEDS),
            max_steps=self._int("start-steps", "Max steps", STEPS),
            train_size=self._int("start-train-size", "Train size", SIZE),
            eval_size=self._int("start-eval-size", "Eval size", SIZE),
            offline=self.query_one("#start-offline", Checkbox).value,
        )
        return expand(self.preset, overrides)

    def update_summary(self) -> None:
        summary = self.query_one("#start-summary", Static)
        go = self.query_one("#start-go", Button)
        try:
            specs = self.build()
        except FtbenchError as exc:
            summary.update(Text(str(exc), style="bold red"))
            go.disabled = True
            go.label = "Start"
            return
        go.disabled = False
        go.label = f"Start {len(specs)} run{'s' if len(specs) != 1 else ''}"
        spec = specs[0]
        text = Text(f"{len(specs)} run{'s' if len(specs) != 1 else ''}: ")
        methods = list(dict.fromkeys(s.method.name for s in specs))
        seeds = sorted({s.seed for s in specs})
        text.append(", ".join(methods), style="bold")
        text.append(f" × seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}\n")
        sizes = f"train {spec.data.train_size or 'all'}, eval {spec.data.eval_size or 'all'}"
        text.append(f"{spec.model} on {spec.data.name} · {sizes}", style="dim")
        for line in spec.substitutions:
            text.append(f"\noffline: {line}", style="yellow")
        if self.query_one("#start-tune", Checkbox).value:
            text.append("\ntune: " + _tune_summary(self.preset, specs), style="magenta")
        summary.update(text)

    # --- events ---------------------------------------------------------------------------
    def on_selection_list_selected_changed(self) -> None:
        self.update_summary()

    def on_input_changed(self) -> None:
        self.update_summary()

    def on_checkbox_changed(self) -> None:
        self.update_summary()

    def on_input_submitted(self) -> None:
        self.action_start()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start-go":
            self.action_start()
        else:
            self.dismiss(None)

    def action_start(self) -> None:
        try:
            specs = self.build()
        except FtbenchError as exc:
            self.query_one("#start-summary", Static).update(Text(str(exc), style="bold red"))
            return
        self.dismiss(StartRequest(self.preset, specs, self.query_one("#start-tune", Checkbox).value))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def _tune_summary(preset: "Preset", specs: "list[RunSpec]") -> str:
    """What the sweep will do, in one line (or what is wrong with the preset's [tune] table)."""
    from ftbench.tune.space import grid_points, method_space, parse_config

    try:
        config = parse_config(preset.tune, f"{preset.name} [tune]")
        firsts = {s.method.name: s for s in specs}
        sizes = [len(grid_points(method_space(config, s.method, s.learning_rate))) for s in firsts.values()]
    except FtbenchError as exc:
        return str(exc)
    return (f"{sum(sizes)} trials ({', '.join(f'{n} {name}' for n, name in zip(sizes, firsts))}) "
            f"on {config.validation_fraction:g} of the training set, then the runs above with the "
            "best learning rate per method")
