"""Checks made before any run starts, so a preset that cannot run here fails in one line
instead of saving a failed record per method."""

from __future__ import annotations

import importlib.util

from ftbench import hub
from ftbench.data import KNOWN_DATASETS
from ftbench.errors import FtbenchError
from ftbench.models import is_hub_id
from ftbench.spec import RunSpec
from ftbench.tasks.causal_lm_checks import check_causal_lm


def preflight(specs: list[RunSpec]) -> None:
    """Raise `FtbenchError` if a run needs the hub and the hub is unreachable, or a
    causal-LM run cannot run (`ftbench.tasks.causal_lm_checks`)."""
    check_causal_lm(specs)
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
    ok, why = hub.hub_reachable()  # through the module: tests replace hub_reachable
    if not ok:
        raise FtbenchError(
            f"the Hugging Face hub is unreachable ({why}) and this run needs {', '.join(needs)}; "
            "add --offline to use the bundled minilm-l6 model and bundled datasets instead"
        )


# Trainer tracker name -> the package that provides it.
_TRACKER_PACKAGES: dict[str, str] = {
    "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
    "neptune": "neptune", "clearml": "clearml", "dvclive": "dvclive", "codecarbon": "codecarbon",
    "azure_ml": "azureml", "trackio": "trackio", "swanlab": "swanlab",
}


def check_trackers(names: tuple[str, ...]) -> None:
    """`--report-to` names must be trackers the Trainer knows and whose package is installed."""
    for name in names:
        if name in ("none", "all"):
            raise FtbenchError(f"--report-to {name}: name the trackers instead "
                               f"({', '.join(sorted(_TRACKER_PACKAGES))})")
        package = _TRACKER_PACKAGES.get(name)
        if package is None:
            raise FtbenchError(f"--report-to {name}: unknown tracker "
                               f"(known: {', '.join(sorted(_TRACKER_PACKAGES))})")
        if importlib.util.find_spec(package) is None:
            raise FtbenchError(f"--report-to {name}: the {package} package is not installed "
                               f"(pip install {package})")
