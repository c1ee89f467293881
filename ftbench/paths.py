"""Where ftbench keeps its cache (fetched bundles, tiny models, SQuAD files)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """``$FTBENCH_CACHE``, else ``$XDG_CACHE_HOME/ftbench``, else ``~/.cache/ftbench``."""
    explicit = os.environ.get("FTBENCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "ftbench"


@contextmanager
def building_folder(folder: Path, label: str) -> Iterator[Path]:
    """A scratch folder beside ``folder`` to build it in. When the block ends without error the
    scratch gets a ``done`` marker and becomes ``folder`` in one rename (if another process
    built it first, theirs is kept); the scratch never outlives the block."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{label}.", dir=folder.parent))
    try:
        yield tmp
        (tmp / "done").write_text("ok")
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "done").is_file():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
