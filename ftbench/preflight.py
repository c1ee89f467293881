"""Checks made before any run starts, so a preset that cannot run here fails in one line
instead of saving a failed record per method."""

from __future__ import annotations

from ftbench.errors import FtbenchError
from ftbench.spec import RunSpec


def preflight(specs: list[RunSpec]) -> None:
    """Raise `FtbenchError` if a run needs the hub and the hub is unreachable."""
    from ftbench.data import KNOWN_DATASETS
    from ftbench.hub import hub_reachable
    from ftbench.models import is_hub_id

    needs: list[str] = []
    for spec in specs:
        if is_hub_id(spec.model) and f"model {spec.model}" not in needs:
            needs.append(f"model {spec.model}")
        info = KNOWN_DATASETS.get(spec.data.name)
        hub_data = spec.data.source == "hub" or (info is not None and not info.offline)
        if not spec.offline and spec.data.source != "bundled" and hub_data \
                and f"dataset {spec.data.name}" not in needs:
            needs.append(f"dataset {spec.data.name}")
    if not needs:
        return
    ok, why = hub_reachable()
    if not ok:
        raise FtbenchError(
            f"the Hugging Face hub is unreachable ({why}) and this run needs {', '.join(needs)}; "
            "add --offline to use the bundled minilm-l6 model and bundled datasets instead"
        )
