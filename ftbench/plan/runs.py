"""A preset's runs planned: one prediction per method, or why there is none.

`ftbench plan`, the run gate (`ftbench.plan.preflight`) and the TUI's start dialog all plan
through `plan_runs`, so they judge the same runs the same way. Runs of one method differ only
in seed, so the first run of each method stands for the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftbench.errors import FtbenchError
from ftbench.plan import estimate
from ftbench.spec import RunSpec

if TYPE_CHECKING:  # pragma: no cover
    from ftbench.plan.device import DeviceInfo
    from ftbench.plan.estimate import Prediction

# Plans take it, one at a time (a dialog re-planning as its form changes); the TUI's training
# worker takes it from just before a run until the run has loaded its libraries (RunStarted).
# Two threads importing transformers' lazy modules at once can see them half-initialised
# ("cannot import name 'AutoTokenizer' from 'transformers'").
LOADING = threading.Lock()


@dataclass(frozen=True)
class MethodPlan:
    """The plan of one method's runs: its first run's spec, and its prediction or the reason
    (one line) it could not be made."""

    spec: RunSpec
    prediction: Prediction | None
    problem: str | None = None

    @property
    def method(self) -> str:
        return self.spec.method.name


def first_per_method(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """The first run of each (model, method), in order."""
    return list({(s.model, s.method.name): s for s in reversed(specs)}.values())[::-1]


def plan_runs(specs: Sequence[RunSpec], device: DeviceInfo,
              records: Iterable[Any] = ()) -> tuple[MethodPlan, ...]:
    """Predict the first run of each method on ``device``; ``records``: saved runs to
    calibrate time from. A method that cannot be predicted says why instead."""
    records = list(records)
    plans = []
    with LOADING:  # one plan at a time, never while a run in this process loads its libraries
        for spec in first_per_method(specs):
            plans.append(_plan_one(spec, device, records, estimate.predict))
    return tuple(plans)


def _plan_one(spec: RunSpec, device: DeviceInfo, records: list[Any], predict: Any) -> MethodPlan:
    try:
        return MethodPlan(spec, predict(spec, device, records=records))
    except FtbenchError as exc:
        return MethodPlan(spec, None, str(exc))
    except Exception as exc:  # an architecture the planner cannot trace: say so, go on
        text = str(exc).strip().splitlines()
        return MethodPlan(spec, None, f"cannot be predicted ({type(exc).__name__}: "
                                      f"{text[0] if text else ''})")
