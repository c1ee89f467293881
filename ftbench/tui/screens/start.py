"""The dialog that starts a preset: methods, seeds, max steps, train/eval sizes, offline.

The methods list has focus first (space toggles a method, enter starts), so the keys the
dialog names work at once.

The form becomes the CLI's `Overrides`, so an override the CLI would refuse is refused here,
with the same message, before anything starts. A worker then prepares the runs exactly as
`ftbench run` would (`ftbench.prepare.resolve` for this machine's device, then `plan`: torch
loads there, never on the UI thread) and each method's line shows plan's figures: whether it
fits, its peak memory and its time. A run predicted not to fit a GPU is refused here with
the CLI's line, unless "Run anyway" (the CLI's ``--force``) is ticked; Start pressed before
the plan is ready starts once it is. The app's worker runs the other gates (`prepare.gate`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, SelectionList, Static
from textual.worker import Worker, WorkerState

from ftbench.errors import FtbenchError
from ftbench.plan.preflight import gates_fit
from ftbench.prepare import device_for, resolve
from ftbench.prepare import plan as plan_prepared  # show_plans names a local `plan`
from ftbench.presets import Overrides, expand, runnable_here
from ftbench.spec import SEEDS, SIZE, STEPS
from ftbench.text import one_line
from ftbench.tune.space import grid_points, method_space, parse_config

if TYPE_CHECKING:
    from ftbench.plan.runs import MethodPlan
    from ftbench.prepare import Prepared
    from ftbench.rules import Rule
    from ftbench.spec import Preset, RunSpec

RESOLVING, PLANNING = "start-resolve", "start-plan"


@dataclass(frozen=True)
class StartRequest:
    """What the dialog starts: the runs prepared for this machine (gated by the app's
    worker); ``prepared.forced`` when "Run anyway" was ticked; ``tune`` when the Tune box
    was: each method's learning rate is searched first (ftbench.tune, docs/tuning.md), from
    these prepared runs."""

    prepared: Prepared
    tune: bool = False


class MethodsList(SelectionList[str]):
    """The methods: space toggles the highlighted one; enter starts (it does not toggle)."""

    BINDINGS = [Binding("enter", "screen.start", "Start", show=False, id="start.enter")]


class StartScreen(ModalScreen["StartRequest | None"]):
    BINDINGS = [
        Binding("escape", "dismiss_none", "Back", id="start.back"),
        Binding("ctrl+s", "start", "Start", show=False, id="start.start"),
    ]

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        self.overrides: Overrides | None = None  # the form, as the CLI would take it
        self.prepared: Prepared | None = None     # its runs prepared and planned, once ready
        self.plan_error: str | None = None
        self.start_pending = False                  # Start pressed before the plan was ready
        self._plan_timer: Any = None

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
            offline_already = not runnable_here(preset).startswith("hub")
            yield Checkbox("Offline: not needed, the model and data are bundled" if offline_already
                           else "Offline: bundled model and data instead of the hub",
                           id="start-offline", disabled=offline_already)
            yield Checkbox("Tune each method's learning rate first (validation split)",
                           id="start-tune")
            yield Checkbox("Run anyway: start runs plan says will not fit (--force)",
                           id="start-force", classes="-hidden")
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
    def _int(self, field_id: str, name: str, rule: Rule) -> int | None:
        """A number field, checked by the same rule as the preset key and the CLI flag."""
        text = self.query_one(f"#{field_id}", Input).value.strip()
        if not text:
            return None
        return rule.parse(text, name)  # type: ignore[no-any-return]

    def build(self) -> list[RunSpec]:
        """The runs the form asks for (expanded, not yet prepared for a device); remembers
        the form's `Overrides` and asks for a plan when they changed."""
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
        specs = expand(self.preset, overrides)
        if overrides != self.overrides:
            self.overrides, self.prepared, self.plan_error = overrides, None, None
            self._schedule_plan()
        return specs

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
        runs = f"{len(specs)} run{'s' if len(specs) != 1 else ''}"
        go.label = "Planning…" if self.start_pending else f"Start {runs}"
        prepared = self.prepared
        spec = prepared.specs[0] if prepared is not None else specs[0]
        text = Text(f"{runs}: ")
        methods = list(dict.fromkeys(s.method.name for s in specs))
        seeds = sorted({s.seed for s in specs})
        text.append(", ".join(methods), style="bold")
        text.append(f" × seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}\n")
        sizes = f"train {spec.data.train_size or 'all'}, eval {spec.data.eval_size or 'all'}"
        text.append(f"{spec.model} on {spec.data.name} · {sizes}", style="dim")
        for line in spec.substitutions:
            text.append(f"\noffline: {line}", style="yellow")
        if self.query_one("#start-tune", Checkbox).value:  # centred on the prepared rates
            tuned = list(prepared.specs) if prepared is not None else specs
            text.append("\ntune: " + _tune_summary(self.preset, tuned), style="magenta")
        if prepared is not None and prepared.plans is not None:
            text.append(f"\n{_device_words(prepared)}", style="dim")
            refusal = prepared.refusal()
            if refusal is not None:
                forced = self.query_one("#start-force", Checkbox).value
                text.append(f"\n{refusal}", style="yellow" if forced else "bold red")
        elif self.plan_error is not None:
            text.append(f"\nno plan: {self.plan_error}", style="dim")
        summary.update(text)
        self.show_plans()

    # --- plan's figures -------------------------------------------------------------------
    def _schedule_plan(self) -> None:
        """Plan the form's runs once it has been still for a moment (typing a number plans
        once, not per key)."""
        if self._plan_timer is not None:
            self._plan_timer.stop()
        self._plan_timer = self.set_timer(0.2, self._plan_now)

    def _plan_now(self) -> None:
        self._plan_timer = None
        if self.overrides is not None:
            self.resolve_runs(self.overrides)

    @work(thread=True, exclusive=True, group=RESOLVING, exit_on_error=False,
          description="preparing the runs")
    def resolve_runs(self, overrides: Overrides) -> tuple[Overrides, Prepared]:
        """The form's runs as `ftbench run` would prepare them here (NVML; torch only when
        there is a GPU to ask about)."""
        device = getattr(self.app, "device", None) or device_for()
        return overrides, resolve(self.preset, overrides, device)

    @work(thread=True, exclusive=True, group=PLANNING, exit_on_error=False,
          description="planning the runs")
    def plan_runs(self, overrides: Overrides, prepared: Prepared,
                  records: list[Any]) -> tuple[Overrides, Prepared]:
        """Plan's figures for the prepared runs (torch loads here, never on the UI thread)."""
        return overrides, plan_prepared(prepared, records)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group not in (RESOLVING, PLANNING) \
                or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        if event.state == WorkerState.ERROR:
            self.plan_error = one_line(str(worker.error), 160)
            self.start_pending = False
            self.update_summary()
            return
        overrides, prepared = worker.result
        if overrides != self.overrides:
            return  # the form changed meanwhile; its own plan is on its way
        self.prepared = prepared
        if worker.group == RESOLVING:
            self.plan_runs(overrides, prepared, self.app.workspace.runs().records)
        self.update_summary()
        if self.start_pending and self._ready():
            self.start_pending = False
            self.action_start()

    def _ready(self) -> bool:
        """Whether Start can go now: the runs are prepared and, where plan can refuse them
        (a GPU), planned."""
        prepared = self.prepared
        return prepared is not None and (prepared.plans is not None or not gates_fit(prepared.device))

    def show_plans(self) -> None:
        """Each method's line: its name, then plan's figures (or why there are none)."""
        methods = self.query_one(MethodsList)
        plans = {p.method: p for p in self.prepared.plans or ()} if self.prepared else {}
        shown = set(self.query_one(SelectionList).selected)
        for index, method in enumerate(self.preset.methods):
            plan = plans.get(method.name)
            if plan is not None:
                figures = _figures(plan)
            elif method.name in shown and self.plan_error is None:
                figures = Text("planning…", style="dim")
            else:
                figures = Text("")
            methods.replace_option_prompt_at_index(index, Text.assemble(f"{method.name:<11}", figures))
        self.query_one("#start-force", Checkbox).set_class(
            self.prepared is None or self.prepared.refusal() is None, "-hidden")

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
            self.build()
        except FtbenchError as exc:
            self.query_one("#start-summary", Static).update(Text(str(exc), style="bold red"))
            return
        prepared = self.prepared
        if prepared is None or not self._ready():
            if self.plan_error is not None:  # preparing itself failed: try again
                self.plan_error, self.prepared = None, None
                self._schedule_plan()
            self.start_pending = True  # starts once the runs are prepared (and planned on a GPU)
            self.update_summary()
            return
        forced = self.query_one("#start-force", Checkbox).value
        if prepared.refusal() is not None and not forced:
            self.app.bell()  # the summary says why, and "Run anyway" is shown
            return
        self.dismiss(StartRequest(replace(prepared, forced=forced),
                                  self.query_one("#start-tune", Checkbox).value))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def _tune_summary(preset: Preset, specs: list[RunSpec]) -> str:
    """What the sweep will do, in one line (or what is wrong with the preset's [tune] table)."""
    try:
        config = parse_config(preset.tune, f"{preset.name} [tune]")
        firsts = {s.method.name: s for s in specs}
        sizes = [len(grid_points(method_space(config, s.method, s.learning_rate))) for s in firsts.values()]
    except FtbenchError as exc:
        return str(exc)
    return (f"{sum(sizes)} trials ({', '.join(f'{n} {name}' for n, name in zip(sizes, firsts))}) "
            f"on {config.validation_fraction:g} of the training set, then the runs above with the "
            "best learning rate per method")


def _device_words(prepared: Prepared) -> str:
    device = prepared.device
    free = f", {device.free_mb:,.0f} MB free" if device.free_mb is not None else ""
    untimed = all(p.prediction is None or p.prediction.time.run_s is None
                  for p in prepared.plans or ())
    return (f"planned for {device.name or device.kind}{free}"
            + (" · time needs a saved run here" if untimed else ""))


def _figures(plan: MethodPlan) -> Text:
    """``fits · peak 755 MB · needs 1,057 MB · 1.2 min`` for a method's line (the plan
    table's PEAK, needs and run time; fits is judged on needs)."""
    # the planner loads in the planning worker; this runs once plans exist, not when the dialog opens
    from ftbench.plan.render import format_mb, format_secs

    p = plan.prediction
    if p is None:
        return Text(one_line(f"no plan: {plan.problem}", 48), style="dim")
    fits = {True: Text("fits", style="green"), None: Text("fits?", style="dim"),
            False: Text("NO FIT", style="bold red")}[p.fits]
    time = format_secs(p.time.run_s) if p.time.run_s is not None else "time ?"
    return Text.assemble(fits, f" · peak {format_mb(p.peak_mb)} MB · needs "
                               f"{format_mb(p.device_total_mb)} MB · {time}")
