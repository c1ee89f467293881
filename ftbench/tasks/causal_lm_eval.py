"""What a causal-LM run measures, the same way on the base model and on the tuned one.

`SFTEvaluator.measure(model)` returns:

* ``response_loss``: mean negative log-likelihood per response token of the held-out
  examples (token-weighted over the whole set, prompt tokens excluded); ``perplexity`` is its
  exponential;
* ``exact_match`` (data with checkable answers only): greedy generation of at most
  ``max_new_tokens`` from each held-out prompt, batched with left padding, stopping at the
  end-of-sequence / end-of-turn token; the final answer is read by the GSM8K convention
  (`extract_answer`: the number after the last ``####``, else the last number in the text) and
  compared with the gold answer as a number;
* ``general_loss``: mean NLL per token of a general-text sample nobody trains on; tuned minus
  base is the run's ``forgetting`` (positive: the model got worse at plain text).

Mixed precision is applied as in training (autocast for bf16 / fp16). The engine measures the
base model before training and the tuned model after it, and keeps both (``record.baseline``,
``record.metrics``) plus a few sample generations side by side (``record.samples``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import torch
from transformers import GenerationConfig

_HASHES = re.compile(r"####\s*([^\n]*)")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
SAMPLE_TEXT_LIMIT = 600     # characters of a prompt / generation kept in the record
# Loss batches are split so their fp32 logits (rows x length x vocabulary) stay under this:
# SmolLM2's 49,152-token vocabulary makes one 160-token example 31 MB of logits, and a whole
# eval batch's worth would set the process's memory peak (and stay in its heap) instead of
# training. The loss is a sum over tokens, so the split does not change it.
LOSS_LOGITS_BYTES = 128 * 2**20


def loss_rows(width: int, vocab: int) -> int:
    """Rows of one loss forward: as many as keep their fp32 logits under `LOSS_LOGITS_BYTES`."""
    return max(1, LOSS_LOGITS_BYTES // max(1, width * vocab * 4))


def extract_answer(text: str) -> str | None:
    """The final answer by the GSM8K convention: the number after the last ``####``, else
    the last number in the text; normalised (no commas, no ``$``, ``42.0`` -> ``42``)."""
    marked = _HASHES.findall(text)
    if marked:
        found = _NUMBER.findall(marked[-1])
        if found:
            return normalise_number(found[0])
    numbers = _NUMBER.findall(text)
    return normalise_number(numbers[-1]) if numbers else None


def normalise_number(text: str) -> str | None:
    clean = text.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = Decimal(clean)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def same_answer(predicted: str | None, gold: str) -> bool:
    return predicted is not None and predicted == normalise_number_text(gold)


def normalise_number_text(gold: str) -> str:
    """A gold answer as `extract_answer` would read it (itself when it is not a number)."""
    found = _NUMBER.findall(gold)
    if found:
        return normalise_number(found[0]) or gold.strip()
    return gold.strip()


@dataclass
class Measured:
    metrics: dict[str, Any]
    generations: list[str] = field(default_factory=list)   # the sample prompts' generations
    seconds: float = 0.0


class SFTEvaluator:
    """Held-out loss / perplexity, generation accuracy and general-text loss (module doc)."""

    def __init__(self, tokenizer: Any, prompts: Sequence[list[int]], answers: Sequence[str | None],
                 eval_examples: Sequence[dict[str, list[int]]], general: Sequence[list[int]],
                 *, max_new_tokens: int, batch_size: int, samples: int,
                 sample_prompts: Sequence[str] = (), stop_ids: Sequence[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.prompts = list(prompts)
        self.answers = list(answers)
        self.eval_examples = list(eval_examples)
        self.general = list(general)
        self.max_new_tokens = max_new_tokens
        self.batch_size = max(1, batch_size)
        self.samples = samples
        self.sample_prompts = list(sample_prompts)[:samples]   # their text, for record.samples
        self.precision = "fp32"
        self.stop_ids = list(stop_ids)
        self.checkable = bool(self.answers) and all(a is not None for a in self.answers)

    def fingerprint(self) -> str:
        """A digest of everything `measure` depends on besides the model and precision."""
        parts = [self.prompts, self.answers, [ex["input_ids"] for ex in self.eval_examples],
                 [ex["labels"] for ex in self.eval_examples], self.general, self.max_new_tokens,
                 self.batch_size, self.samples, self.stop_ids]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    # --- the measurement ----------------------------------------------------------------
    def batches(self) -> int:
        """How many batches `measure` runs (for a progress bar)."""
        def n(items: int) -> int:
            return -(-items // self.batch_size)

        generated = len(self.prompts) if self.checkable else min(self.samples, len(self.prompts))
        return n(len(self.eval_examples)) + n(generated) + n(len(self.general))

    def measure(self, model: Any, precision: str = "fp32",
                progress: Callable[[str], None] | None = None,
                tick: Callable[[int, int], None] | None = None) -> Measured:
        """Every metric of the module doc for ``model`` (``precision``: the run's, for autocast;
        ``progress`` gets a line per phase, ``tick(done, total)`` a call per batch)."""
        t0 = time.perf_counter()
        self.precision = precision
        total = self.batches()
        done = [0]

        def step() -> None:
            done[0] += 1
            if tick is not None:
                tick(done[0], total)

        was_training = model.training
        model.eval()
        frozen = [p for p in model.parameters()
                  if not p.requires_grad and p.is_floating_point()] if self._autocasting() else []
        try:
            # torch's autocast keeps the low-precision copy of a weight for the whole context
            # only when the weight requires grad; frozen weights (the base under LoRA) would be
            # cast again at every generated token. Under no_grad nothing is computed for them.
            for p in frozen:
                p.requires_grad_(True)
            with torch.no_grad(), self._autocast(model):
                metrics: dict[str, Any] = {}
                loss = self.token_loss(model, self.eval_examples, step)
                metrics["response_loss"] = loss
                metrics["perplexity"] = _exp(loss)
                generations: list[str] = []
                if self.checkable:
                    if progress:
                        progress(f"generating answers to {len(self.prompts)} held-out prompts "
                                 f"(greedy, at most {self.max_new_tokens} new tokens)")
                    texts = self.generate(model, self.prompts, step)
                    hits = [same_answer(extract_answer(t), a or "")
                            for t, a in zip(texts, self.answers)]
                    metrics["exact_match"] = sum(hits) / len(hits)
                    metrics["answered"] = sum(extract_answer(t) is not None for t in texts) / len(texts)
                    generations = texts[:self.samples]
                elif self.samples:
                    generations = self.generate(model, self.prompts[:self.samples], step)
                if self.general:
                    metrics["general_loss"] = self.token_loss(
                        model, [{"input_ids": ids, "labels": ids} for ids in self.general], step)
        finally:
            for p in frozen:
                p.requires_grad_(False)
            model.train(was_training)
        return Measured(metrics, generations, time.perf_counter() - t0)

    def _autocasting(self) -> bool:
        return self.precision in ("bf16", "fp16")

    def _autocast(self, model: Any) -> Any:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        device = _device(model)
        return torch.autocast(device_type=device.type, dtype=dtype)

    def token_loss(self, model: Any, examples: Sequence[dict[str, list[int]]],
                   step: Callable[[], None] = lambda: None) -> float | None:
        """Mean NLL per label token over ``examples`` (token-weighted, not batch-weighted)."""
        device = _device(model)
        pad = self._pad_id()
        vocab = _vocab_size(model)
        total = 0.0
        count = 0
        order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
        chunks: list[tuple[list[dict[str, list[int]]], bool]] = []  # (rows, ends a batch)
        for start in range(0, len(order), self.batch_size):
            batch = [examples[i] for i in order[start:start + self.batch_size]]
            width = max(len(ex["input_ids"]) for ex in batch)
            rows = loss_rows(width, vocab)
            chunks += [(batch[i:i + rows], i + rows >= len(batch))
                       for i in range(0, len(batch), rows)]
        for chunk, last in chunks:
            width = max(len(ex["input_ids"]) for ex in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            for row, ex in enumerate(chunk):
                n = len(ex["input_ids"])
                ids[row, :n] = torch.tensor(ex["input_ids"])
                mask[row, :n] = 1
                labels[row, :n] = torch.tensor(ex["labels"])
            n_tokens = int((labels[:, 1:] != -100).sum())
            if last:
                step()
            if n_tokens == 0:
                continue
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                        labels=labels.to(device))
            total += float(out.loss.detach().float()) * n_tokens
            count += n_tokens
        return total / count if count else None

    def generate(self, model: Any, prompts: Sequence[list[int]],
                 step: Callable[[], None] = lambda: None) -> list[str]:
        """Greedy continuations of ``prompts`` (token ids), decoded without special tokens."""
        device = _device(model)
        pad = self._pad_id()
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                  pad_token_id=pad, eos_token_id=self._stop_ids(model),
                                  use_cache=True)
        out: list[str] = [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            width = max(len(prompts[i]) for i in index)
            ids = torch.full((len(index), width), pad, dtype=torch.long)
            mask = torch.zeros((len(index), width), dtype=torch.long)
            for row, i in enumerate(index):   # left padding: every prompt ends at the last column
                n = len(prompts[i])
                ids[row, width - n:] = torch.tensor(prompts[i])
                mask[row, width - n:] = 1
            generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                       generation_config=config)
            texts = self.tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            for i, text in zip(index, texts):
                out[i] = text.strip()
            step()
        return out

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id or 0)

    def _stop_ids(self, model: Any) -> list[int]:
        ids = list(self.stop_ids)
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        config = getattr(model, "generation_config", None)
        extra = getattr(config, "eos_token_id", None)
        for value in extra if isinstance(extra, (list, tuple)) else [extra]:
            if isinstance(value, int):
                ids.append(value)
        return sorted(set(ids))


    def samples_record(self, base: Sequence[str], tuned: Sequence[str] | None) -> list[dict[str, Any]]:
        """``record.samples`` for this eval set (see `samples_record`)."""
        return samples_record(self.sample_prompts, self.answers, base, tuned)


def samples_record(prompts: Sequence[str], golds: Sequence[str | None], base: Sequence[str],
                   tuned: Sequence[str] | None) -> list[dict[str, Any]]:
    """``record.samples``: prompt, gold, base and tuned generations with their answers."""
    rows = []
    for i, (prompt, gold) in enumerate(zip(prompts, golds)):
        if i >= len(base):
            break
        after = tuned[i] if tuned is not None and i < len(tuned) else None
        row: dict[str, Any] = {
            "prompt": _cut(prompt), "gold": gold,
            "base": _cut(base[i]), "base_answer": extract_answer(base[i]),
            "tuned": _cut(after) if after is not None else None,
            "tuned_answer": extract_answer(after) if after is not None else None,
        }
        if gold is not None:
            row["base_correct"] = same_answer(row["base_answer"], gold)
            row["tuned_correct"] = same_answer(row["tuned_answer"], gold) if after is not None else None
        rows.append(row)
    return rows


def _cut(text: str) -> str:
    return text if len(text) <= SAMPLE_TEXT_LIMIT else text[:SAMPLE_TEXT_LIMIT - 1] + "…"


def _exp(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    return math.exp(min(loss, 700.0))


def _vocab_size(model: Any) -> int:
    get = getattr(model, "get_base_model", None)
    base = get() if callable(get) else model
    return int(getattr(getattr(base, "config", None), "vocab_size", 0) or 32_000)


def _device(model: Any) -> Any:
    for param in model.parameters():
        return param.device
    return torch.device("cpu")
