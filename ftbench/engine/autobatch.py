"""`batch_size = "auto"`: the largest power-of-two batch whose training step fits in memory.

Like accelerate's `find_executable_batch_size`, it starts high and halves on out-of-memory;
unlike the Trainer's ``auto_find_batch_size`` it decides *before* training, with one probe step
per size on a worst-case batch (every sequence at ``max_length``): forward, backward, and a
stand-in for the optimizer states AdamW allocates at its first step (two fp32 values per
trainable parameter), so the chosen size does not fail at step 1. A size is accepted only if
the probe's peak leaves ``HEADROOM`` of the device free (fragmentation, evaluation batches).

On a CPU there is no memory wall to find (swap would be hit first), so "auto" means
`CPU_BATCH` there, still checked by one probe step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

MAX_BATCH = 1024      # beyond this a step is long enough that bigger batches buy nothing
CPU_BATCH = 32
COMPILE_MIN_STEPS = 1000
AUTO_COMPILE = False  # flip once benchmarks/gpu.py shows compile paying for itself in ftbench
HEADROOM = 0.10       # share of the device memory a probe must leave free


@dataclass
class AutoBatch:
    batch_size: int
    tried: list[tuple[int, str]] = field(default_factory=list)   # (size, "fits" | "out of memory")

    def describe(self) -> str:
        steps = ", ".join(f"{b}: {what}" for b, what in self.tried)
        return f"batch_size auto -> {self.batch_size} ({steps})"


def resolve_compile(asked: bool | None, device: str, total_steps: int, method: str) -> tuple[bool, str]:
    """`torch_compile`: true / false as asked. Unset ("auto") would compile on a CUDA GPU for runs
    long enough to repay compiling (`COMPILE_MIN_STEPS`), except for methods whose modules break
    the graph (QLoRA's 4-bit layers, prefix tuning's past key/values) — once measured to pay.
    Until then (`AUTO_COMPILE` is False: benchmarks/gpu.py's auto_batch stage has not run on a
    GPU yet) auto means off, and the record says why. Returns (on, why)."""
    if asked is not None:
        return asked, "asked for" if asked else "turned off"
    if device != "cuda":
        return False, "auto: no CUDA GPU"
    if method in ("qlora", "prefix"):
        return False, f"auto: {method} does not compile into one graph"
    if total_steps < COMPILE_MIN_STEPS:
        return False, f"auto: {total_steps} steps < {COMPILE_MIN_STEPS}, compiling would not pay"
    if not AUTO_COMPILE:
        return False, "auto: not yet measured to pay on a GPU; pass --compile to try it"
    return True, f"auto: {total_steps} steps on a CUDA GPU"


def start_size(device: str, train_examples: int) -> int:
    """The first size to try: the cap, but never more than the training set rounded up."""
    if device != "cuda":
        return CPU_BATCH
    size = 1
    while size < min(MAX_BATCH, max(1, train_examples)):
        size *= 2
    return size


def find_batch_size(try_size: Callable[[int], None], start: int,
                    is_oom: Callable[[BaseException], bool],
                    cleanup: Callable[[], None] = lambda: None) -> AutoBatch:
    """Halve from ``start`` until ``try_size`` runs without an out-of-memory error.

    Any other exception propagates. Raises MemoryError when even a batch of 1 does not fit.
    """
    result = AutoBatch(batch_size=0)
    size = start
    while size >= 1:
        try:
            try_size(size)
        except Exception as exc:
            if not is_oom(exc):
                raise
            result.tried.append((size, "out of memory"))
            size //= 2
            continue
        finally:
            cleanup()
        result.tried.append((size, "fits"))
        result.batch_size = size
        return result
    raise MemoryError("out of memory even at batch size 1")


def probe_step(model: Any, dataset: Any, collator: Any, max_length: int, device: str,
               precision: str, torch: Any, hook: Callable[[int], None] | None = None,
               total_memory: int | None = None) -> Callable[[int], None]:
    """A ``try_size`` for `find_batch_size`: one worst-case training step at a given size."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)

    def worst_case(size: int) -> dict[str, Any]:
        # the longest examples, repeated to the size, padded to max_length
        n = len(dataset)
        longest = sorted(range(min(n, 4096)), key=lambda i: -len(dataset[i]["input_ids"]))[:size]
        feats = [dataset[longest[i % len(longest)]] for i in range(size)]
        batch = collator(feats)
        for key, value in list(batch.items()):
            if value.dim() == 2 and value.shape[1] < max_length:
                pad = torch.zeros((value.shape[0], max_length - value.shape[1]), dtype=value.dtype)
                if key == "input_ids":
                    pad += int(getattr(collator, "pad_token_id", 0) or 0)
                elif key not in ("attention_mask", "token_type_ids"):
                    pad -= 100
                batch[key] = torch.cat([value, pad], dim=1)
        return {k: v.to(device) for k, v in batch.items()}

    def try_size(size: int) -> None:
        if hook is not None:
            hook(size)
        model.train()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        batch = worst_case(size)
        states = torch.empty(2 * n_trainable, dtype=torch.float32, device=device)
        with torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=dtype,
                            enabled=dtype is not None):
            out = model(**batch)
        loss = out["loss"] if isinstance(out, dict) or hasattr(out, "keys") else out[0]
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            total = total_memory or torch.cuda.get_device_properties(0).total_memory
            if peak > (1 - HEADROOM) * total:
                raise torch.cuda.OutOfMemoryError(
                    f"out of memory: probe peak {peak / 2**30:.1f} GiB leaves under "
                    f"{HEADROOM:.0%} of {total / 2**30:.1f} GiB free")
        del out, loss, states, batch
        for p in trainable:
            p.grad = None

    return try_size
