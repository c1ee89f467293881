"""Keep third-party chatter off the user's terminal.

ftbench reports what matters itself (model loaded, parameters, data source); the libraries'
own progress bars and advisory warnings would interleave with that on every run, or print
above ftbench's own output at import (kernels' "Skipping publisher trust check ..." when the hub
is offline). Progress bars are off; what libraries log through ``logging`` at WARNING or above
goes to a log file (``library_log()``, in ftbench's cache) instead of Python's last-resort
stderr handler; known harmless warnings are muted. transformers' own errors still reach stderr.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from ftbench.paths import cache_dir

_DONE = False

# Harmless advisories seen with transformers 5 / bitsandbytes 0.50 on CPU.
_IGNORED_WARNINGS = (
    r".*`gradient_checkpointing` is deprecated.*",
    r".*`is_gradient_checkpointing` is deprecated.*",
    r".*kernels-community.*",
    r".*torch_dtype.*is deprecated.*",
)


def library_log() -> Path:
    """Where libraries' log records go: ``<cache>/logs/libraries.log``."""
    return cache_dir() / "logs" / "libraries.log"


class _LazyFileHandler(logging.Handler):
    """Appends to ``library_log()``, creating it on the first record; a log that cannot be
    written drops the record (a warning is not worth failing a run or a terminal line)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            path = library_log()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(self.format(record) + "\n")
        except Exception:  # an unwritable log must not surface as a traceback
            pass


def _route_library_logs() -> None:
    """Library loggers without handlers of their own propagate to the root logger; with no
    handler there, Python prints WARNING records on stderr (logging.lastResort). Give the root
    logger a file handler instead, once."""
    root = logging.getLogger()
    if not any(isinstance(h, _LazyFileHandler) for h in root.handlers):
        root.addHandler(_LazyFileHandler())


def quiet_libraries() -> None:
    """Call before importing transformers / peft / bitsandbytes (idempotent)."""
    global _DONE
    if _DONE:
        return
    _DONE = True
    _route_library_logs()
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # bitsandbytes warns at import on CPUs with AVX512-BF16 that an optional kernel package is
    # missing; its pure-torch fallback is what runs, and the doctor reports the backend.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    for pattern in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    try:
        # after the settings above, which transformers reads as it loads: this module exists to
        # run before transformers is imported
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # the doctor reports a missing transformers itself
        pass
