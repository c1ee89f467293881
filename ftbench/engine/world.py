"""Where this process stands in a distributed run: rank facts from the environment.

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and ``LOCAL_WORLD_SIZE`` for every
process it starts; a plain ``ftbench run`` has none of them and is a world of one. The
decisions that depend on it (which backend, which device, which NVML index, who emits and
writes) are pure functions here so a CPU test can force the GPU branches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

# Collectives that wait longer than this raise instead of hanging (TrainingArguments.ddp_timeout
# and the process group's own timeout). A tiny benchmark step takes milliseconds; a first step
# under torch.compile can take minutes, so this is generous, not tight.
DDP_TIMEOUT_S = 600


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone emits events and writes the record (docs/design.md)."""
        return self.rank == 0


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    value = env.get(key)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def from_env(env: Mapping[str, str] | None = None) -> World:
    env = os.environ if env is None else env
    size = _int(env, "WORLD_SIZE", 1)
    return World(rank=_int(env, "RANK", 0), local_rank=_int(env, "LOCAL_RANK", 0), size=size,
                 local_size=_int(env, "LOCAL_WORLD_SIZE", size))


def backend(device: str) -> str:
    """nccl between GPUs, gloo between CPU processes."""
    return "nccl" if device == "cuda" else "gloo"


def cuda_device(world: World) -> int:
    """The CUDA device this rank drives: its local rank, among the devices it can see."""
    return world.local_rank


def nvml_index(world: World, env: Mapping[str, str] | None = None) -> int:
    """The NVML (physical) index of this rank's GPU. NVML ignores CUDA_VISIBLE_DEVICES, so a
    process pinned to ``CUDA_VISIBLE_DEVICES=2,3`` with local rank 1 reads GPU 3."""
    env = os.environ if env is None else env
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    local = cuda_device(world)
    if local < len(visible) and visible[local].isdigit():
        return int(visible[local])
    return local
