"""Agreement between the processes of a torchrun job: joining the process group, the smallest
of the ranks' values, the whole job's totals, and stopping together after a step.

Host-side agreements run over a gloo group (``side``) so they never sync a GPU stream; on a
CPU job that is the world group itself. torch is imported inside the functions: only a
distributed run, which has already loaded it, calls them.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, Callable

from ftbench.engine import world as worlds
from ftbench.engine.failures import one_line

# what each rank's memory figures are called in record.memory (gathered into per_rank)
_PEAKS = ("torch_peak_allocated_mb", "torch_peak_reserved_mb", "nvml_peak_used_mb",
          "process_peak_rss_mb")


def join_world(device: str) -> Any:
    """Join torchrun's process group (nccl on GPUs, gloo on CPU) with a timeout, so a
    collective whose peer died raises instead of hanging; return a gloo group for the
    host-side agreements (cancel, totals) that must not sync a GPU stream."""
    # torch only as a run has it: engine.session imports this module before quiet_libraries()
    import torch.distributed as dist

    timeout = timedelta(seconds=worlds.DDP_TIMEOUT_S)
    if not dist.is_initialized():
        dist.init_process_group(worlds.backend(device), timeout=timeout)
    return dist.new_group(backend="gloo", timeout=timeout) \
        if worlds.backend(device) != "gloo" else dist.group.WORLD


def agree_min(value: int, side: Any) -> int:
    """The smallest of the ranks' values (host-side, over the gloo group)."""
    import torch  # as in join_world: not at import
    import torch.distributed as dist

    tensor = torch.tensor([int(value)])
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN, group=side)
    return int(tensor.item())


def any_cancelled(cancel: threading.Event, side: Any) -> None:
    """After an optimizer step: if any rank's ``cancel`` is set, set it on every rank (so no
    rank waits in a collective for a peer that already left). One tiny all-reduce."""
    import torch  # as in join_world: not at import
    import torch.distributed as dist

    flag = torch.tensor([1 if cancel.is_set() else 0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=side)
    if int(flag.item()) and not cancel.is_set():
        cancel.set()


def world_totals(world: worlds.World, side: Any, nvml_index: int | None, memory: dict[str, Any],
                 samples: int, tokens: int, trained: int,
                 log: Callable[[str, str], None]) -> tuple[int, int, int]:
    """Samples and tokens summed over the ranks, and each rank's peak memory in
    ``memory["per_rank"]``. Call only when every rank finished training at the same step (a
    collective with a dead peer would wait for the timeout). A peer gone at the very end:
    this rank's figures stay and ``per_rank`` is not set."""
    import torch.distributed as dist  # as in join_world: not at import

    mine = {"rank": world.rank, "local_rank": world.local_rank,
            "samples": samples, "tokens": tokens, "trained": trained,
            "nvml_index": nvml_index, **{k: memory.get(k) for k in _PEAKS}}
    gathered: list[Any] = [None] * world.size
    try:
        dist.all_gather_object(gathered, mine, group=side)
    except Exception as exc:  # a peer gone at the very end: keep this rank's figures
        log(f"per-rank totals unavailable: {one_line(exc)}", "warning")
        return samples, tokens, trained
    memory["per_rank"] = [{k: v for k, v in g.items() if k not in ("samples", "tokens", "trained")}
                          for g in gathered]
    return (sum(g["samples"] for g in gathered), sum(g["tokens"] for g in gathered),
            sum(g["trained"] for g in gathered))
