"""Events as JSON lines, for the socket between worker processes and the parent.

One message per line: ``{"kind": "<event class>", "data": {...}}`` for engine events, and
three control kinds a worker sends about itself: ``hello`` (rank, run id), ``bye`` (it
finished and said everything) and ``rank_failed`` (rank, error line). A socket, not a pipe
through torchrun: it outlives a rank's crash, and a connection that closes without ``bye``
names the rank that died.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import asdict, fields
from typing import Any

from ftbench.engine import events as ev
from ftbench.results.record import parse_record
from ftbench.terms import json_safe

_EVENTS: dict[str, type] = {cls.__name__: cls for cls in (
    ev.RunStarted, ev.Step, ev.StepProgress, ev.EvalProgress, ev.Eval, ev.GpuSample, ev.Log)}
CONTROL = ("hello", "bye", "rank_failed")


def encode(event: Any) -> bytes:
    """One engine event as one JSON line (NaN/inf become null: the record's own rule)."""
    if isinstance(event, ev.RunFinished):
        data = {"record": event.record.to_dict(), "path": event.path,
                "save_error": event.save_error}
    else:
        data = asdict(event)
    return _line({"kind": type(event).__name__, "data": data})


def control(kind: str, **data: Any) -> bytes:
    assert kind in CONTROL, kind
    return _line({"kind": kind, "data": data})


def _line(message: dict[str, Any]) -> bytes:
    return (json.dumps(json_safe(message), default=str) + "\n").encode()


def decode(line: bytes | str) -> tuple[str, Any]:
    """(kind, event) for an engine event, (kind, dict) for a control message; raises
    ValueError on a line that is not one of ours."""
    message = json.loads(line)
    kind, data = message.get("kind"), message.get("data")
    if not isinstance(data, dict):
        raise ValueError(f"bad message {str(line)[:80]!r}")
    if kind in CONTROL:
        return kind, data
    if kind == "RunFinished":
        return kind, ev.RunFinished(parse_record(data["record"]), data.get("path"),
                                    data.get("save_error"))
    cls = _EVENTS.get(kind)
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    names = {f.name for f in fields(cls)}
    return kind, cls(**{k: v for k, v in data.items() if k in names})


class Sender:
    """A worker's end: connect to the parent, send lines. Thread-safe (the telemetry thread
    emits GPU samples). A parent that went away makes sends no-ops, never a failed run."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock: socket.socket | None = socket.create_connection((host, port), timeout=30)
        self.sock.settimeout(None)
        self.lock = threading.Lock()

    def send(self, payload: bytes) -> None:
        with self.lock:
            if self.sock is None:
                return
            try:
                self.sock.sendall(payload)
            except OSError:
                self.close()

    def emit(self, event: Any) -> None:
        self.send(encode(event))

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


class Connection:
    """What the parent knows about one worker connection."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.hello: dict[str, Any] | None = None
        self.said_bye = False
        self.closed_at: float | None = None

    @property
    def rank(self) -> int | None:
        return self.hello.get("rank") if self.hello else None


class EventServer:
    """The parent's end: a 127.0.0.1 listener; one reader thread per worker connection calls
    ``on_message(connection, kind, payload)`` for every line, and ``on_close(connection)``
    when the worker's end closes (a killed worker's socket is closed by its kernel at once,
    so a death is noticed without waiting for torchrun)."""

    def __init__(self, on_message: Any, on_close: Any = None) -> None:
        self._time = time
        self.on_message = on_message
        self.on_close = on_close
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.connections: list[Connection] = []
        self.readers: list[threading.Thread] = []
        self._closing = False
        self._accepter = threading.Thread(target=self._accept, name="ftbench-wire", daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            link = Connection(len(self.connections))
            self.connections.append(link)
            reader = threading.Thread(target=self._read, args=(conn, link), daemon=True,
                                      name=f"ftbench-wire-{link.number}")
            self.readers.append(reader)
            reader.start()

    def _read(self, conn: socket.socket, link: Connection) -> None:
        with conn, conn.makefile("rb") as stream:
            for line in stream:
                try:
                    kind, payload = decode(line)
                except (ValueError, KeyError, TypeError):
                    continue  # not ours (or cut short by a crash): skip, keep reading
                if kind == "hello":
                    link.hello = payload
                elif kind == "bye":
                    link.said_bye = True
                try:
                    self.on_message(link, kind, payload)
                except Exception:
                    pass  # a front end's bug must not stop the channel
        link.closed_at = self._time.time()
        if self.on_close is not None:
            self.on_close(link)

    def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until every connection has been read to its end."""
        deadline = self._time.monotonic() + timeout
        for reader in list(self.readers):
            reader.join(max(0.0, deadline - self._time.monotonic()))

    def close(self) -> None:
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in flight
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
