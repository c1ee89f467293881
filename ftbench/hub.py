"""Is the Hugging Face hub reachable? Asked once per process, answered in seconds.

Loading from an unreachable hub otherwise retries for minutes; ftbench fails fast instead
and tells the user how to run offline.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache

HUB_HOST = "huggingface.co"
PROBE_TIMEOUT_S = 3.0


@lru_cache(maxsize=1)
def hub_reachable() -> tuple[bool, str]:
    """(reachable, reason). Honours HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False, f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT", f"https://{HUB_HOST}")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    port = 443
    if ":" in host:
        host, _, port_text = host.partition(":")
        port = int(port_text) if port_text.isdigit() else 443
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True, "reachable"
    except OSError as exc:
        return False, f"{host} unreachable: {exc.strerror or exc.__class__.__name__}"
