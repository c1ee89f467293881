"""Silence third-party chatter that is noise in a benchmark's output.

ftbench reports what matters itself (model loaded, parameters, data source); the libraries'
own progress bars and advisory warnings would interleave with that on every run. Errors still
surface: only progress bars, info logs and known harmless warnings are muted.
"""

from __future__ import annotations

import logging
import os
import warnings

_DONE = False

# Harmless advisories seen with transformers 5 / bitsandbytes 0.50 on CPU.
_IGNORED_WARNINGS = (
    r".*`gradient_checkpointing` is deprecated.*",
    r".*`is_gradient_checkpointing` is deprecated.*",
    r".*kernels-community.*",
    r".*torch_dtype.*is deprecated.*",
)


def quiet_libraries() -> None:
    """Call before importing transformers / peft / bitsandbytes (idempotent)."""
    global _DONE
    if _DONE:
        return
    _DONE = True
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
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # the doctor reports a missing transformers itself
        pass
