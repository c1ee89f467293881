"""Instruction fine-tuning (SFT) of decoder LMs, wired for the engine: the ``causal-lm`` task.

``prepare`` loads (prompt, response) pairs (`ftbench.data.sft_sources`), renders them with the
tokenizer's chat template or a named one (`ftbench.tasks.sft_format`) and tokenizes them:
labels are -100 over the prompt, so by default the loss covers only the response tokens.
Batches are padded per batch (right padding for training; generation pads on the left).

An example whose prompt and response do not fit in ``train.max_length`` tokens is left out
and counted (``data_info.too_long_train`` / ``too_long_eval``, and how many of those had a prompt
that alone is too long), never cut through its answer.

The Trainer's periodic evaluation reports the held-out ``loss`` during training; the
comparison that matters, base vs tuned, is `SFTEvaluator` (`ftbench.tasks.causal_lm_eval`),
which the engine runs on the base model before training and on the tuned model after it.

Settings from ``data.options`` (checked before any run by `ftbench.tasks.causal_lm_checks`):
``template``, ``loss_on``, ``max_new_tokens`` (default 128), ``samples`` (generations kept
in the record, default 5), ``general_text`` / ``general_size`` (the forgetting sample), plus the
data source's own (``split_seed``, column names, math-problems difficulty).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import AutoModelForCausalLM

from ftbench.data.sft_sources import SFTExample, general_texts, load_sft
from ftbench.errors import DataUnavailable
from ftbench.spec import RunSpec
from ftbench.tasks.base import Prepared
from ftbench.tasks.causal_lm_eval import SFTEvaluator
from ftbench.tasks.reuse import TokenCache, cached, fingerprint, tokenizer_key
from ftbench.tasks.sft_format import Formatter, SFTSettings, template_kind


class TokenizedSFT:
    """Pre-tokenized examples: ``input_ids``, ``attention_mask``, ``labels`` (lists of ints)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]

    def lengths(self) -> list[int]:
        return [len(r["input_ids"]) for r in self.rows]

    def response_tokens(self) -> int:
        """Tokens the loss covers (labels after the shift: the first token is never a target)."""
        return sum(sum(1 for x in r["labels"][1:] if x != -100) for r in self.rows)


@dataclass
class Encoded:
    dataset: TokenizedSFT
    kept: list[SFTExample]
    prompt_ids: list[list[int]]
    too_long: int
    prompt_too_long: int


def encode(examples: Sequence[SFTExample], fmt: Formatter, loss_on: str, max_length: int) -> Encoded:
    """Tokenize; leave out (and count) what does not fit in ``max_length`` tokens."""
    rows: list[dict[str, list[int]]] = []
    kept: list[SFTExample] = []
    prompts: list[list[int]] = []
    too_long = prompt_too_long = 0
    for ex in examples:
        ids, labels, n_prompt = fmt.example(ex.prompt, ex.response, loss_on)
        if len(ids) > max_length:
            too_long += 1
            prompt_too_long += n_prompt >= max_length
            continue
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
        kept.append(ex)
        prompts.append(ids[:n_prompt])
    return Encoded(TokenizedSFT(rows), kept, prompts, too_long, prompt_too_long)


class CausalLMTask:
    name = "causal-lm"

    def prepare(self, spec: RunSpec, tokenizer: Any, log: Callable[[str], None],
                cache: TokenCache | None = None) -> Prepared:
        settings = SFTSettings.from_options(spec.data.options)
        kind = template_kind(settings, bool(getattr(tokenizer, "chat_template", None)))
        notes: list[str] = []
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise DataUnavailable("the tokenizer has neither a padding nor an end-of-sequence "
                                      "token; the causal-lm task needs one to pad batches")
            tokenizer.pad_token = tokenizer.eos_token
            notes.append("the tokenizer has no padding token: padding with its end-of-sequence "
                         "token (padding is masked out of attention and loss)")
        tokenizer.padding_side = "right"   # training batches; generation pads on the left itself
        fmt = Formatter(tokenizer, kind)
        data = load_sft(spec.data, seed=spec.seed, offline=spec.offline, log=log)
        max_length = spec.train.max_length

        def make() -> tuple[Encoded, Encoded]:
            return (encode(data.train, fmt, settings.loss_on, max_length),
                    encode(data.eval, fmt, "response", max_length))

        key = (self.name, tokenizer_key(tokenizer), max_length, kind, settings.loss_on,
               fingerprint(data.train, data.eval))
        (train, evald), reused = cached(cache, key, make, lambda d: sum(d[0].dataset.lengths())
                                        + sum(d[1].dataset.lengths()))
        if reused:
            log("data: tokenised copy reused (same data, tokenizer, template and max_length as "
                "an earlier run)")
        for label, enc, total in (("training", train, len(data.train)), ("eval", evald, len(data.eval))):
            if enc.too_long:
                log(f"{enc.too_long} of {total} {label} examples do not fit in max_length "
                    f"{max_length} tokens ({enc.prompt_too_long} of them by the prompt alone) and "
                    "were left out, not truncated")
        if not len(train.dataset) or not len(evald.dataset):
            which = "training" if not len(train.dataset) else "eval"
            raise DataUnavailable(f"no {which} example fits in max_length {max_length} tokens; "
                                  "raise train.max_length")
        texts, general_source = general_texts(dict(spec.data.options), spec.offline, log)
        general = [ids[:max_length] for ids in
                   (list(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts)]
        general = [ids for ids in general if len(ids) > 1]
        batch = spec.train.eval_batch_size or (spec.train.batch_size * 2
                                               if isinstance(spec.train.batch_size, int) else 16)
        evaluator = SFTEvaluator(
            tokenizer, evald.prompt_ids, [ex.answer for ex in evald.kept], evald.dataset.rows,
            general, max_new_tokens=settings.max_new_tokens, batch_size=batch,
            samples=settings.samples, sample_prompts=[ex.prompt for ex in evald.kept])
        lengths = train.dataset.lengths()
        data_info: dict[str, Any] = {
            "source": data.source,
            "train_size": len(train.dataset),
            "eval_size": len(evald.dataset),
            "template": "chat template of the tokenizer" if kind == "chat" else kind,
            "loss_on": settings.loss_on,
            "checkable_answers": evaluator.checkable,
            "max_new_tokens": settings.max_new_tokens,
            "max_length": max_length,
            "too_long_train": train.too_long,
            "too_long_train_by_prompt": train.prompt_too_long,
            "too_long_eval": evald.too_long,
            "too_long_eval_by_prompt": evald.prompt_too_long,
            "mean_train_tokens": round(sum(lengths) / len(lengths), 1),
            "mean_response_tokens": round(train.dataset.response_tokens() / len(lengths), 1),
            "general_text": general_source,
            "general_texts": len(general),
            "notes": list(data.notes) + notes,
        }
        return Prepared(
            train_dataset=train.dataset,
            eval_dataset=evald.dataset,
            model_class=AutoModelForCausalLM,
            model_kwargs={},
            compute_metrics=None,
            data_info=data_info,
            generative=evaluator,
        )
