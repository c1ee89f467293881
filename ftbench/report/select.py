"""Which runs a report is about: ids, a preset, the latest runs, and simple filters.

Order of operations, so that combinations mean what they say:
1. run ids (exact, unique prefix, or the short id `ftbench runs` shows: the id's last part)
   narrow the set first; an unknown or ambiguous id is an
   error rather than an empty report, because a typo should not look like "no results";
2. ``preset`` and the method / model / dataset / status filters keep matching runs
   (case-insensitive; several values for one filter mean "any of these");
3. ``latest`` then keeps, per (method, model, dataset, seed), the most recent *completed*
   run of the chosen preset (the most recent run of any status only where none completed),
   or of the newest preset among what is left when none is given: a cancelled or failed
   re-run does not hide the earlier completed one. Filtering first makes
   ``--latest --status cancelled`` mean "the latest cancelled run of each".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ftbench.errors import FtbenchError
from ftbench.results.record import RunRecord


class SelectionError(FtbenchError):
    """A selection that cannot be satisfied (unknown or ambiguous id); one line for the user."""


@dataclass(frozen=True)
class Selection:
    ids: tuple[str, ...] = ()
    preset: str | None = None
    latest: bool = False
    methods: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()

    def describe(self) -> str:
        """The selection in words, for "no runs match ..." messages."""
        parts = []
        if self.ids:
            parts.append("ids " + ", ".join(self.ids))
        if self.preset:
            parts.append(f"preset {self.preset}")
        for name, values in (("method", self.methods), ("model", self.models),
                             ("dataset", self.datasets), ("status", self.statuses)):
            if values:
                parts.append(f"{name} {'/'.join(values)}")
        if self.latest:
            parts.append("latest")
        return ", ".join(parts) or "all runs"


def split_values(values: Iterable[str] | None) -> tuple[str, ...]:
    """``["a,b", "c"]`` -> ``("a", "b", "c")``: filters accept repeats and commas alike."""
    return tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())


def short_id(run_id: str) -> str:
    """The random last part of a run id (``20261128T080200-quickstart-full-s0-3f9a1c`` ->
    ``3f9a1c``), as ``ftbench runs`` and the Runs screen show it; `match_ids` accepts it."""
    tail = run_id.rsplit("-", 1)[-1]
    return tail if 4 <= len(tail) < len(run_id) else run_id


def match_ids(records: Sequence[RunRecord], ids: Sequence[str]) -> list[RunRecord]:
    """Runs named by exact id, unique id prefix or short id (the part after the id's last
    ``-``, as ``ftbench runs`` shows it), in load order, each once."""
    chosen: dict[str, RunRecord] = {}
    for wanted in ids:
        exact = [r for r in records if r.run_id == wanted]
        hits = exact or [r for r in records if r.run_id.startswith(wanted)] \
            or [r for r in records if short_id(r.run_id) == wanted]
        if not hits:
            raise SelectionError(f"no readable run with id {wanted!r}")
        if len(hits) > 1:
            raise SelectionError(
                f"run id prefix {wanted!r} matches {len(hits)} runs; give more of it")
        chosen[hits[0].run_id] = hits[0]
    return [r for r in records if r.run_id in chosen]


def _keep(value: str, wanted: Sequence[str]) -> bool:
    return not wanted or value.casefold() in {w.casefold() for w in wanted}


def latest_runs(records: Sequence[RunRecord], preset: str | None = None) -> list[RunRecord]:
    """The most recent completed run per (method, model, dataset, seed) of one preset, or the
    most recent run of any status for a key where no run completed.

    Without ``preset``, the preset of the most recently created run is used: "what did I
    just run". Recency is ``created_at`` (ISO 8601 UTC), then run id, as in `load_runs`.
    """
    if not records:
        return []
    ordered = sorted(records, key=lambda r: (r.created_at, r.run_id))
    chosen_preset = preset if preset is not None else ordered[-1].preset
    newest: dict[tuple[str, str, str, int | None], RunRecord] = {}
    for r in ordered:
        if r.preset.casefold() == chosen_preset.casefold():
            key = (r.method, r.model, r.dataset, r.seed)
            held = newest.get(key)
            if held is None or r.status == "completed" or held.status != "completed":
                newest[key] = r
    keep = {id(r) for r in newest.values()}
    return [r for r in records if id(r) in keep]


def select_runs(records: Sequence[RunRecord], selection: Selection) -> list[RunRecord]:
    """Apply a `Selection` to loaded records (see the module docstring for the order)."""
    chosen = match_ids(records, selection.ids) if selection.ids else list(records)
    chosen = [
        r for r in chosen
        if (selection.preset is None or r.preset.casefold() == selection.preset.casefold())
        and _keep(r.method, selection.methods)
        and _keep(r.model, selection.models)
        and _keep(r.dataset, selection.datasets)
        and _keep(r.status, selection.statuses)
    ]
    if selection.latest:
        chosen = latest_runs(chosen, selection.preset)
    return chosen
