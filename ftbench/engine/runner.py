"""The one training path: ``run(spec, emit, cancel)``.

Both front ends (headless CLI and TUI) call this; it reports only through ``emit`` and stops
when ``cancel`` is set (checked after every optimizer step). Whatever happens — completion,
an exception, out-of-memory, NaN loss, cancellation, Ctrl+C — a `RunRecord` is built from
what was measured and saved atomically; if the runs folder cannot be written the record goes
to a fallback folder and the `RunFinished` event says where.

Measurement rules (docs/design.md): train time excludes evaluation; torch peak counters are reset
at the start of the run; NVML is sampled by a thread every 0.5 s; parameter counts say whether
the head is included; every record carries its environment.

The engine, one job per module: `session` (one run while it executes), `policy` (what a model
folder may load and run), `build` (tokenizer, model, method, parameter counts), `train` (the
Trainer, its batch size and telemetry), `measured` (the Trainer subclass, its callbacks and
collators), `agree` (torchrun processes agreeing), `finish` (measurements into the record),
`saving` (the record to disk, whatever happens), `failures` (a failure in one line).
"""

from __future__ import annotations

import os
import threading
import traceback
from typing import Any, Callable

from ftbench.engine import world as worlds
from ftbench.engine.events import Emit, Log, RunFinished, ignore
from ftbench.engine.failures import emit_quietly, failure_line, one_line
from ftbench.engine.saving import Saver, new_record, save, save_failed, unsaved
from ftbench.engine.session import Predictor, Session
from ftbench.engine.telemetry import GpuSampler
from ftbench.results.store import check_run_id, save_record
from ftbench.spec import RunSpec

__all__ = ["Saver", "run", "save_failed"]


def run(
    spec: RunSpec,
    emit: Emit = ignore,
    cancel: threading.Event | None = None,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    world: worlds.World | None = None,
    environment: dict[str, Any] | None = None,
    predict: Predictor | None = None,
    saver: Saver = save_record,
    gpu_sampler: GpuSampler | None = None,
    wrap_model: Callable[[Any], Any] | None = None,
    on_step: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_probe: Callable[[int], None] | None = None,
) -> RunFinished:
    """Train and evaluate one method on one model/dataset/seed; save and return its record.

    Under torchrun (``world`` from the environment by default) every rank calls this; rank 0
    alone emits and saves, the others return their record unsaved (``path`` None).
    ``environment`` adds facts the caller knows to ``record.environment`` (the device a
    parallel queue pinned the run to). ``predict`` makes the prediction stored in the record
    (the front ends pass `ftbench.plan.record.prediction_for_record`; None: no prediction).

    The rest are the run's replaceable parts, real by default: ``saver`` writes the record;
    ``gpu_sampler`` reads the GPU (NVML on a CUDA run, nothing on a CPU); ``wrap_model`` is
    applied to the built model; ``on_step(n)`` runs inside training step n before its forward
    pass, ``on_batch(n)`` before each batch is collated (training and evaluation, from 1),
    ``on_probe(size)`` before each ``batch_size = "auto"`` probe. Tests pass their own to
    inject faults: raise from them, or a sampler that fails.
    """
    cancel = cancel or threading.Event()
    world = world or worlds.from_env()
    if not world.is_main:
        emit = ignore
    if run_id is not None:
        check_run_id(run_id)  # refuse before training, not at save time
    record = new_record(spec, run_id)
    session = Session(spec, record, emit, cancel, world, runs_dir, environment,
                      gpu_sampler=gpu_sampler, wrap_model=wrap_model, on_step=on_step,
                      on_batch=on_batch, on_probe=on_probe, predict=predict)
    reraise: BaseException | None = None
    try:
        session.execute()
    except KeyboardInterrupt:
        record.status = "cancelled"
        progress = session.callback.progress if session.callback else None
        record.error = (f"cancelled at step {progress.step} of {progress.total_steps}"
                        if progress and progress.total_steps else "cancelled before training started")
    except Exception as exc:  # every failure becomes a saved record, never a lost run
        record.status = "failed"
        record.error = failure_line(exc)
        if os.environ.get("FTBENCH_DEBUG"):
            traceback.print_exc()
        emit_quietly(emit, Log(record.run_id, "error", record.error))
    except BaseException as exc:  # SystemExit and friends: save, then let them through
        record.status = "failed"
        record.error = failure_line(exc)
        reraise = exc
    finally:
        try:
            session.finish()
        except Exception as exc:  # e.g. a sticky CUDA error at the final sync: keep what we have
            message = f"measurements incomplete: {one_line(exc)}"
            record.error = record.error or message
            emit_quietly(emit, Log(record.run_id, "warning", message))
    if world.is_main and not (world.distributed and record.status == "failed"):
        finished = save(record, runs_dir, emit, saver)
    elif world.is_main:
        # Under torchrun a failure is saved by the parent, which knows which rank failed
        # first (a peer's death reaches rank 0 as a collective error); it gets the record here.
        finished = unsaved(record, emit)
    else:
        finished = unsaved(record)
    if reraise is not None:
        raise reraise
    return finished
