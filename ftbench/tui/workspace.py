"""What the screens share about saved runs: one small object the app hands to every screen.

The runs folder and its runs (read once, read again when a run is saved or on request, with a
version number screens compare to know they are stale), the runs selected for Compare, and
what Compare shows. Pure Python (no Textual, no torch); the UI thread alone touches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftbench.results.store import LoadResult, load_runs


@dataclass(frozen=True)
class CompareRequest:
    """Which runs to compare: explicit ids, or the latest set of a preset (None: newest)."""

    ids: tuple[str, ...] = ()
    preset: str | None = None
    label: str = ""


@dataclass
class Workspace:
    runs_dir: Path
    marked: set[str] = field(default_factory=set)            # selected for Compare
    compare: CompareRequest = field(default_factory=CompareRequest)
    version: int = 0                                         # bumped whenever runs reload
    _loaded: "LoadResult | None" = None

    def runs(self) -> "LoadResult":
        """The runs folder's runs (read on first use after a reload)."""
        if self._loaded is None:
            self._loaded = load_runs(self.runs_dir)
        return self._loaded

    def reload(self) -> None:
        """Read the folder again when next asked (a run was saved, or the user asked)."""
        self._loaded = None
        self.version += 1

    def saved_presets(self) -> list[str]:
        """Presets with saved runs, the most recent first."""
        return list(dict.fromkeys(r.preset for r in reversed(self.runs().records)))

    def toggle(self, run_id: str) -> bool:
        """Select ``run_id`` for Compare, or unselect it; True when it is now selected."""
        self.marked ^= {run_id}
        return run_id in self.marked

    def keep_marks_of(self, run_ids: set[str]) -> None:
        """Forget selections of runs that are no longer in the folder."""
        self.marked &= run_ids

    @property
    def label(self) -> str:
        """The runs folder as the screens name it: relative to the working folder if inside."""
        try:
            return str(self.runs_dir.resolve().relative_to(Path.cwd())) + "/"
        except ValueError:
            return str(self.runs_dir)
