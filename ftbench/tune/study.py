"""The Optuna side of a sweep: storage, one study per method, handing out trials exactly once.

Storage is any SQLAlchemy URL Optuna's `RDBStorage` takes; the default is an SQLite file in the
runs folder. Several workers (processes, GPUs, machines) pointing at one storage and one study
name share the sweep.

Why ftbench hands out the grid points itself: Optuna's `GridSampler` picks a random unvisited
point, and two workers asking at the same moment can both get the same one (its documentation
says so), and SQLite has no row locks to stop it. So a worker claims a point under a lock (an
exclusive `flock` on a file beside the SQLite database; on a server database, the row lock of
Optuna's own waiting-trial queue) by enqueueing it and asking for it in one step; a point is
taken while a trial of it is running or once one finished (complete, pruned, or failed and
recorded as diverged or failed). The study's sampler is still the `GridSampler` over the same
space, so the study is a plain Optuna grid study to any other tool. A second line of defence
catches a duplicate all the same: the lower trial number keeps the point, the other is closed
unrun.

A worker killed mid-trial leaves its trial running; a heartbeat (every `HEARTBEAT_S`) lets the
next worker see it is stale after `GRACE_S`, mark it failed (`fail_stale_trials`) and run the
point again. Finished trials are committed as they finish, so a killed worker loses none.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

from ftbench.tune.space import TuneConfig, TuneError

HEARTBEAT_S = 30
GRACE_S = 120
SPACE_ATTR = "ftbench_space"
# a finished trial with one of these statuses holds its point; others (cancelled, stale) free it
HOLDING = ("completed", "diverged", "failed", "pruned")


def redact(url: str) -> str:
    """A storage URL with its password hidden, for records, output and errors."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def default_storage(runs_folder: Path) -> str:
    return f"sqlite:///{(runs_folder / 'tune.db').resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The database file of an ``sqlite:///`` URL (None for other databases, or in-memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S) -> Any:
    """Optuna's RDBStorage for ``url``; one line when it cannot be opened."""
    # optuna (~0.3 s to import) loads only once a study opens: planning a sweep needs none
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats and fail_stale_trials are marked experimental, and optuna expects heartbeats
    # with Study.optimize; ftbench beats for its ask/tell trials itself (`Heartbeat`)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise TuneError(f"cannot open the study storage {redact(url)}: no folder {path.parent}")
    try:
        with claim_lock(url):  # two workers creating one SQLite file's tables at once would clash
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                                              engine_kwargs=_engine_kwargs(url))
    except Exception as exc:  # any driver error is the same one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TuneError(f"cannot open the study storage {redact(url)}: {redact(first)[:200]}") from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    # SQLite: wait for a busy database instead of failing at once (several local workers)
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def open_study(storage: Any, name: str, document: Mapping[str, Any], config: TuneConfig,
               space: Mapping[str, tuple[Any, ...]]) -> Any:
    """Create the study, or load it when it exists with the same search space; a study of that
    name with another space is one line (nothing of it is changed)."""

    wanted = json.dumps(document, sort_keys=True, default=str)
    with claim_lock(getattr(storage, "url", "")):
        return _open_study(storage, name, wanted, config, space)


def _open_study(storage: Any, name: str, wanted: str, config: TuneConfig,
                space: Mapping[str, tuple[Any, ...]]) -> Any:
    import optuna  # see open_storage

    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                sampler=_sampler(config, space), pruner=_pruner(config),
                                load_if_exists=True)
    held = study.user_attrs.get(SPACE_ATTR)
    if held is None:
        if study.trials:
            raise TuneError(f"study {name!r} exists and was not made by ftbench; name another "
                            "(--study)")
        study.set_user_attr(SPACE_ATTR, wanted)
    elif held != wanted:
        raise TuneError(f"study {name!r} already exists with a different search space or "
                        "trial set-up; give another name (--study) or another storage")
    return study


def _sampler(config: TuneConfig, space: Mapping[str, tuple[Any, ...]]) -> Any:
    import optuna  # see open_storage

    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=0)
    return optuna.samplers.GridSampler({k: list(v) for k, v in space.items()}, seed=0)


def _pruner(config: TuneConfig) -> Any:
    import optuna  # see open_storage

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def suggest(trial: Any, space: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """The trial's values (an enqueued grid point returns its own; TPE samples)."""
    out: dict[str, Any] = {}
    for name, values in space.items():
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if name == "learning_rate" and numeric and len(values) > 1:
            out[name] = trial.suggest_float(name, min(values), max(values), log=True)
        else:
            out[name] = trial.suggest_categorical(name, list(values))
    return out


def point_key(params: Mapping[str, Any]) -> str:
    return json.dumps({k: params[k] for k in sorted(params)}, default=str)


def _holds(trial: Any) -> bool:
    from optuna.trial import TrialState  # see open_storage

    if trial.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("status") in HOLDING


def _params_of(trial: Any) -> dict[str, Any]:
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params") or {})


@contextlib.contextmanager
def claim_lock(url: str) -> Iterator[None]:
    """Exclusive across local processes for an SQLite study; a no-op for a server database."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def claim(study: Any, url: str, config: TuneConfig, space: Mapping[str, tuple[Any, ...]],
          points: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]] | None:
    """The next trial this worker runs and its values, or None when every point (or the TPE
    budget) is taken."""
    # see open_storage
    import optuna
    from optuna.trial import TrialState

    with claim_lock(url):
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial frees its point
        trials = study.get_trials(deepcopy=False)
        if config.sampler == "tpe":
            budget = config.trials or len(points)
            if sum(1 for t in trials if _holds(t)) >= budget:
                return None
            trial = study.ask()
            return trial, suggest(trial, space)
        taken = {point_key(_params_of(t)) for t in trials if _holds(t)}
        free = [p for p in points if point_key(p) not in taken]
        if not free:
            return None
        study.enqueue_trial(free[0], skip_if_exists=False)
        trial = study.ask()
        params = suggest(trial, space)
    # Second line of defence (a server database, or a worker that did not lock): the lower
    # trial number keeps a point.
    mine = point_key(params)
    for other in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE,
                                                          TrialState.PRUNED, TrialState.FAIL)):
        if other.number < trial.number and _holds(other) and point_key(_params_of(other)) == mine:
            trial.set_user_attr("status", "duplicate")
            study.tell(trial, state=TrialState.FAIL)
            return claim(study, url, config, space, points)
    return trial, params


def others_running(study: Any) -> int:
    from optuna.trial import TrialState  # see open_storage

    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


class Heartbeat:
    """Records the trial's heartbeat every ``interval`` seconds while it runs."""

    def __init__(self, storage: Any, trial: Any, interval: float = HEARTBEAT_S) -> None:
        self.storage, self.trial, self.interval = storage, trial, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="ftbench-heartbeat")

    def __enter__(self) -> "Heartbeat":
        self.storage.record_heartbeat(self.trial._trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self.storage.record_heartbeat(self.trial._trial_id)


def wait_for_others(study: Any, poll_s: float = 5.0, say: Any = None) -> None:
    """Until no trial of ``study`` is running (other workers' trials, or stale ones)."""
    import optuna  # see open_storage

    told = False
    while True:
        optuna.storages.fail_stale_trials(study)
        if not others_running(study):
            return
        if say and not told:
            say(f"waiting for {others_running(study)} trial(s) other workers are running")
            told = True
        time.sleep(poll_s)
