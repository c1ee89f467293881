"""Saving a run's record, whatever happens: the runs folder, else a fallback folder, else the
record stays in the `RunFinished` event (which says why). Also the `failed` record of a run
that could not start (`save_failed`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from ftbench import __version__
from ftbench.engine.events import Emit, Log, RunFinished, ignore
from ftbench.engine.failures import emit_quietly, now, one_line
from ftbench.results.record import RunRecord
from ftbench.results.store import StoreError, new_run_id, save_record
from ftbench.spec import RunSpec
from ftbench.terms import json_safe

# Writes a record into a runs folder (None: the default one) and returns its path.
Saver = Callable[[RunRecord, Any], Path]


def new_record(spec: RunSpec, run_id: str | None, status: str = "failed") -> RunRecord:
    """The record a run starts from: its spec and references, no measurements yet."""
    record = RunRecord(
        run_id=run_id or new_run_id(spec.preset, spec.method.name, spec.seed),
        preset=spec.preset,
        method=spec.method.name,
        status=status,
        created_at=now(),
        spec=spec.to_dict(),
        ftbench_version=__version__,
    )
    record.references = [dict(method=r.method, metrics=dict(r.metrics), note=r.note)
                         for r in spec.references]
    return record


def save(record: RunRecord, runs_dir: Any, emit: Emit, saver: Saver = save_record) -> RunFinished:
    """Save with ``saver``; on failure to the fallback folder; emit and return `RunFinished`."""
    null_non_finite(record)
    try:
        path = saver(record, runs_dir)
        event = RunFinished(record, str(path))
    except Exception as exc:  # a folder, a disk or a value that will not take it: never lose the run
        why = str(exc) if isinstance(exc, (StoreError, OSError)) else one_line(exc)
        fallback: Any = "<tempdir>/ftbench-unsaved"
        try:
            fallback = Path(tempfile.gettempdir()) / "ftbench-unsaved"
            path = save_record(record, fallback)
            message = f"{why}; record saved to {path} instead"
            event = RunFinished(record, str(path), save_error=message)
        except Exception as exc2:
            message = (f"{why}; fallback {fallback} failed too ({exc2}); "
                       "the record was not saved (it is in this run's result)")
            event = RunFinished(record, None, save_error=message)
        emit_quietly(emit, Log(record.run_id, "error", message))
    emit_quietly(emit, event)
    return event


def unsaved(record: RunRecord, emit: Emit = ignore) -> RunFinished:
    """A record handed back without saving it (a torchrun rank, or a failure its parent saves)."""
    null_non_finite(record)
    finished = RunFinished(record, None)
    emit_quietly(emit, finished)
    return finished


def null_non_finite(record: RunRecord) -> None:
    """NaN and infinity are not JSON: a diverged run's eval loss is stored as null ("not a
    number" is unavailable, not invented), so the record can always be written."""
    for name in ("params", "timing", "memory", "metrics", "series", "data_info", "model_info",
                 "environment", "references", "baseline", "samples"):
        setattr(record, name, json_safe(getattr(record, name)))


def save_failed(
    spec: RunSpec,
    error: str,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    emit: Emit = ignore,
    saver: Saver = save_record,
    run_id: str | None = None,
    measured: RunRecord | None = None,
    environment: dict[str, Any] | None = None,
    status: str = "failed",
) -> RunFinished:
    """Save a `failed` record for a run that could not start or whose front end failed around
    it (outside `run()`): the same record writer, fallback folder and events as `run()`.

    The parent of a torchrun job (or of a queue worker) saves with it too: ``run_id`` is the
    id the workers were given, ``measured`` what rank 0 measured before the run failed (kept,
    with ``status`` and ``error`` set here), ``environment`` facts only the parent knows (the
    rank that failed first). ``status`` is ``failed``, or ``cancelled`` for a run stopped
    before any process reported it.
    """
    record = measured
    if record is None:
        record = new_record(spec, run_id, status)
        record.finished_at = record.created_at
    record.status, record.error = status, error
    record.environment.update(environment or {})
    return save(record, runs_dir, emit, saver)
