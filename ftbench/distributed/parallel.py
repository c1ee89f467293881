"""A preset's runs spread over local devices: one worker process per device, all at once.

``ftbench run --parallel`` uses every local GPU; ``--devices 0,2`` names them, and
``--devices cpu,cpu`` runs two CPU processes (for testing without a GPU). Each device takes
the next method x seed run as soon as it is free. A worker is pinned with
``CUDA_VISIBLE_DEVICES`` (empty for ``cpu``), runs the ordinary engine as a world of one and
saves its own record, which names its device (``environment.parallel_device``); its events
come back over the 127.0.0.1 socket and are printed with the device as a prefix. Ctrl+C or
SIGTERM reaches every worker, each saves its run as cancelled, and no new run starts; a worker
that dies is saved as failed by this parent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TextIO

from rich.console import Console

from ftbench.distributed.launch import Supervisor, conclude, job_document
from ftbench.distributed.wire import EventServer
from ftbench.engine.events import Event, RunFinished
from ftbench.errors import FtbenchError
from ftbench.headless import Interrupts, PlainPrinter, report
from ftbench.results.store import new_run_id
from ftbench.spec import RunSpec


def parse_devices(text: str) -> list[str]:
    """``"0,1"`` -> ``["0", "1"]``; ``"cpu,cpu"`` -> ``["cpu", "cpu"]``; bad input -> one line."""
    devices = [d.strip().lower() for d in text.split(",")]
    if not devices or any(not d for d in devices):
        raise FtbenchError(f"--devices must be a comma-separated list such as 0,1 or cpu,cpu; "
                           f"got {text!r}")
    for d in devices:
        if d != "cpu" and not d.isdigit():
            raise FtbenchError(f"--devices: {d!r} is neither a GPU index nor 'cpu' (e.g. 0,1 or cpu,cpu)")
    gpus = [d for d in devices if d != "cpu"]
    if len(gpus) != len(set(gpus)):
        raise FtbenchError(f"--devices names a GPU twice ({text}); one run per GPU at a time")
    return devices


def local_gpus() -> list[str]:
    """Every local GPU, by NVML (no torch import); --parallel without one is an error."""
    try:
        import pynvml  # in the try: no nvidia-ml-py (or no driver) means no GPU here

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception:
        count = 0
    if not count:
        raise FtbenchError("--parallel found no GPU here; use --devices cpu,cpu to run "
                           "several runs at once on the CPU")
    return [str(i) for i in range(count)]


def labels(devices: list[str]) -> list[str]:
    """Names shown as line prefixes and stored in the record: gpu0, gpu3, cpu0, cpu1."""
    out, cpus = [], 0
    for d in devices:
        if d == "cpu":
            out.append(f"cpu{cpus}")
            cpus += 1
        else:
            out.append(f"gpu{d}")
    return out


def device_env(device: str, cpu_slots: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the worker on ``device`` (a pure function, unit-tested): pinned to
    one GPU, or to none for ``cpu``; CPU workers share the cores instead of each taking all."""
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = "" if device == "cpu" else device
    if device == "cpu" and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, cpu_slots)))
    return env


@dataclass
class _Slot:
    device: str
    label: str
    proc: subprocess.Popen[bytes] | None = None
    spec: RunSpec | None = None
    run_id: str | None = None
    supervisor: Any = None
    log: Path | None = None
    signalled: bool = False


@dataclass
class Prefixed:
    """Prints each event as a plain line with its device in front: ``[gpu1] [step] ...``."""

    out: TextIO
    names: dict[str, str] = field(default_factory=dict)  # run_id -> device label
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        line = PlainPrinter(self.out).format(event)
        if not line:
            return
        run_id = event.record.run_id if isinstance(event, RunFinished) else getattr(event, "run_id", None)
        prefix = f"[{self.names.get(run_id or '', '?')}] "
        with self.lock:
            print(prefix + line, file=self.out, flush=True)


def run_parallel(prepared: Mapping[str, Any], devices: list[str], runs_dir: str | None,
                 as_json: bool, stream: TextIO | None = None) -> int:
    """Run a preset's runs over ``devices`` concurrently; print prefixed lines; return the exit
    code. ``prepared``: the runs prepared (`ftbench.prepare.Prepared`) for each kind of device
    in ``devices`` ("cpu", "cuda"), in the same order: a device takes the next run as prepared
    for its kind."""
    out = stream or (sys.stderr if as_json else sys.stdout)
    console = Console(file=out, highlight=False)
    printer = Prefixed(out)
    cancel = threading.Event()
    supervisors: dict[str, Any] = {}

    def on_message(link: Any, kind: str, payload: Any) -> None:
        run_id = (link.hello or {}).get("run_id")
        if run_id in supervisors:
            supervisors[run_id].on_message(link, kind, payload)

    def on_close(link: Any) -> None:
        run_id = (link.hello or {}).get("run_id")
        if run_id in supervisors:
            supervisors[run_id].on_close(link)

    server = EventServer(on_message, on_close)
    scratch = Path(tempfile.mkdtemp(prefix="ftbench-parallel-"))
    cpu_slots = devices.count("cpu")
    slots = [_Slot(d, name) for d, name in zip(devices, labels(devices))]
    runs = {kind: list(p.specs) for kind, p in prepared.items()}
    queue = list(range(len(next(iter(runs.values())))))
    finished: list[RunFinished] = []
    interrupted = aborted = False
    started = time.perf_counter()
    print(f"[queue] {len(queue)} run(s) over {len(slots)} device(s): "
          + ", ".join(s.label for s in slots), file=out, flush=True)

    def start(slot: _Slot, spec: RunSpec) -> None:
        run_id = new_run_id(spec.preset, spec.method.name, spec.seed)
        printer.names[run_id] = slot.label
        supervisors[run_id] = Supervisor(printer)
        job = scratch / f"{run_id}.json"
        env = {"parallel_device": slot.label}
        job.write_text(json.dumps(job_document(spec, run_id, server.port, runs_dir, env)))
        slot.log = scratch / f"{run_id}.log"
        with open(slot.log, "wb") as log:
            slot.proc = subprocess.Popen(
                [sys.executable, "-m", "ftbench.distributed.worker", str(job)],
                env=device_env(slot.device, cpu_slots), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        slot.spec, slot.run_id, slot.supervisor = spec, run_id, supervisors[run_id]
        print(f"[{slot.label}] [queue] {spec.method.name} seed {spec.seed} -> {run_id}",
              file=out, flush=True)

    def reap(slot: _Slot, code: int) -> None:
        _wait_for_end(slot.supervisor, slot.run_id, server)
        assert slot.spec is not None and slot.run_id is not None
        finished.append(conclude(slot.spec, slot.run_id, runs_dir, slot.supervisor, printer,
                                 code=code, cancelled=cancel.is_set() or aborted,
                                 said=f"exitcode: {code}" if code < 0 else "",
                                 environment={"parallel_device": slot.label}))
        slot.proc = slot.spec = slot.run_id = None
        slot.signalled = False

    def notify(message: str) -> None:
        print(f"[info] {message}", file=out, flush=True)

    try:
        with Interrupts(cancel, notify):
            try:
                while queue or any(s.proc for s in slots):
                    for slot in slots:
                        if slot.proc is None and queue and not cancel.is_set():
                            start(slot, runs[_kind(slot.device)][queue.pop(0)])
                        elif slot.proc is not None and (code := slot.proc.poll()) is not None:
                            reap(slot, code)
                    if cancel.is_set():
                        interrupted = True
                        queue.clear()
                        for slot in slots:
                            if slot.proc is not None and not slot.signalled:
                                slot.signalled = True
                                _signal(slot.proc, signal.SIGTERM)
                    time.sleep(0.05)
            except KeyboardInterrupt:  # a second Ctrl+C: stop every worker now
                interrupted = aborted = True
                for slot in slots:
                    if slot.proc is not None:
                        _signal(slot.proc, signal.SIGKILL)
                for slot in slots:
                    if slot.proc is not None:
                        reap(slot, slot.proc.wait())
    finally:
        server.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return report(finished, time.perf_counter() - started, interrupted, console, out, as_json)


def _kind(device: str) -> str:
    return "cpu" if device == "cpu" else "cuda"


def _wait_for_end(supervisor: Any, run_id: str | None, server: Any, timeout: float = 10.0) -> None:
    """The worker has exited; wait (bounded) until its connection has been read to the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        links = [c for c in server.connections if (c.hello or {}).get("run_id") == run_id]
        if links and all(c.closed_at is not None for c in links) or supervisor.finished:
            return
        if not links and time.monotonic() > deadline - timeout + 1.0:
            return  # it never connected (died at start-up)
        time.sleep(0.02)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
