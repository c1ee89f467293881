"""How a failure reads: one line per exception, out-of-memory recognised, and emitting that
cannot stop a record from being saved."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ftbench.engine.events import Emit
from ftbench.errors import FtbenchError


def now() -> str:
    """The record's timestamps: UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def exc_text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ fails must not lose the record
        return ""


def one_line(exc: BaseException) -> str:
    text = exc_text(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, FtbenchError):
        return first or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


_OOM_TEXT = ("out of memory",
             # torch's CPU allocator: "DefaultCPUAllocator: not enough memory: you tried to
             # allocate ..." (older releases: "can't allocate memory")
             "not enough memory", "can't allocate memory")


def is_oom(exc: BaseException) -> bool:
    name = exc.__class__.__name__
    text = exc_text(exc).lower()
    return name == "OutOfMemoryError" or isinstance(exc, MemoryError) \
        or any(needle in text for needle in _OOM_TEXT)


def failure_line(exc: BaseException) -> str:
    """The record's ``error`` for a run that raised: one line, with what to try."""
    if is_oom(exc):
        return ("out of memory: " + one_line(exc)[:200] +
                " — try a smaller batch_size or max_length, gradient_checkpointing, or qlora")
    if "contains custom code which must be executed" in exc_text(exc):
        # transformers names its own argument on a later line; name ftbench's flag instead
        return one_line(exc) + " — pass --trust-remote-code to run the model folder's Python " \
            "code (trust_remote_code is off by default)"
    return one_line(exc)


def emit_quietly(emit: Emit, event: Any) -> None:
    """Emit on the failure and save paths: a front end that raises (a closed pipe, a UI bug)
    must not stop the record from being saved."""
    try:
        emit(event)
    except Exception:
        pass
