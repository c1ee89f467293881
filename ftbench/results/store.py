"""Run files on disk: atomic writes, tolerant reads.

A run file is ``<runs_dir>/<run_id>.json``. Writes go to a temporary file in the same folder
and are published with a hard link that fails if the name exists, so a reader never sees half
a record, two processes writing different runs never collide (run ids carry time and
randomness), and no existing file (another run's, or a corrupt one kept for inspection) is
ever overwritten. A file that cannot be read or validated (not a regular file, too large, not
UTF-8 JSON, wrong shape, newer schema) is reported in `LoadResult.problems` and skipped.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ftbench.errors import FtbenchError
from ftbench.results.record import RecordError, RunRecord, parse_record, valid_run_id

DEFAULT_RUNS_DIR = "runs"
MAX_RUN_FILE_BYTES = 64 * 1024 * 1024


class StoreError(FtbenchError):
    """The runs folder cannot be written."""


def runs_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The runs folder: explicit argument, then $FTBENCH_RUNS_DIR, then ./runs."""
    return Path(path or os.environ.get("FTBENCH_RUNS_DIR") or DEFAULT_RUNS_DIR)


def check_writable(folder: Path) -> None:
    """Raise `StoreError` now if run files could not be written to ``folder`` later: a path
    component that is a file, or a folder (the first one that exists) that is not writable.
    Front ends call this before training, so the mistake costs seconds, not a run."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: mkdir would fail on it
            raise StoreError(f"cannot use runs folder {folder}: {probe} is a broken link")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise StoreError(f"cannot use runs folder {folder}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write to runs folder {folder}: {probe} is not writable")


def _umask() -> int:
    """The process umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_run_id(preset: str, method: str, seed: int | None = None) -> str:
    """A sortable, collision-free id: UTC time, preset, method, seed, pid-free random suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", f"{preset}-{method}").strip("-")[:60] or "run"
    seed_part = f"-s{seed}" if seed is not None else ""
    return f"{stamp}-{slug}{seed_part}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """Refuse ids that could name a path outside the runs folder."""
    if not valid_run_id(run_id):
        raise StoreError(f"invalid run id {run_id!r}: use letters, digits, '.', '_' and '-'")
    return run_id


def save_record(record: RunRecord, directory: str | os.PathLike[str] | None = None) -> Path:
    """Write ``record`` atomically as ``<dir>/<run_id>.json`` and return the path."""
    folder = runs_dir(directory)
    check_run_id(record.run_id)
    target = folder / f"{record.run_id}.json"
    data = json.dumps(record.to_dict(), indent=2, allow_nan=False, default=_json_default)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{record.run_id}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise StoreError(f"cannot write to runs folder {folder}: {exc.strerror or exc}") from exc
    try:
        # mkstemp makes the file 0600; a run file is shared like any other: honour the umask.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _move_into_place(tmp, target)
    except FileExistsError:
        _unlink_quietly(tmp)
        raise StoreError(f"run file {target} already exists; not overwriting it") from None
    except OSError as exc:
        _unlink_quietly(tmp)
        raise StoreError(f"cannot write run file {target}: {exc.strerror or exc}") from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return target


def _move_into_place(tmp: str, target: Path) -> None:
    """Publish the finished temp file as ``target`` atomically, never over an existing file.

    A hard link fails if the name exists (another process's run with the same id, or a corrupt
    file that must be kept), so nothing is ever overwritten. Filesystems without hard links
    fall back to a check and `os.replace`.
    """
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        if target.exists():
            raise FileExistsError(str(target)) from None
        os.replace(tmp, target)
        return
    _unlink_quietly(tmp)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _json_default(value: object) -> object:
    # numpy scalars and similar end up here; anything else is a bug worth seeing.
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass
class LoadResult:
    records: list[RunRecord] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def load_file(path: Path) -> RunRecord:
    """Read and validate one run file (raises `RecordError` with one line)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise RecordError("not a regular file")  # a FIFO would block the reader forever
        size = info.st_size
        if size > MAX_RUN_FILE_BYTES:
            raise RecordError(f"file is {size} bytes, larger than any run record")
        raw = path.read_bytes()
    except OSError as exc:
        raise RecordError(f"cannot read: {exc.strerror or exc}") from exc
    if not raw.strip():
        raise RecordError("empty file")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RecordError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise RecordError("JSON nested too deeply") from None
    return parse_record(doc)


def load_runs(directory: str | os.PathLike[str] | None = None) -> LoadResult:
    """Every readable record in the folder, oldest first; unreadable files listed as problems."""
    folder = runs_dir(directory)
    result = LoadResult()
    if not folder.is_dir():
        return result
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            record = load_file(path)
        except RecordError as exc:
            result.problems.append((path, str(exc)))
            continue
        result.records.append(record)
    result.records.sort(key=lambda r: (r.created_at, r.run_id))
    return result


def find_run(run_id: str, directory: str | os.PathLike[str] | None = None) -> RunRecord:
    """Load one run by id (or unique id prefix)."""
    folder = runs_dir(directory)
    check_run_id(run_id)
    exact = folder / f"{run_id}.json"
    if exact.is_file():
        return load_file(exact)
    matches = [p for p in folder.glob(f"{run_id}*.json") if not p.name.startswith(".")]
    if len(matches) == 1:
        return load_file(matches[0])
    if not matches:
        raise RecordError(f"no run with id {run_id!r} in {folder}")
    raise RecordError(f"run id prefix {run_id!r} matches {len(matches)} runs; give more of it")
