"""A sweep as a queue of runs, for the TUI (its start dialog's "Tune" box).

The TUI trains a list of `RunSpec` one after another through a runner. `QueuedSweep` gives it
one queued run per grid point not yet taken in the study (each tagged ``trial k of n`` so the
live view can say which trial and which value runs), and is itself the runner: a trial is
claimed in the study, trained on the validation carve and recorded (`sweep.run_trial`), other
specs go straight to the engine. When the last trial of the queue is done, the final runs
(`sweep.final_specs`) are handed to ``add_runs``, which appends them to the same queue.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ftbench.spec import RunSpec
from ftbench.tune.space import TuneConfig, TuneError, parse_config
from ftbench.tune.study import _holds, _params_of, claim, point_key
from ftbench.tune.sweep import SweepPlan, final_specs, open_studies, plan_sweep, run_trial, trial_spec


class QueuedSweep:
    def __init__(self, plan: SweepPlan, add_runs: Callable[[list[RunSpec]], None],
                 say: Callable[[str], None] = lambda line: None) -> None:
        self.plan, self.add_runs, self.say = plan, add_runs, say
        self.runs_dir: str | None = None
        self.storage, self.studies = open_studies(plan)
        self.trials: list[RunSpec] = []
        for m in plan.methods:
            taken = {point_key(_params_of(t)) for t in self.studies[m.method].get_trials(deepcopy=False)
                     if _holds(t)}
            for index, point in enumerate(m.points, start=1):
                if point_key(point) not in taken:
                    self.trials.append(trial_spec(m, plan, -1, index, point))
        self.left = len(self.trials)
        self.lock = threading.Lock()

    def queue(self) -> list[RunSpec]:
        """What to queue now: the trials, or the finals at once when no trial is left."""
        if self.trials:
            return list(self.trials)
        finals, _ = final_specs(self.plan, self.studies, self.runs_dir, self.say)
        return finals

    def __call__(self, spec: RunSpec, emit: Callable[[Any], None], cancel: threading.Event, *,
                 runs_dir: Any = None, **kwargs: Any) -> Any:
        # the engine loads when a run starts, not when the sweep is queued (a bad [tune]: one notice)
        from ftbench.engine.runner import run as engine_run
        from ftbench.plan.record import prediction_for_record

        run = partial(engine_run, predict=prediction_for_record)
        if spec.tune.get("role") != "trial" or spec.tune.get("trial") != -1:
            return run(spec, emit, cancel, runs_dir=runs_dir, **kwargs)
        m = next(m for m in self.plan.methods if m.method == spec.method.name)
        params = dict(spec.tune["params"])
        claimed = claim(self.studies[m.method], self.plan.storage_url, self.plan.config, m.space, [params])
        if claimed is None:
            raise TuneError(f"{m.method} {params}: another worker has run this point already")
        trial, values = claimed
        _, finished = run_trial(m, self.plan, self.studies[m.method], self.storage, trial, values,
                                int(spec.tune["index"]), emit, cancel,
                                None if runs_dir is None else str(runs_dir), run)
        with self.lock:
            self.left -= 1
            last = self.left == 0
        if last and not cancel.is_set():
            finals, _ = final_specs(self.plan, self.studies, None if runs_dir is None else str(runs_dir),
                                    self.say)
            if finals:
                self.add_runs(finals)
        return finished


def queued_sweep(preset: Any, specs: list[RunSpec], runs_dir: Path,
                 add_runs: Callable[[list[RunSpec]], None], config: TuneConfig | None = None) -> QueuedSweep:
    """The preset's [tune] table (or the defaults) planned and checked for these specs."""
    config = config or parse_config(getattr(preset, "tune", {}) or {}, f"{preset.name} [tune]")
    plan = plan_sweep(specs, config, runs_dir)
    if config.storage is None:
        runs_dir.mkdir(parents=True, exist_ok=True)
    sweep = QueuedSweep(plan, add_runs)
    sweep.runs_dir = str(runs_dir)
    return sweep


__all__ = ["QueuedSweep", "queued_sweep"]
