"""Where ftbench keeps its cache (fetched bundles, tiny models, SQuAD files)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$FTBENCH_CACHE``, else ``$XDG_CACHE_HOME/ftbench``, else ``~/.cache/ftbench``."""
    explicit = os.environ.get("FTBENCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "ftbench"
