"""One run across several processes: the parent starts torchrun and supervises it.

``ftbench run --nproc-per-node N`` (with ``--nnodes``, ``--node-rank``, ``--rdzv-endpoint``
passed straight through) runs each of the preset's runs as one torchrun job
(``python -m torch.distributed.run ... -m ftbench.distributed.worker JOB``); every rank runs
the same engine and the Trainer does DDP. Rank 0 sends events over a 127.0.0.1 socket
(`wire.EventServer`) that this parent hands to the front end, and writes the record.

The parent is what notices faults: a rank that fails or dies (its socket closes without a
``bye``) makes the run ``failed``, naming the first rank that went and its error, and the
parent saves that record (rank 0 does not save a failed distributed run: a peer's death
reaches it only as a collective error). Ctrl+C / SIGTERM go to torchrun, which passes them to
every rank; the ranks agree to stop after the same step and rank 0 saves the run as cancelled.
torchrun's own output goes to a log file; its last line is quoted when nothing else says why
a run failed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ftbench.engine.events import Emit, Log, RunFinished
from ftbench.errors import FtbenchError
from ftbench.results.record import RunRecord
from ftbench.rules import Rule, ruled, validate_fields
from ftbench.spec import RunSpec


@dataclass(frozen=True)
class Launch:
    """torchrun's placement flags, as given on the command line. Each field's bounds are a
    `Rule` (the CLI flags check through them); how the fields fit together is checked here."""

    nproc_per_node: int = ruled(Rule("int", min=1, max=1024), default=1)
    nnodes: int = ruled(Rule("int", min=1, max=100_000), default=1)
    node_rank: int = ruled(Rule("int", min=0, max=99_999), default=0)
    rdzv_endpoint: str | None = None

    def __post_init__(self) -> None:
        """Refuse impossible placements before anything starts (one line, exit 2)."""
        validate_fields(self, FtbenchError)
        if not 0 <= self.node_rank < self.nnodes:
            raise FtbenchError(f"--node-rank must be between 0 and {self.nnodes - 1} "
                               f"(--nnodes {self.nnodes}), got {self.node_rank}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise FtbenchError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT "
                               "(node 0's address, the same on every node)")
        if self.rdzv_endpoint is not None:
            endpoint_port(self.rdzv_endpoint)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def local_gpus(self, env: Mapping[str, str] | None = None) -> tuple[int, ...]:
        """The NVML indices of the GPUs this node's ranks drive (local rank i uses CUDA device
        i, mapped through the ``CUDA_VISIBLE_DEVICES`` torchrun passes on), for the TUI."""
        from ftbench.engine.world import World, nvml_index  # not at import: `ftbench --help` loads this module

        return tuple(nvml_index(World(local_rank=i), env) for i in range(self.nproc_per_node))


def endpoint_port(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FtbenchError(f"--rdzv-endpoint must be HOST:PORT, got {endpoint!r}")
    return host, int(port)


def check_rendezvous_port(launch: Launch) -> None:
    """Node 0 hosts the rendezvous store on the endpoint's port: if something already listens
    there, torchrun would join *that* instead and wait; say so in one line now."""
    if launch.rdzv_endpoint is None or launch.node_rank != 0:
        return
    _, port = endpoint_port(launch.rdzv_endpoint)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("", port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise FtbenchError(f"rendezvous port {port} is already in use on this machine "
                               f"(another torchrun job?); pick a free port in --rdzv-endpoint") from None
        raise
    finally:
        probe.close()


def torchrun_command(launch: Launch, job_path: str, python: str = sys.executable) -> list[str]:
    """The torchrun command line for one run (a pure function, unit-tested)."""
    if launch.rdzv_endpoint:
        # static rendezvous: --node-rank decides placement, so global rank 0 is on node 0
        where = ["--rdzv-backend=static", f"--rdzv-endpoint={launch.rdzv_endpoint}",
                 f"--node-rank={launch.node_rank}"]
    else:
        where = ["--standalone"]  # one node, a free port chosen by torchrun
    return [python, "-m", "torch.distributed.run", f"--nnodes={launch.nnodes}",
            f"--nproc-per-node={launch.nproc_per_node}", *where, "--max-restarts=0",
            "--monitor-interval=0.5", "-m", "ftbench.distributed.worker", job_path]


def job_document(spec: RunSpec, run_id: str, port: int, runs_dir: Any,
                 environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a worker needs to run ``spec``: written to a file named on its command line."""
    return {"spec": spec.to_dict(), "run_id": run_id, "port": port,
            "references": [dict(method=r.method, metrics=dict(r.metrics), note=r.note)
                           for r in spec.references],
            "runs_dir": str(runs_dir) if runs_dir is not None else None,
            "environment": environment or {}}


class Supervisor:
    """Collects what the workers of one run say: events for the front end, the record rank 0
    sent, and the first rank to fail (by the time it failed or its connection dropped)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.finished: RunFinished | None = None
        self.failures: list[tuple[float, int | None, str]] = []
        self.lock = threading.Lock()

    def on_message(self, link: Any, kind: str, payload: Any) -> None:
        if kind == "RunFinished":
            self.finished = payload  # held: the parent decides the final status
        elif kind == "rank_failed":
            with self.lock:
                self.failures.append((float(payload.get("t") or time.time()),
                                      payload.get("rank"), str(payload.get("error"))))
        elif kind not in ("hello", "bye"):
            self.emit(payload)

    def on_close(self, link: Any) -> None:
        if not link.said_bye:
            with self.lock:
                self.failures.append((link.closed_at or time.time(), link.rank, ""))

    def first_failure(self) -> tuple[int | None, str] | None:
        """The rank that caused the failure, with what it said.

        A dead rank takes its peers down with it, and they report a collective error
        ("Connection closed by peer") that can reach this parent before the dead rank's closed
        socket does. So a rank's own failure (an error of its own, or dying without a word)
        comes before a peer's collective error, and time decides within each kind.
        """
        with self.lock:
            if not self.failures:
                return None
            per_rank: dict[int | None, tuple[float, str]] = {}
            for t, rank, error in sorted(self.failures, key=lambda f: f[0]):
                held = per_rank.get(rank)
                per_rank[rank] = (held[0] if held else t, (held[1] if held else "") or error)
            rank, (_, error) = min(per_rank.items(),
                                   key=lambda item: (is_peer_error(item[1][1]), item[1][0]))
            return rank, error


PEER_ERROR = re.compile(r"connection (closed|reset)|closed by peer|broken pipe|gloo|nccl|"
                        r"DistBackendError|ProcessGroup|collective|timed out", re.IGNORECASE)


def is_peer_error(error: str) -> bool:
    """An error a rank reports because another rank went away (a failed collective)."""
    return bool(PEER_ERROR.search(error))


def run_distributed(spec: RunSpec, emit: Emit, cancel: threading.Event, *, runs_dir: Any = None,
                    launch: Launch, run_id: str | None = None) -> RunFinished:
    """Run ``spec`` under torchrun; return the final `RunFinished` (saved by rank 0, or by
    this parent for a failure; on nodes other than 0, nothing is saved here)."""
    from ftbench.results.store import new_run_id  # not at import: `ftbench --help` loads this module

    run_id = run_id or new_run_id(spec.preset, spec.method.name, spec.seed)
    supervisor = Supervisor(emit)
    server = _wire_server(supervisor)
    scratch = Path(tempfile.mkdtemp(prefix="ftbench-torchrun-"))
    job = scratch / "job.json"
    job.write_text(json.dumps(job_document(spec, run_id, server.port, runs_dir)))
    log_path = scratch / "torchrun.log"
    code: int | None = None
    aborted = False
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(torchrun_command(launch, str(job)), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        try:
            code = _supervise(proc, cancel)
        except KeyboardInterrupt:  # a second Ctrl+C: stop everything now
            aborted = True
            _kill_group(proc, signal.SIGKILL)
            code = proc.wait()
        server.drain(timeout=10)
        return conclude(spec, run_id, runs_dir, supervisor, emit, code=code,
                        cancelled=cancel.is_set() or aborted, said=_last_line(log_path),
                        world_size=launch.world_size, writes=launch.node_rank == 0)
    finally:
        server.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _wire_server(supervisor: Supervisor) -> Any:
    from ftbench.distributed.wire import EventServer  # not at import: `ftbench --help` loads this module

    return EventServer(supervisor.on_message, supervisor.on_close)


def _supervise(proc: subprocess.Popen[bytes], cancel: threading.Event) -> int:
    """Wait for torchrun; pass a cancel on as SIGTERM (torchrun hands it to every rank)."""
    forwarded = False
    while True:
        code = proc.poll()
        if code is not None:
            return code
        if cancel.is_set() and not forwarded:
            forwarded = True
            _kill_group(proc, signal.SIGTERM, group=False)
        time.sleep(0.05)


def _kill_group(proc: subprocess.Popen[bytes], sig: int, group: bool = True) -> None:
    try:
        if group:
            os.killpg(proc.pid, sig)  # torchrun and its ranks (a new session of their own)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def _last_line(log_path: Path) -> str:
    """The most telling line of torchrun's log: its error summary, else the last line."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for pattern in (r"^\w*Error: .*", r"exitcode\s*:\s*-?\d+.*"):
        found = [ln for ln in lines if re.search(pattern, ln)]
        if found:
            return found[-1][:300]
    return lines[-1][:300] if lines else ""


def conclude(spec: RunSpec, run_id: str, runs_dir: Any, supervisor: Supervisor, emit: Emit, *,
             code: int | None, cancelled: bool, said: str = "", world_size: int = 1,
             writes: bool = True, environment: dict[str, Any] | None = None) -> RunFinished:
    """The run's final record once its processes have ended: rank 0's own when it saved one,
    else a failed (or cancelled) record saved here (`runner.save_failed`), naming the first
    rank that failed and keeping what rank 0 measured."""
    from ftbench.engine.saving import save_failed  # not at import: `ftbench --help` loads this module

    finished = supervisor.finished
    failure = supervisor.first_failure()
    if finished is not None and finished.path is not None:
        # rank 0 saved a completed / cancelled / diverged run: every rank got that far
        if failure is not None and finished.record.status == "completed":
            emit(Log(run_id, "warning", f"rank {failure[0]} ended abnormally after the run "
                                         "was complete and saved"))
        emit(finished)
        return finished
    measured = finished.record if finished is not None else None
    facts = dict(environment or {})
    if world_size > 1:
        facts["world_size"] = world_size
    if failure is not None and cancelled and not failure[1]:
        failure = None  # ended without a word after the cancel: torchrun's teardown, not a crash
    status = "failed"
    if failure is not None:
        rank, error = failure
        error = f"rank {rank}: {error or _death(said)}" if world_size > 1 else (error or _death(said))
        facts["failed_rank"] = rank
    elif cancelled:
        status, error = "cancelled", "cancelled before rank 0 reported"
    else:
        error = (measured.error if measured is not None and measured.error else
                 f"exited with code {code}" + (f": {said}" if said else ""))
    if not writes:  # a node other than 0: rank 0 on node 0 writes the record
        record = measured or _unsaved(spec, run_id)
        record.status, record.error = status, error
        event = RunFinished(record, None, extra={"written_by": "node 0"})
        emit(event)
        return event
    return save_failed(spec, error, runs_dir=runs_dir, emit=emit, run_id=run_id,
                       measured=measured, environment=facts, status=status)


def _unsaved(spec: RunSpec, run_id: str) -> Any:
    from ftbench.engine.failures import now as _now  # not at import: `ftbench --help` loads this module

    return RunRecord(run_id=run_id, preset=spec.preset, method=spec.method.name, status="failed",
                     created_at=_now(), spec=spec.to_dict())


def _death(said: str) -> str:
    found = re.search(r"exitcode\s*:\s*(-?\d+)", said)
    if found and int(found.group(1)) < 0:
        try:
            name = signal.Signals(-int(found.group(1))).name
        except ValueError:
            name = f"signal {-int(found.group(1))}"
        return f"the process died ({name}; SIGKILL usually means the out-of-memory killer)"
    return "the process ended without reporting an error" + (f" ({said})" if said else "")
