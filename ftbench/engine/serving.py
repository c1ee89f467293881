"""Serving cost of a trained run: size on disk, latency and throughput (docs/serving.md).

Opt-in (``[train] serving = true`` or ``ftbench run --serving``): measured after the final
evaluation of a completed run, on the run's device and precision (bf16 / fp16 autocast where
the run used it), never counted in training or evaluation time. The result is
``record.serving``:

* **size on disk** of what would ship, written as safetensors to a temporary folder, measured
  and removed: the peft adapter (``save_pretrained``: adapter weights and the trained head),
  the trainable tensors of ftbench's own adapters and freeze methods, or the whole checkpoint
  for full fine-tuning;
* three variants of the model, each timed the same way: ``base`` (peft's
  ``disable_adapter()``), ``unmerged`` (the model as trained) and ``merged`` (LoRA and IA3
  through peft's ``merge_and_unload`` on a copy); a variant that cannot be measured is null
  and ``<variant>_note`` says why, in words. ``merge_max_abs_diff`` is the largest difference
  between the merged and unmerged outputs on one eval batch: the check that merging is right;
* classification and QA: the median latency of ``REPEATS`` batch-1 forwards (one eval example
  each) after ``WARMUP`` warm-up forwards, and samples/s over ``BATCHES`` eval batches;
* causal LM: greedy generation of ``NEW_TOKENS`` tokens: the median time to the first token
  (``ttft_ms``, a one-token generation), tokens/s at batch 1 and tokens/s at the eval batch.

A failure here never fails the run: what went wrong is recorded as the variant's note.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import GenerationConfig

from ftbench.terms import json_safe

WARMUP = 3        # untimed forwards (or generations) before each variant is timed
REPEATS = 20      # batch-1 forwards timed (their median is the latency)
BATCHES = 5       # eval batches timed for the throughput
GEN_REPEATS = 5   # causal LM: batch-1 generations timed (TTFT and tokens/s)
NEW_TOKENS = 32   # causal LM: tokens generated per timed generation

PEFT_METHODS = frozenset({"lora", "qlora", "ia3", "prefix"})
MERGEABLE = frozenset({"lora", "ia3"})
_OWN_WEIGHTS = ("not applicable: the method trains the model's own weights, so there is no "
                "separate adapter to merge")
WHY_NOT_MERGED: dict[str, str] = {
    "qlora": ("not merged: the LoRA update would have to be rounded into 4-bit NF4 weights "
              "(or the base dequantized to 16-bit first), which changes the model; QLoRA ships "
              "as base plus adapter"),
    "prefix": ("not mergeable: prefix tuning adds key/value vectors to every attention layer, "
               "which no weight matrix can absorb"),
    "adapters": ("not mergeable: bottleneck adapters are extra layers with a non-linearity, "
                 "which cannot be folded into the weights"),
    "full": _OWN_WEIGHTS, "head-only": _OWN_WEIGHTS, "last-layer": _OWN_WEIGHTS,
    "bitfit": _OWN_WEIGHTS,
}
WHY_NO_BASE: dict[str, str] = {
    "full": "not measured: full fine-tuning overwrites the base weights (no switch turns it off)",
    "head-only": ("not measured: the trained head replaces the base's; without it the model "
                  "has no head to serve"),
    "last-layer": "not measured: the trained layers overwrite the base's (no switch turns them off)",
    "bitfit": "not measured: the trained biases overwrite the base's (no switch turns them off)",
    "adapters": ("not measured: ftbench's bottleneck adapters are forward hooks with no off "
                 "switch"),
}
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def measure_run(trainer: Any, prepared: Any, method: str, task: str, device: str,
                precision: str, log: Callable[[str], None], processes: int = 1) -> dict[str, Any]:
    """``record.serving`` for a completed run (the engine's one call)."""
    if processes > 1:
        return {"kind": None, "device": device, "precision": precision,
                "note": (f"not measured: the run used {processes} processes (torchrun); "
                         "serving is timed on one device, in a one-process run")}
    batch = int(trainer.args.per_device_eval_batch_size)
    try:
        if prepared.generative is not None:
            evaluator = prepared.generative
            pad = evaluator.tokenizer.pad_token_id
            eos = evaluator.tokenizer.eos_token_id
            inputs: Inputs = GenerateInputs(list(evaluator.prompts), batch,
                                            int(pad if pad is not None else eos or 0), eos)
        else:
            inputs = ForwardInputs(prepared.eval_dataset, trainer.data_collator, batch)
        return measure(trainer.model, inputs, method, task, device, precision, log)
    except Exception as exc:  # the run completed: a serving failure must not fail it
        log(f"serving cost not measured: {_line(exc)}")
        return {"kind": None, "device": device, "precision": precision,
                "note": f"not measured: {_line(exc)}"}


def measure(model: Any, inputs: "Inputs", method: str, task: str, device: str, precision: str,
            log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Size and the three variants' timings of ``model`` (trained with ``method``)."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {"kind": inputs.kind, "device": device, "precision": precision,
                           "batch_size": inputs.batch_size, "warmup": WARMUP, **inputs.counts()}
    log("serving: size on disk, then latency and throughput (base, unmerged, merged)")
    try:
        out.update(size_on_disk(model, method))
    except Exception as exc:
        out.update(size_bytes=None, size_of=None, size_note=f"not measured: {_line(exc)}")
    was_training = model.training
    model.eval()
    runner = _Timer(torch, device, precision)
    try:
        out["base"], out["base_note"] = _variant(lambda: _base(model, method), inputs, runner)
        out["unmerged"], out["unmerged_note"] = _variant(
            lambda: contextlib.nullcontext(model), inputs, runner)
        reference = _guarded(lambda: inputs.outputs(model, runner))
        out["merged"], out["merged_note"] = None, WHY_NOT_MERGED.get(method)
        out["merge_max_abs_diff"] = None
        if method in MERGEABLE:
            diff: list[float] = []
            out["merged"], out["merged_note"] = _variant(
                lambda: _merged(model, inputs, runner, reference, diff), inputs, runner)
            out["merge_max_abs_diff"] = diff[0] if diff else None
    finally:
        model.train(was_training)
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    out["measure_s"] = round(time.perf_counter() - t0, 3)
    return json_safe(out)


# --- size on disk ---------------------------------------------------------------------------

def size_on_disk(model: Any, method: str) -> dict[str, Any]:
    """What would ship, saved as safetensors to a temporary folder, measured, removed."""
    folder = Path(tempfile.mkdtemp(prefix="ftbench-serving-"))
    try:
        if method in PEFT_METHODS:
            model.save_pretrained(str(folder), safe_serialization=True)
            what = "adapter (peft save_pretrained: the adapter weights, and a trained task head)"
        elif method == "full":
            model.save_pretrained(str(folder))
            what = "full checkpoint (save_pretrained)"
        else:
            tensors = {name: p.detach().to("cpu").contiguous()
                       for name, p in model.named_parameters() if p.requires_grad}
            save_file(tensors, str(folder / "trainable.safetensors"))
            what = "trainable tensors (the only weights that differ from the base)"
        files = sorted(folder.rglob("*.safetensors"))
        if not files:
            raise RuntimeError("nothing was saved as safetensors")
        return {"size_bytes": sum(f.stat().st_size for f in files), "size_of": what,
                "size_files": [f.name for f in files], "size_note": None}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the variants ---------------------------------------------------------------------------

@contextlib.contextmanager
def _base(model: Any, method: str) -> Iterator[Any]:
    if method not in PEFT_METHODS:
        raise _NotMeasured(WHY_NO_BASE.get(method, "not measured: no adapter to disable"))
    if method == "prefix":
        # the wrapped model called directly gets no prefix (peft 0.22's disable_adapter fails
        # for prompt learning on models without prepare_inputs_for_generation)
        yield model.get_base_model()
        return
    with model.disable_adapter():
        yield model


@contextlib.contextmanager
def _merged(model: Any, inputs: "Inputs", runner: "_Timer", reference: Any,
            diff: list[float]) -> Iterator[Any]:
    """A merged copy (peft ``merge_and_unload``), checked against the unmerged outputs."""
    merged = copy.deepcopy(model).merge_and_unload()
    merged.eval()
    try:
        if reference is not None:
            got = inputs.outputs(merged, runner)
            largest = float((got - reference).abs().max())
            if math.isfinite(largest):
                diff.append(largest)
        yield merged
    finally:
        del merged
        gc.collect()


def _variant(context: Callable[[], Any], inputs: "Inputs", runner: "_Timer"
             ) -> tuple[dict[str, Any] | None, str | None]:
    try:
        with context() as model:
            return inputs.time(model, runner), None
    except _NotMeasured as why:
        return None, str(why)
    except Exception as exc:  # one variant that fails must not cost the others (or the run)
        return None, f"not measured: {_line(exc)}"


def _guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


class _NotMeasured(Exception):
    """A variant that does not exist for the method; the message says why."""


class _Timer:
    """Calls under the run's autocast and inference mode; seconds with the device synced."""

    def __init__(self, torch: Any, device: str, precision: str) -> None:
        self.torch = torch
        self.device = device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def call(self, fn: Callable[[], Any]) -> Any:
        autocast = self.torch.autocast(device_type=self.device, dtype=self.dtype) \
            if self.dtype is not None else contextlib.nullcontext()
        with self.torch.inference_mode(), autocast:
            return fn()

    def seconds(self, fn: Callable[[], Any]) -> float:
        self._sync()
        t = time.perf_counter()
        self.call(fn)
        self._sync()
        return time.perf_counter() - t

    def _sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()


# --- inputs: forwards (classification, QA) and generation (causal LM) ----------------------

class Inputs:
    kind = ""
    batch_size = 1

    def counts(self) -> dict[str, Any]:
        raise NotImplementedError

    def time(self, model: Any, runner: _Timer) -> dict[str, Any]:
        raise NotImplementedError

    def outputs(self, model: Any, runner: _Timer) -> Any:
        """Float outputs of one eval batch, flattened (the merge check)."""
        raise NotImplementedError


def _device_of(model: Any) -> Any:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _on(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items()}


def _flat(output: Any) -> Any:
    parts = [output[k].float().flatten() for k in ("logits", "start_logits", "end_logits")
             if k in output and output[k] is not None]
    return torch.cat(parts).cpu()


class ForwardInputs(Inputs):
    """Eval examples, collated the way evaluation collates them (model inputs only)."""

    kind = "forward"

    def __init__(self, dataset: Any, collator: Callable[[Any], dict[str, Any]],
                 batch_size: int) -> None:
        self.collate = collator
        self.batch_size = max(1, batch_size)
        n = len(dataset)
        wanted = max(REPEATS, self.batch_size * BATCHES)
        self.rows = [{k: v for k, v in dataset[i % n].items() if k in MODEL_INPUTS}
                     for i in range(min(n, wanted))]
        if not self.rows:
            raise ValueError("no eval examples to time")

    def counts(self) -> dict[str, Any]:
        return {"repeats": REPEATS, "batches": BATCHES}

    def _batches(self) -> list[list[dict[str, Any]]]:
        rows = self.rows
        return [[rows[(b * self.batch_size + i) % len(rows)] for i in range(self.batch_size)]
                for b in range(BATCHES)]

    def time(self, model: Any, runner: _Timer) -> dict[str, Any]:
        device = _device_of(model)
        singles = [_on(self.collate([self.rows[i % len(self.rows)]]), device)
                   for i in range(REPEATS)]
        batches = [_on(self.collate(rows), device) for rows in self._batches()]
        for i in range(WARMUP):
            runner.call(lambda i=i: model(**singles[i % len(singles)]))
        latency = statistics.median(runner.seconds(lambda s=s: model(**s)) for s in singles)
        runner.call(lambda: model(**batches[0]))   # warm-up at the eval batch's shapes
        total = sum(runner.seconds(lambda b=b: model(**b)) for b in batches)
        return {"latency_ms": round(latency * 1000, 4),
                "samples_per_s": round(self.batch_size * len(batches) / total, 2)}

    def outputs(self, model: Any, runner: _Timer) -> Any:
        batch = _on(self.collate(self._batches()[0]), _device_of(model))
        return _flat(runner.call(lambda: model(**batch)))


class GenerateInputs(Inputs):
    """Held-out prompts (token ids), generated from greedily, left-padded in batches."""

    kind = "generate"

    def __init__(self, prompts: Sequence[list[int]], batch_size: int, pad_id: int,
                 eos_id: int | None) -> None:
        if not prompts:
            raise ValueError("no prompts to time")
        self.prompts = list(prompts)
        self.batch_size = max(1, batch_size)
        self.pad_id = pad_id
        self.eos_id = eos_id

    def counts(self) -> dict[str, Any]:
        return {"repeats": GEN_REPEATS, "new_tokens": NEW_TOKENS}

    def _tensors(self, prompts: Sequence[list[int]], device: Any) -> tuple[Any, Any]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(prompt)
            mask[row, width - len(prompt):] = 1
        return ids.to(device), mask.to(device)

    def _generate(self, model: Any, runner: _Timer, prompts: Sequence[list[int]],
                  tokens: int) -> tuple[float, int]:
        """Seconds for ``tokens`` new tokens per prompt, and the new tokens counted."""
        ids, mask = self._tensors(prompts, _device_of(model))
        # exactly ``tokens`` tokens: the end-of-sequence token is held back until then
        config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                  num_beams=1, pad_token_id=self.pad_id, eos_token_id=self.eos_id,
                                  use_cache=True)
        result: list[Any] = []
        seconds = runner.seconds(lambda: result.append(
            model.generate(input_ids=ids, attention_mask=mask, generation_config=config)))
        return seconds, (int(result[0].shape[1]) - ids.shape[1]) * len(prompts)

    def time(self, model: Any, runner: _Timer) -> dict[str, Any]:
        one = [self.prompts[i % len(self.prompts)] for i in range(GEN_REPEATS)]
        for i in range(WARMUP):
            self._generate(model, runner, [one[i % len(one)]], 2)
        ttft = statistics.median(self._generate(model, runner, [p], 1)[0] for p in one)
        runs = [self._generate(model, runner, [p], NEW_TOKENS) for p in one]
        seconds = statistics.median(s for s, _ in runs)
        new = runs[0][1]
        batch = [self.prompts[i % len(self.prompts)] for i in range(self.batch_size)]
        self._generate(model, runner, batch, 2)   # warm-up at the eval batch's shapes
        batch_s, batch_new = self._generate(model, runner, batch, NEW_TOKENS)
        return {"ttft_ms": round(ttft * 1000, 4), "tokens_per_s": round(new / seconds, 2),
                "batch_tokens_per_s": round(batch_new / batch_s, 2)}

    def outputs(self, model: Any, runner: _Timer) -> Any:
        ids, mask = self._tensors(self.prompts[:self.batch_size], _device_of(model))
        return _flat(runner.call(lambda: model(input_ids=ids, attention_mask=mask)))


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
