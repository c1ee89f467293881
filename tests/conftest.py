"""Shared test set-up: no network, an isolated cache, deterministic threads."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports transformers/datasets/huggingface_hub.
_CACHE = tempfile.mkdtemp(prefix="ftbench-test-cache-")
os.environ.setdefault("FTBENCH_CACHE", _CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("FTBENCH_RUNS_DIR", None)
os.environ.pop("NO_COLOR", None)

# The reliability suite's tally (tests/reliability_tally.py): a session fixture and the
# end-of-session summary. Imported here so the hooks are registered for every run of the suite.
from reliability_tally import (  # noqa: E402,F401
    pytest_sessionfinish, pytest_terminal_summary, quick_cpu_runs, tally,
)
