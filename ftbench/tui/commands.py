"""Every ftbench action in the command palette (ctrl+p), next to Textual's own commands."""

from __future__ import annotations

from abc import abstractmethod
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from ftbench.tui.app import FtbenchApp


class _CommandList(Provider):
    """A provider over a list of (title, help, callback)."""

    @abstractmethod
    def commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        """(title, help, callback) for every command this provider offers."""

    async def discover(self) -> Hits:
        for name, help_text, callback in self.commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class FtbenchCommands(_CommandList):
    """Screens, running a preset, cancelling, comparing, reloading, theme (every screen)."""

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
        for name in app.workspace.saved_presets():
            yield (f"Compare {name}", f"Latest runs of {name}: table, charts, fronts",
                   partial(app.compare_preset, name))
        yield "Reload runs", "Read the runs folder again", app.action_reload_runs
        yield ("Light / dark theme", "Switch between the light and dark theme (ctrl+t)",
               app.action_toggle_dark)


class ScreenCommands(_CommandList):
    """The keys of the screen the palette was opened on, as commands too: a screen lists them
    in ``PALETTE`` (title, help, action name) and names this provider in ``COMMANDS``."""

    def commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        screen = self.screen
        for title, help_text, action in getattr(screen, "PALETTE", ()):
            yield title, help_text, getattr(screen, f"action_{action}")
