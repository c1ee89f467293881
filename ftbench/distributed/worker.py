"""One process of a distributed run or of a parallel queue: ``python -m ftbench.distributed.worker JOB``.

torchrun starts one per rank (``RANK``/``WORLD_SIZE`` set); the parallel queue starts one per
device (a world of one, pinned with ``CUDA_VISIBLE_DEVICES``). Each runs the same engine; rank
0 sends its events to the parent over the 127.0.0.1 socket named in the job file, and every
rank says ``hello``, then ``bye`` or ``rank_failed``, so the parent can tell who died.

SIGINT and SIGTERM (from the parent through torchrun, or a terminal's Ctrl+C) cancel the run:
the ranks agree to stop after the same step and rank 0 saves it as cancelled. A second signal
aborts now (the record is still saved, as cancelled).

Fault injection for tests (never set in normal use): ``FTBENCH_FAULT_RANK=R`` with
``FTBENCH_FAULT_STEP=N`` (default 2) and ``FTBENCH_FAULT_KIND`` = ``kill`` (SIGKILL itself,
as the OOM killer would) or ``oom`` (raise torch's out-of-memory error) inside step N of rank R.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Mapping

from ftbench.distributed.wire import Sender, control
from ftbench.engine import world as worlds
from ftbench.engine.events import ignore
from ftbench.engine.runner import run
from ftbench.plan.record import prediction_for_record
from ftbench.spec import Reference, RunSpec
from ftbench.terms import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK


def fault_hook(rank: int, env: Mapping[str, str] | None = None) -> Callable[[int], None] | None:
    """The test-only step hook for this rank, from FTBENCH_FAULT_* (None when unset)."""
    env = os.environ if env is None else env
    if env.get("FTBENCH_FAULT_RANK", "") != str(rank):
        return None
    at = int(env.get("FTBENCH_FAULT_STEP", "2"))
    kind = env.get("FTBENCH_FAULT_KIND", "kill")

    def hook(step: int) -> None:
        if step != at:
            return
        if kind == "oom":
            # torch is loaded by now (inside a training step); this module must not load it at
            # import, before the engine's quiet_libraries()
            import torch

            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 2.00 GiB (injected at step {step})")
        os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _signals(cancel: threading.Event) -> None:
    count = [0]

    def handler(signum: int, frame: Any) -> None:
        count[0] += 1
        cancel.set()
        if count[0] > 1:
            raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as f:
        job = json.load(f)
    world = worlds.from_env()
    cancel = threading.Event()
    _signals(cancel)
    sender = Sender(int(job["port"]))
    sender.send(control("hello", rank=world.rank, run_id=job["run_id"], pid=os.getpid()))
    spec = replace(RunSpec.from_dict(job["spec"]),
                   references=tuple(Reference(**r) for r in job.get("references", [])))
    try:
        finished = run(spec, sender.emit if world.is_main else ignore, cancel,
                       runs_dir=job.get("runs_dir"), run_id=job["run_id"],
                       predict=prediction_for_record, on_step=fault_hook(world.rank),
                       world=world, environment=job.get("environment") or {})
    except KeyboardInterrupt:  # a second signal: the engine saved the run before this
        sender.send(control("bye", rank=world.rank, status="cancelled"))
        return EXIT_INTERRUPTED
    record = finished.record
    if record.status == "failed":
        sender.send(control("rank_failed", rank=world.rank, error=record.error, t=time.time()))
    sender.send(control("bye", rank=world.rank, status=record.status))
    sender.close()
    _leave_world()
    return {"completed": EXIT_OK, "cancelled": EXIT_INTERRUPTED}.get(record.status, EXIT_FAILED)


def _leave_world() -> None:
    try:
        import torch.distributed as dist  # loaded by the run by now; never at import (see fault_hook)

        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
