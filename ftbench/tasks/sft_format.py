"""How the ``causal-lm`` task turns (prompt, response) pairs into tokens, and its settings.

No heavy imports: the pre-run checks (`ftbench.tasks.causal_lm_checks`) validate the same
settings before anything loads.

Templates (``data.options.template``):

* ``auto`` (default): the tokenizer's chat template when it has one, else an error naming the
  choices; ``chat``: the chat template, required.
* ``plain``: ``Question: {prompt}\\nAnswer: `` then ``{response}<eos>``.
* ``alpaca``: the Alpaca instruction layout (``### Instruction:`` / ``### Response:``), then
  ``{response}<eos>``.
* ``step-by-step``: ``Question: {prompt} Think step by step.\nAnswer:`` then ``{response}<eos>``,
  the query template of peft's method_comparison (which adds no end-of-sequence token).

With a chat template the prompt is the user turn plus the generation prompt
(``add_generation_prompt=True``) and the completion is what the full conversation adds after
it (the assistant turn and its end-of-turn token), so the model learns to stop. Prompt and
completion are tokenized apart and concatenated (no token straddles the boundary); the labels
are -100 over the prompt (``loss_on = "response"``, the default) or copy every token
(``"all"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftbench.errors import FtbenchError

TEMPLATES: tuple[str, ...] = ("auto", "chat", "plain", "alpaca", "step-by-step")
NAMED_TEMPLATES: dict[str, str] = {
    "plain": "Question: {prompt}\nAnswer: ",
    # peft's method_comparison query template (MetaMathQA -> GSM8K)
    "step-by-step": "Question: {prompt} Think step by step.\nAnswer:",
    "alpaca": ("Below is an instruction that describes a task. Write a response that "
               "appropriately completes the request.\n\n### Instruction:\n{prompt}\n\n"
               "### Response:\n"),
}
DATA_OPTION_KEYS: tuple[str, ...] = (
    # formatting and evaluation
    "template", "loss_on", "max_new_tokens", "samples", "general_text", "general_size",
    # data selection
    "split_seed", "prompt_column", "response_column", "answer_column",
    # math-problems difficulty
    "min_ops", "max_ops", "max_start", "operations",
)
IGNORE_INDEX = -100


class TemplateError(FtbenchError):
    """No usable prompt template for this tokenizer."""


@dataclass(frozen=True)
class SFTSettings:
    template: str = "auto"
    loss_on: str = "response"
    max_new_tokens: int = 128
    samples: int = 5

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SFTSettings:
        """The settings in ``data.options`` (one-line `FtbenchError` on a bad or unknown key)."""
        unknown = [k for k in options if k not in DATA_OPTION_KEYS]
        if unknown:
            raise FtbenchError(f"data.options.{unknown[0]}: unknown option for the causal-lm task "
                               f"(known: {', '.join(DATA_OPTION_KEYS)})")
        values: dict[str, Any] = {}
        template = options.get("template", "auto")
        if template not in TEMPLATES:
            raise FtbenchError(f"data.options.template must be one of {', '.join(TEMPLATES)}, "
                               f"got {template!r}")
        values["template"] = template
        loss_on = options.get("loss_on", "response")
        if loss_on not in ("response", "all"):
            raise FtbenchError(f"data.options.loss_on must be response or all, got {loss_on!r}")
        values["loss_on"] = loss_on
        for key, low, high in (("max_new_tokens", 1, 4096), ("samples", 0, 50)):
            if key in options:
                v = options[key]
                if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                    raise FtbenchError(f"data.options.{key} must be an integer from {low} to "
                                       f"{high}, got {v!r}")
                values[key] = v
        return cls(**values)


def template_kind(settings: SFTSettings, has_chat_template: bool) -> str:
    """``chat``, ``plain`` or ``alpaca``: the template this tokenizer gets (see the module doc)."""
    if settings.template in NAMED_TEMPLATES:
        return settings.template
    if has_chat_template:
        return "chat"
    asked = "data.options.template = \"chat\" needs" if settings.template == "chat" else \
        "the causal-lm task needs a prompt template:"
    raise TemplateError(f"{asked} the tokenizer has no chat template; set data.options.template "
                        f"to {', '.join(list(NAMED_TEMPLATES)[:-1])} or {list(NAMED_TEMPLATES)[-1]}")


class Formatter:
    """Prompt / completion text and token ids for one tokenizer and template."""

    def __init__(self, tokenizer: Any, kind: str) -> None:
        self.tokenizer = tokenizer
        self.kind = kind
        if kind != "chat" and not tokenizer.eos_token:
            raise TemplateError(f"template {kind!r} ends each response with the end-of-sequence "
                                "token, and the tokenizer has none")
        # what the tokenizer puts before a text by itself (Llama's BOS): a named template keeps
        # it; a chat template writes its own in the text
        self.lead: list[int] = []
        if kind != "chat":
            bare = self.ids("x")
            full = list(tokenizer("x")["input_ids"])
            at = next((i for i in range(len(full)) if full[i:i + len(bare)] == bare), 0)
            self.lead = full[:at]

    def prompt_text(self, prompt: str) -> str:
        if self.kind == "chat":
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            return str(text)
        return NAMED_TEMPLATES[self.kind].format(prompt=prompt)

    def completion_text(self, prompt: str, response: str) -> str:
        if self.kind != "chat":
            return response + self.tokenizer.eos_token
        head = self.prompt_text(prompt)
        full = str(self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
            tokenize=False))
        if not full.startswith(head):
            raise TemplateError("the tokenizer's chat template does not extend the prompt with "
                                "the answer (its generation prompt differs from the assistant "
                                "turn); set data.options.template to plain or alpaca")
        return full[len(head):]

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, prompt: str) -> list[int]:
        """What generation starts from: the same ids the training example begins with."""
        return self.lead + self.ids(self.prompt_text(prompt))

    def example(self, prompt: str, response: str, loss_on: str) -> tuple[list[int], list[int], int]:
        """(input_ids, labels, prompt length) of one training example."""
        prompt_ids = self.prompt_ids(prompt)
        completion_ids = self.ids(self.completion_text(prompt, response))
        ids = prompt_ids + completion_ids
        if loss_on == "all":
            return ids, list(ids), len(prompt_ids)
        return ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids, len(prompt_ids)
