"""What a run may load and execute from a model folder.

Weights load from safetensors only, unless pickle is allowed (``--allow-pickle`` or
``FTBENCH_ALLOW_PICKLE=1``: pickle files can run code); a folder with pickle weights only is
refused with one line that says so. The folder's own Python code runs only with
``trust_remote_code`` (``--trust-remote-code``), and the run warns when it is on. Both
settings go into ``record.model_info``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ftbench.errors import ModelUnavailable
from ftbench.spec import RunSpec

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class LoadPolicy:
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def loader_kwargs(self) -> dict[str, Any]:
        """For ``from_pretrained``: remote code as allowed, safetensors unless pickle is."""
        return {"trust_remote_code": self.trust_remote_code,
                "use_safetensors": None if self.allow_pickle else True}


def policy_for(spec: RunSpec, env: dict[str, str] | None = None) -> LoadPolicy:
    env = dict(os.environ) if env is None else env
    return LoadPolicy(spec.trust_remote_code,
                      spec.allow_pickle or env.get("FTBENCH_ALLOW_PICKLE") == "1")


def apply_policy(policy: LoadPolicy, model_path: str, model_info: dict[str, Any],
                 log: Callable[[str, str], None]) -> None:
    """Record the policy, warn about remote code, refuse a pickle-only folder."""
    model_info.update(trust_remote_code=policy.trust_remote_code, allow_pickle=policy.allow_pickle)
    if policy.trust_remote_code:
        log("trust_remote_code is on: the model folder's Python code may run", "warning")
    if not policy.allow_pickle:
        refuse_pickle_only(model_path)


def refuse_pickle_only(path: str) -> None:
    """A local folder with pickle weights only: say how to allow them, instead of the loader's
    "no file named model.safetensors" (pickle files can run code, so they stay off unless
    the user passes --allow-pickle or sets FTBENCH_ALLOW_PICKLE=1)."""
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelUnavailable(f"model folder {folder} has pickle weights only ({', '.join(pickles[:3])}); "
                               "ftbench loads safetensors unless you pass --allow-pickle "
                               "(pickle files can run code)")
