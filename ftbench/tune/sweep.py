"""`ftbench run --tune`: per method, trials on a validation split, then the final runs.

1. `plan_sweep` checks everything before any training: the space of each method (its grid
   points applied to a spec, so a value the spec refuses is one line now), the validation
   fraction against the batch size, the storage and the study (an existing study with another
   space is refused).
2. `run_sweep`: for each method, this worker claims grid points (`study.claim`) until none is
   free, trains each on the training set less a validation carve (`data.holdout`) and scores
   it by the task's primary metric on that carve; the eval / test set is not used. A diverged
   trial (non-finite loss, or a loss ``EXPLODE`` times its first logged value) is stopped,
   recorded as ``diverged`` and the sweep goes on; a pruner may stop a trial that is clearly
   behind. Each finished trial is committed to the study at once.
3. Then (unless ``trials_only``), once no trial of the study runs anywhere, the best value per
   method trains the final runs: one per seed on the whole training set, evaluated on the test
   set. Trials and finals carry ``spec.tune`` (study, role, trial number, values) in their
   records; a final's also holds the validation score that chose it and what the sweep spent.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from ftbench.engine.events import Eval, Step
from ftbench.results.store import load_runs, save_record
from ftbench.spec import RunSpec
from ftbench.tasks.info import primary_value
from ftbench.terms import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from ftbench.tune import space as sp
from ftbench.tune.space import TuneConfig, TuneError
from ftbench.tune.study import (
    Heartbeat, claim, default_storage, open_storage, open_study, point_key, redact, wait_for_others,
)

EXPLODE = 10.0  # a logged loss this many times the first one counts as diverged


@dataclass
class MethodSweep:
    method: str
    base: RunSpec                       # the method's spec at the preset's first seed
    space: dict[str, tuple[Any, ...]]
    points: list[dict[str, Any]]
    study_name: str
    document: dict[str, Any]
    seeds: list[int]                    # the final runs' seeds

    @property
    def size(self) -> int:
        return len(self.points)


@dataclass
class SweepPlan:
    preset: str
    config: TuneConfig
    storage_url: str
    methods: list[MethodSweep] = field(default_factory=list)


def plan_sweep(specs: list[RunSpec], config: TuneConfig, runs_folder: Path,
               seeds: int | None = None) -> SweepPlan:
    """Check the whole sweep before anything trains (see the module docstring)."""
    if not specs:
        raise TuneError("nothing to tune: the preset expands to no runs")
    firsts: dict[str, RunSpec] = {}
    seed_lists: dict[str, list[int]] = {}
    for spec in specs:
        firsts.setdefault(spec.method.name, spec)
        seed_lists.setdefault(spec.method.name, []).append(spec.seed)
    preset = specs[0].preset
    url = config.storage or default_storage(runs_folder)
    plan = SweepPlan(preset=preset, config=config, storage_url=url)
    for name, base in firsts.items():
        if base.task != "classification":
            # the validation carve (data.holdout) is built for classification data only: a QA
            # trial would be scored on the eval set, which a sweep must never see
            raise TuneError(f"--tune supports classification presets so far; {preset} is a "
                            f"{base.task} preset (its trials would be scored on the eval set)")
        sp.check_fraction(config, base)
        space = sp.method_space(config, base.method, base.learning_rate)
        points = sp.grid_points(space)
        for point in points:  # every value the spec would refuse: one line, before training
            sp.apply_params(base, point)
        if config.sampler == "grid" and config.trials is not None and config.trials != len(points):
            raise TuneError(f"--tune-trials applies to the tpe sampler; the grid has {len(points)} "
                            "points and runs each once")
        document = sp.space_document(config, space, base)
        study = f"{config.study}-{name}" if config.study else f"{preset}-{name}-{sp.digest(document)}"
        final_seeds = seed_lists[name]
        wanted = seeds or config.seeds
        if wanted:
            final_seeds = [base.seed + i for i in range(wanted)]
        plan.methods.append(MethodSweep(name, base, space, points, study, document, final_seeds))
    return plan


def open_studies(plan: SweepPlan) -> tuple[Any, dict[str, Any]]:
    """The storage and each method's study (created, or loaded when its space matches)."""
    storage = open_storage(plan.storage_url)
    studies = {m.method: open_study(storage, m.study_name, m.document, plan.config, m.space)
               for m in plan.methods}
    return storage, studies


class Watch:
    """Feeds a trial's eval scores to the pruner and stops it when the loss explodes."""

    def __init__(self, trial: Any, task: str, cancel: threading.Event, forward: Callable[[Any], None]) -> None:
        self.trial, self.task, self.cancel, self.forward = trial, task, cancel, forward
        self.first_loss: float | None = None
        self.exploded: tuple[int, float] | None = None
        self.pruned_at: int | None = None

    def __call__(self, event: Any) -> None:
        self.forward(event)
        if isinstance(event, Step) and event.loss is not None and math.isfinite(event.loss):
            if self.first_loss is None:
                self.first_loss = event.loss
            elif event.loss > EXPLODE * max(self.first_loss, 1e-6) and self.exploded is None:
                self.exploded = (event.step, event.loss)
                self.cancel.set()
        elif isinstance(event, Eval):
            _, value = primary_value(self.task, event.metrics)
            if value is not None and math.isfinite(value) and self.pruned_at is None:
                self.trial.report(value, event.step)
                if self.trial.should_prune():
                    self.pruned_at = event.step
                    self.cancel.set()


def trial_spec(m: MethodSweep, plan: SweepPlan, number: int, index: int, params: dict[str, Any]) -> RunSpec:
    spec = sp.with_validation(sp.apply_params(m.base, params), plan.config.validation_fraction)
    tag = {"study": m.study_name, "storage": redact(plan.storage_url), "role": "trial",
           "trial": number, "index": index, "of": m.size if plan.config.sampler == "grid" else
           (plan.config.trials or m.size), "params": dict(params), "sampler": plan.config.sampler,
           "validation_fraction": plan.config.validation_fraction}
    return replace(spec, tune=tag)


def run_trial(m: MethodSweep, plan: SweepPlan, study: Any, storage: Any, trial: Any, params: dict[str, Any],
              index: int, emit: Callable[[Any], None], cancel: threading.Event, runs_dir: str | None,
              run: Callable[..., Any]) -> tuple[str, Any]:
    """Train one trial, record it in its run file and the study; its status and `RunFinished`."""
    from optuna.trial import TrialState  # optuna loads once a study opens (tune.study.open_storage)

    spec = trial_spec(m, plan, trial.number, index, params)
    watch = Watch(trial, spec.task, cancel, emit)
    with Heartbeat(storage, trial):
        try:
            finished = run(spec, watch, cancel, runs_dir=runs_dir)
        except KeyboardInterrupt:
            trial.set_user_attr("status", "cancelled")
            study.tell(trial, state=TrialState.FAIL)
            raise
    record = finished.record
    metric, value = primary_value(spec.task, record.metrics)
    status = record.status
    if watch.exploded is not None and status in ("cancelled", "completed"):
        step, loss = watch.exploded
        status = "diverged"
        record.status, record.error = "diverged", (
            f"loss {loss:.4g} at step {step} passed {EXPLODE:g} times the first logged loss "
            f"{watch.first_loss:.4g}; stopped")
    elif watch.pruned_at is not None and status == "cancelled":
        status = "pruned"
        record.error = f"pruned at step {watch.pruned_at} by the {plan.config.pruner} pruner"
    if status != record.status or record.error != finished.record.error or status == "pruned":
        if finished.path is not None:
            save_record(record, Path(finished.path).parent)
    for key, val in (("run_id", record.run_id), ("metric", metric),
                     ("total_s", record.timing.get("total_s")),
                     ("device", record.environment.get("device"))):
        trial.set_user_attr(key, val)
    if status == "completed" and value is not None and math.isfinite(value):
        trial.set_user_attr("status", "completed")
        study.tell(trial, value)
    elif status == "pruned":
        trial.set_user_attr("status", "pruned")
        study.tell(trial, state=TrialState.PRUNED)
    else:
        if status == "completed":
            status = "failed"  # no score to rank it by
        trial.set_user_attr("status", status)
        study.tell(trial, state=TrialState.FAIL)
    return status, finished


def run_sweep(plan: SweepPlan, runs_dir: str | None, as_json: bool = False, stream: TextIO | None = None,
              trials_only: bool = False, run: Callable[..., Any] | None = None,
              cancel: threading.Event | None = None,
              emit: Callable[[Any], None] | None = None) -> int:
    """Run this worker's share of the trials, then the final runs; the exit code."""
    # the engine and the printers (Rich) load when the sweep runs, not when it is planned and checked
    from ftbench.engine.runner import run as run_here
    from ftbench.headless import Interrupts, PlainPrinter
    from ftbench.plan.record import prediction_for_record

    run = run or partial(run_here, predict=prediction_for_record)
    out = stream or (sys.stderr if as_json else sys.stdout)
    cancel = cancel or threading.Event()
    printer = emit or PlainPrinter(out)

    def say(line: str) -> None:
        print(f"[tune] {line}", file=out, flush=True)

    storage, studies = open_studies(plan)
    say(f"studies in {redact(plan.storage_url)}; trials score the {plan.config.validation_fraction:g} "
        "validation carve of the training set, never the eval set")
    with Interrupts(cancel, say):
        for m in plan.methods:
            study = studies[m.method]
            say(f"{m.method}: study {m.study_name}, {m.size} point(s) of "
                + ", ".join(f"{k} {list(v)}" for k, v in m.space.items()))
            while not cancel.is_set():
                claimed = claim(study, plan.storage_url, plan.config, m.space, m.points)
                if claimed is None:
                    break
                trial, params = claimed
                index = _index(m, params, trial)
                total = m.size if plan.config.sampler == "grid" else (plan.config.trials or m.size)
                shown = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
                say(f"trial {index}/{total} {m.method} {shown} (study trial #{trial.number})")
                try:
                    status, _ = run_trial(m, plan, study, storage, trial, params, index, printer, cancel,
                                       runs_dir, run)
                except KeyboardInterrupt:
                    cancel.set()
                    break
                say(f"trial {index}/{total} {m.method}: {status}")
                if status == "cancelled":
                    cancel.set()
        if cancel.is_set():
            say("interrupted: the finished trials are in the study; run the same command to go on")
            return EXIT_INTERRUPTED
        if trials_only:
            say("trials done (--trials-only): run without it to train the final runs")
            return EXIT_OK
        finals, missing = final_specs(plan, studies, runs_dir, say)
    if not finals:
        summarise(plan, runs_dir, out)
        return EXIT_FAILED if missing else EXIT_OK
    from ftbench.headless import run_specs  # see above

    code = run_specs(finals, runs_dir, as_json, stream=stream, runner=run)
    summarise(plan, runs_dir, out)
    return EXIT_FAILED if (missing and code == EXIT_OK) else code


def summarise(plan: SweepPlan, runs_dir: str | None, out: TextIO) -> None:
    """The tuning table and the sensitivity chart of this sweep's studies (report.tuning)."""
    # Rich and the report load for the summary, after the runs, not when the sweep is planned
    from rich.console import Console
    from rich.text import Text

    from ftbench.report.tuning import tuning_lines

    studies = {m.study_name for m in plan.methods}
    records = [r for r in load_runs(runs_dir).records
               if isinstance(r.spec.get("tune"), dict) and r.spec["tune"].get("study") in studies]
    console = Console(file=out, highlight=False)
    colorless = console.no_color or console.color_system is None
    for item in tuning_lines(records, max(console.width, 80), 18, colorless):
        console.print(Text.from_ansi(item) if isinstance(item, str) else item)


def final_specs(plan: SweepPlan, studies: dict[str, Any], runs_dir: str | None,
                say: Callable[[str], None]) -> tuple[list[RunSpec], list[str]]:
    """Once no trial runs anywhere: per method, the best value's runs on the whole training set
    (those already in the runs folder left out), and the methods no trial completed for."""
    finals: list[RunSpec] = []
    missing: list[str] = []
    done = finished_finals(runs_dir)
    for m in plan.methods:
        study = studies[m.method]
        wait_for_others(study, say=say)
        chosen = best(study)
        if chosen is None:
            missing.append(m.method)
            say(f"{m.method}: no trial completed; no final runs")
            continue
        spent = sweep_cost(study)
        say(f"{m.method}: chose " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in chosen.params.items())
            + f" (validation {chosen.user_attrs.get('metric', 'score')} {chosen.value:.4f}, "
            f"trial #{chosen.number})")
        for seed in m.seeds:
            if (m.study_name, seed, point_key(chosen.params)) in done:
                say(f"{m.method} seed {seed}: its final run is already in the runs folder")
                continue
            spec = sp.apply_params(replace(m.base, seed=seed), chosen.params)
            finals.append(replace(spec, tune={
                "study": m.study_name, "storage": redact(plan.storage_url), "role": "final",
                "trial": chosen.number, "params": dict(chosen.params),
                "validation": {"metric": chosen.user_attrs.get("metric"), "value": chosen.value},
                "sweep": spent, "sampler": plan.config.sampler,
                "validation_fraction": plan.config.validation_fraction}))
    return finals, missing


def finished_finals(runs_dir: str | None) -> set[tuple[str, int, str]]:
    """(study, seed, values) of every completed final run in the runs folder: a sweep run again
    does not train them twice."""
    out = set()
    for r in load_runs(runs_dir).records:
        tag = r.spec.get("tune")
        if isinstance(tag, dict) and tag.get("role") == "final" and r.status == "completed" and r.seed is not None:
            out.add((str(tag.get("study")), r.seed, point_key(tag.get("params") or {})))
    return out


def _index(m: MethodSweep, params: dict[str, Any], trial: Any) -> int:
    keys = [point_key(p) for p in m.points]
    key = point_key(params)
    return keys.index(key) + 1 if key in keys else trial.number + 1


def best(study: Any) -> Any | None:
    from optuna.trial import TrialState  # optuna loads once a study opens (tune.study.open_storage)

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    # ties keep the earlier trial, as optuna's best_trial does
    return max(done, key=lambda t: (t.value, -t.number))


def device_hours(runs: Iterable[tuple[Any, Any]]) -> dict[str, float]:
    """Hours by device kind ("gpu" for a cuda device, else "cpu") from (device, seconds) pairs;
    a missing time counts as none."""
    hours: dict[str, float] = {}
    for device, seconds in runs:
        kind = "gpu" if str(device or "cpu").startswith("cuda") else "cpu"
        hours[kind] = hours.get(kind, 0.0) + (float(seconds) / 3600
                                              if isinstance(seconds, (int, float)) else 0.0)
    return hours


def sweep_cost(study: Any) -> dict[str, Any]:
    """What the study's trials spent: count, seconds, and device-hours by device kind."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") not in (None, "duplicate")]
    seconds = sum(float(t.user_attrs.get("total_s") or 0.0) for t in trials)
    hours = device_hours((t.user_attrs.get("device"), t.user_attrs.get("total_s")) for t in trials)
    statuses: dict[str, int] = {}
    for t in trials:
        statuses[t.user_attrs["status"]] = statuses.get(t.user_attrs["status"], 0) + 1
    return {"trials": len(trials), "seconds": round(seconds, 1),
            "device_hours": {k: round(v, 4) for k, v in hours.items()}, "statuses": statuses,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
