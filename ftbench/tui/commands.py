"""Every ftbench action in the command palette (ctrl+p), next to Textual's own commands."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from ftbench.tui.app import FtbenchApp


class FtbenchCommands(Provider):
    """Screens, running a preset, cancelling, comparing, reloading, theme."""

    def commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        app: "FtbenchApp" = self.app  # type: ignore[assignment]
        yield "Help", "Screens and keys (? or F1)", app.action_help
        yield "Presets", "Browse the presets (1)", partial(app.switch_mode, "presets")
        yield "Live run", "Watch the run in progress (2)", partial(app.switch_mode, "live")
        yield "Runs", "Every saved run (3)", partial(app.switch_mode, "runs")
        yield "Compare", "Tables, charts and Pareto fronts (4)", partial(app.switch_mode, "compare")
        if app.training:
            yield "Cancel run", "Cancel the run in progress (asks first)", app.action_cancel_run
        for preset in app.presets:
            yield (f"Run {preset.name}…", f"Start {preset.title}", partial(app.open_start, preset))
        for name in app.saved_presets():
            yield (f"Compare {name}", f"Latest runs of {name}: table, charts, fronts",
                   partial(app.compare_preset, name))
        yield from self.screen_commands()
        yield "Reload runs", "Read the runs folder again", app.action_reload_runs
        yield ("Light / dark theme", "Switch between the light and dark theme (ctrl+t)",
               app.action_toggle_dark)

    def screen_commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        """The keys of the screen the palette was opened on, as commands too."""
        from ftbench.tui.screens.compare import CompareScreen
        from ftbench.tui.screens.live import LiveScreen
        from ftbench.tui.screens.presets import PresetsScreen
        from ftbench.tui.screens.runs import RunsScreen

        screen = self.screen
        if isinstance(screen, PresetsScreen):
            yield "Run the highlighted preset…", "Choose methods, seeds, max steps (r)", \
                screen.action_run
        elif isinstance(screen, LiveScreen):
            yield "Show / hide the log", "The engine's messages (l)", screen.action_toggle_log
        elif isinstance(screen, RunsScreen):
            yield "Select run for Compare", "Mark the highlighted run (space)", screen.action_mark
            yield "Compare selected runs", "Or every run shown when none is selected (c)", \
                screen.action_compare
            yield "Sort runs…", "Choose the column to sort by (s)", screen.action_sort
            yield "Filter runs", "By preset, method and status (/)", screen.action_filter
            yield "Clear filters", "Show every run (escape)", screen.action_clear
        elif isinstance(screen, CompareScreen):
            yield "Compare a preset…", "The latest runs of a preset (p)", screen.action_pick_preset
            yield "Per run / grouped", "One row per run, or mean ± std over seeds (g)", \
                screen.action_toggle_per_run
            yield "Group by budget", "One table per budget: steps, data sizes, batch, length (b)", \
                screen.action_toggle_by_budget
            yield "Save charts as SVG", "A picture of the charts in the runs folder (ctrl+s)", \
                screen.action_save_charts
            yield "Curves over steps / time", "x axis of the overlaid loss and metric curves (x)", \
                screen.action_toggle_x_axis

    async def discover(self) -> Hits:
        for name, help_text, callback in self.commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
