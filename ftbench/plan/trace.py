"""What autograd keeps for backward: one forward pass of the meta model, recorded.

The meta model (no storage) runs one training forward under
``torch.autograd.graph.saved_tensors_hooks``; every tensor autograd saves for backward is
recorded by its base storage (views of one tensor count once), attributed to the innermost
module running at the time, and to the transformer block it belongs to. Parameters and
buffers are not activations and are left out (they are counted as weights), except where
mixed precision makes a copy of them (below).

Three things the meta device does not do the way the real device does are reproduced here:

* **Mixed precision.** ``torch.autocast`` has no meta backend, so a small
  `TorchFunctionMode` applies autocast's rules itself: matmul-like ops (``linear``,
  ``matmul``, ``bmm``, ``addmm``, ``baddbmm``, SDPA) cast their floating inputs to the
  compute dtype, the fp32-list ops to float32 (on CUDA ``layer_norm``, ``softmax``,
  ``log_softmax``, ``cross_entropy`` ...; on CPU the losses only). Like autocast, casts of trainable leaf weights are
  cached for the whole step (one copy each); every other cast is a fresh tensor, so three
  projections of one fp32 input save three half-precision copies, as on a GPU.
* **Attention kernels.** On meta, ``scaled_dot_product_attention`` takes the math path (which
  keeps the ``seq x seq`` probabilities and dropout mask). CUDA runs flash or
  memory-efficient attention, which keep q, k, v, the output and the fp32 log-sum-exp only;
  CPU does the same (its flash kernel) when attention dropout is off, and takes the math
  path when it is on (checked on torch 2.13: ``ScaledDotProductFlashAttentionForCpuBackward0``
  without dropout, a math graph with it). `trace_saved` records whichever the target device
  runs.
* **4-bit layers.** bitsandbytes' ``MatMul4Bit`` keeps only the packed weight for backward,
  never its input, and ``Linear4bit`` returns its result in its input's dtype (fp32 after an
  fp32 LayerNorm, even under autocast, so the GELU after it saves fp32); the meta forward of a
  ``Linear4bit`` is replaced by a matmul that does the same and whose saves are not recorded.

`trace_forward_live` runs the same mode once more without autograd (``torch.no_grad``), as a
frozen backbone's forward or an evaluation runs, and records the most bytes of non-weight
tensors alive at once (`ftbench.plan.live`): the forward working set that saves nothing for
backward and so never shows in `trace_saved`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode

from ftbench.plan.live import LiveBytes
from ftbench.plan.live import nbytes as _bytes

# CUDA autocast op lists (torch.amp docs, "CUDA Ops that can autocast to float16/float32").
_LOW_PRECISION = ("linear", "matmul", "bmm", "mm", "addmm", "baddbmm", "addbmm", "conv1d",
                  "conv2d", "einsum", "scaled_dot_product_attention")
_FP32 = ("layer_norm", "group_norm", "softmax", "log_softmax", "cross_entropy", "nll_loss",
         "mse_loss", "binary_cross_entropy_with_logits", "normalize", "cumsum", "norm")
# CPU autocast's float32 list has the losses but not layer_norm or softmax (torch.amp docs,
# "CPU Ops that can autocast to float32").
_FP32_CPU = ("cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits",
             "l1_loss", "smooth_l1_loss", "kl_div")


@dataclass
class SavedProfile:
    """Bytes saved for backward by one forward at the traced batch and sequence length."""

    other: int = 0                                   # outside the transformer blocks
    blocks: list[int] = field(default_factory=list)  # per block (weight copies saved there included)
    block_inputs: list[int] = field(default_factory=list)  # each block's hidden-state input
    weight_copies: int = 0          # of the above: autocast casts of weights saved for backward
    cached_copies: int = 0          # autocast's cached casts of trainable weights, held all forward
    largest: int = 0                                 # largest single saved tensor

    @property
    def total(self) -> int:
        return self.other + sum(self.blocks)

    def checkpointed(self) -> int:
        """With gradient checkpointing (non-reentrant): each block keeps only its input; one
        block's activations are rebuilt at a time during backward. autocast's cached weight
        casts still live until the forward pass ends, so the larger of the two counts."""
        if not self.blocks:
            return self.total
        return self.other + sum(self.block_inputs) + max(max(self.blocks), self.cached_copies)


class _Recorder:
    def __init__(self, model: Any, blocks: list[Any]) -> None:
        self.torch = torch
        self.params = {id(p) for p in model.parameters()}
        self.params |= {id(b) for b in model.buffers()}
        self.block_of = {id(m): i for i, m in enumerate(blocks)}
        self.current_block: int | None = None
        self.seen: dict[int, Any] = {}
        self.profile = SavedProfile(blocks=[0] * len(blocks), block_inputs=[0] * len(blocks))
        self.suppress = 0
        self.weight_casts: dict[int, Any] = {}  # autocast's cache: id(param) -> cast copy
        self.copy_ids: set[int] = set()

    def pack(self, t: Any) -> Any:
        if self.suppress:
            return t
        self.record(t)
        return t

    def record(self, t: Any) -> None:
        base = t._base if t._base is not None else t
        key = id(base)
        if key in self.seen or key in self.params:
            return
        self.seen[key] = base  # keep it referenced: ids stay unique while we trace
        size = _bytes(base)
        self.profile.largest = max(self.profile.largest, size)
        if key in self.copy_ids:
            self.profile.weight_copies += size
        if self.current_block is None:
            self.profile.other += size
        else:
            self.profile.blocks[self.current_block] += size

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        self.suppress += 1
        try:
            yield
        finally:
            self.suppress -= 1


def _block_hooks(recorder: _Recorder, blocks: list[Any]) -> list[Any]:
    handles = []
    for i, block in enumerate(blocks):
        def pre(module: Any, args: Any, kwargs: Any, i: int = i) -> None:
            recorder.current_block = i
            hidden = args[0] if args else kwargs.get("hidden_states", kwargs.get("x"))
            if hidden is not None and hasattr(hidden, "numel"):
                recorder.profile.block_inputs[i] = _bytes(hidden)

        def post(module: Any, args: Any, kwargs: Any, out: Any) -> None:
            recorder.current_block = None

        handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(block.register_forward_hook(post, with_kwargs=True))
    return handles


def _trace_mode(recorder: _Recorder, mixed_dtype: Any, device: str,
                live: LiveBytes | None = None) -> Any:
    """A TorchFunctionMode (thread-local, unlike patching torch) that applies CUDA autocast's
    casting rules when ``mixed_dtype`` is set and records what the target device's attention
    kernel keeps (see the module docstring). With ``live``, every tensor an op returns and
    every cast it makes is counted there while it is referenced."""
    def cast(value: Any, to: Any) -> Any:
        out = _cast(value, to)
        if live is not None and out is not value:
            live.add(out)
        return out

    def _cast(value: Any, to: Any) -> Any:
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.dtype == to:
            return value
        if id(value) in recorder.params:
            if value.requires_grad and value.is_leaf:  # autocast caches these for the step
                hit = recorder.weight_casts.get(id(value))
                if hit is None:
                    hit = value.to(to)
                    recorder.weight_casts[id(value)] = hit
                    recorder.copy_ids.add(id(hit))
                    recorder.profile.cached_copies += _bytes(hit)
                return hit
            copy = value.to(to)
            recorder.copy_ids.add(id(copy))
            return copy
        return value.to(to)

    def sdpa(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        names = ("query", "key", "value", "attn_mask", "dropout_p")
        bound = dict(zip(names, args))
        bound.update({k: v for k, v in kwargs.items() if k in names})
        dropout = float(bound.get("dropout_p") or 0.0)
        if device == "cpu" and dropout > 0:  # CPU runs the math path: the meta trace is right
            q, k = bound["query"], bound["key"]
            if live is not None and not (q.requires_grad or k.requires_grad):
                # Without autograd nothing of the math path is saved, but inside the kernel the
                # softmaxed scores, dropout's noise and its output (each batch x heads x seq x
                # seq) are alive at once (torch's _scaled_dot_product_attention_math).
                scores = int(q.numel() // q.shape[-1]) * int(k.shape[-2]) * int(q.element_size())
                live.bump(3 * scores)
            return func(*args, **kwargs)
        with recorder.quiet():
            out = func(*args, **kwargs)
        q, k, v, mask = bound["query"], bound["key"], bound["value"], bound.get("attn_mask")
        if q.requires_grad or k.requires_grad or v.requires_grad:
            for t in (q, k, v, out):
                recorder.record(t)
            if mask is not None and mask.dtype == torch.bool:
                # The fused kernels take an additive bias: torch converts a boolean mask into a
                # new one in q's dtype on every call, and that is what backward keeps.
                mask = torch.empty(mask.shape, dtype=q.dtype, device="meta")
            if mask is not None:
                recorder.record(mask)
            lse = torch.empty(int(q.numel() // q.shape[-1]), dtype=torch.float32, device="meta")
            recorder.record(lse)
        return out

    fp32_ops = _FP32 if device == "cuda" else _FP32_CPU

    class TraceMode(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            if mixed_dtype is not None:
                target = (mixed_dtype if name in _LOW_PRECISION
                          else torch.float32 if name in fp32_ops else None)
                if target is not None:
                    args = tuple(cast(a, target) for a in args)
                    kwargs = {k: cast(v, target) for k, v in kwargs.items()}
            if name in ("__bool__", "item") and args and getattr(args[0], "is_meta", False):
                # A data-dependent shortcut (transformers asks "is the mask all ones?", "are
                # these packed sequences?"): meta tensors have no values, so answer "no", the
                # general path, which is also the one padded batches take.
                return False
            out = sdpa(func, args, kwargs) if name == "scaled_dot_product_attention" else func(*args, **kwargs)
            if live is not None:
                live.add(out)
            return out

    return TraceMode()


@contextlib.contextmanager
def _quiet_4bit(recorder: _Recorder, model: Any) -> Iterator[None]:
    """Linear4bit forward on meta: a plain matmul of the logical shape, saving nothing."""
    try:
        import bitsandbytes as bnb  # optional here: without it there is no Linear4bit to replace
    except Exception:
        yield
        return
    patched = []
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            def forward(x: Any, module: Any = module) -> Any:
                # bnb 0.50 Linear4bit.forward: cast x to the compute dtype, MatMul4Bit, then
                # cast the result back to x's dtype (so an fp32 input gives an fp32 output,
                # under autocast too).
                with recorder.quiet():
                    dtype = module.compute_dtype or x.dtype
                    w = torch.empty(module.out_features, module.in_features, device="meta", dtype=dtype)
                    return torch.nn.functional.linear(x.to(dtype), w).to(x.dtype)
            module.forward = forward
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def trace_saved(model: Any, blocks: list[Any], inputs: dict[str, Any], *, mixed_dtype: Any,
                device: str) -> SavedProfile:
    """Run one training forward of the meta ``model`` on ``inputs`` and profile its saves.

    ``mixed_dtype``: the autocast dtype (None for fp32 training); ``device``: "cuda" or "cpu",
    the device whose attention kernels to account for. Pass an ``attention_mask``: the run's
    batches are padded, so attention gets a mask (data-dependent shortcuts that would drop
    it are answered "no" on meta, see `_trace_mode`).
    """
    recorder = _Recorder(model, blocks)
    handles = _block_hooks(recorder, blocks)
    model.train()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_quiet_4bit(recorder, model))
            stack.enter_context(torch.autograd.graph.saved_tensors_hooks(recorder.pack, lambda t: t))
            stack.enter_context(_trace_mode(recorder, mixed_dtype, device))
            out = model(**inputs)
            loss = out["loss"] if hasattr(out, "keys") else out[0]
            if loss is not None:
                recorder.record(loss)
    finally:
        for handle in handles:
            handle.remove()
    return recorder.profile


def trace_forward_live(model: Any, inputs: dict[str, Any], *, mixed_dtype: Any, device: str,
                       training: bool) -> list[int]:
    """The bytes of non-weight tensors alive after every allocation of one forward of the meta
    ``model`` on ``inputs`` that saves nothing for backward (``torch.no_grad``); its maximum is
    what an evaluation (``training=False``: dropout off) or a frozen backbone's training
    forward (``training=True``) holds at once besides the weights, e.g. a block's FFN input,
    intermediate and activation output. Autocast's cached casts of trainable weights count:
    autocast keeps them for the forward. See `ftbench.plan.live.peak_lines`."""
    recorder = _Recorder(model, [])
    live = LiveBytes(recorder.params)
    was_training = model.training
    model.train(training)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_quiet_4bit(recorder, model))
            stack.enter_context(torch.no_grad())
            stack.enter_context(_trace_mode(recorder, mixed_dtype, device, live))
            model(**inputs)
    finally:
        model.train(was_training)
    return live.timeline
