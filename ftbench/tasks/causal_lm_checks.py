"""Checks a causal-LM run passes before anything trains (called from `ftbench.preflight`).

Bad input is one line and exit 2, with nothing trained and no record written:

* the task's settings (``data.options``: template, loss_on, ``max_new_tokens`` >= 1, samples,
  the general-text choice, math-problems difficulty, column names) and a dataset that belongs
  to another task;
* a local data file without the prompt / response columns (it is read here);
* the model: resolved (the bundled SmolLM2 is fetched and converted, a local GGUF converted, so
  a GGUF that transformers cannot load fails here); a tokenizer without a chat template when
  the template is ``auto`` or ``chat``;
* the method: applied to the model's architecture built on PyTorch's meta device (no memory,
  no weights), so whatever the method would refuse at load time is refused now: BitFit on a
  model without biases, more ``last-layer`` blocks than the model has, LoRA targets that do not
  exist. QLoRA is checked as LoRA (its 4-bit loading needs real weights).

A hub model is not fetched here; its checks happen when the run loads it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ftbench.data import KNOWN_DATASETS
from ftbench.data.math_problems import Difficulty
from ftbench.data.sft_sources import pair_columns, read_pairs
from ftbench.errors import FtbenchError
from ftbench.methods import apply_method
from ftbench.models import is_hub_id, resolve_model
from ftbench.quiet import quiet_libraries
from ftbench.spec import RunSpec
from ftbench.tasks.sft_format import SFTSettings, template_kind
from ftbench.text import error_line

TASK = "causal-lm"


def check_causal_lm(specs: Iterable[RunSpec]) -> None:
    """Raise `FtbenchError` (one line) for the first causal-LM run that cannot run."""
    checked: set[tuple[Any, ...]] = set()
    for spec in specs:
        _check_dataset_task(spec)
        if spec.task != TASK:
            continue
        key = (spec.model, spec.data.name, spec.data.path, spec.data.eval_path,
               json.dumps(spec.data.options, sort_keys=True, default=str), spec.method.name,
               json.dumps(spec.method.args, sort_keys=True, default=str))
        if key in checked:
            continue
        checked.add(key)
        check_spec(spec)


def _check_dataset_task(spec: RunSpec) -> None:
    info = KNOWN_DATASETS.get(spec.data.name)
    if info is None:
        return
    if (spec.task == TASK) != (info.task == TASK):
        same = [n for n, i in KNOWN_DATASETS.items() if i.task == spec.task]
        raise FtbenchError(f"dataset {spec.data.name} is for the {info.task} task, not "
                           f"{spec.task} (datasets for {spec.task}: {', '.join(same)}, file)")


def check_spec(spec: RunSpec) -> None:
    options = dict(spec.data.options)
    settings = SFTSettings.from_options(options)
    general = options.get("general_text", "auto")
    if not isinstance(general, str) or not general:
        raise FtbenchError(f"data.options.general_text must be auto, wikitext, reviews, none or a "
                           f"file path, got {general!r}")
    if general not in ("auto", "wikitext", "reviews", "none") and \
            not Path(general).expanduser().is_file():
        raise FtbenchError(f"data.options.general_text: {general!r} is not auto, wikitext, "
                           "reviews, none or an existing .txt / .jsonl file")
    if spec.data.name == "math-problems" or spec.offline:
        Difficulty.from_options(options)
    if spec.data.name == "file":
        pair_columns(options)
        if not spec.data.path:
            raise FtbenchError("dataset 'file' needs a path (data.path or --data-path)")
        read_pairs(Path(spec.data.path).expanduser(), options)
        if spec.data.eval_path:
            read_pairs(Path(spec.data.eval_path).expanduser(), options)
    if is_hub_id(spec.model):
        return
    quiet_libraries()   # building tiny-llama or converting a GGUF: no library progress bars
    ref = resolve_model(spec.model)
    template_kind(settings, has_chat_template(Path(ref.path)))
    check_method(ref.path, spec)


def has_chat_template(folder: Path) -> bool:
    """Whether the tokenizer files in ``folder`` carry a chat template (read, not loaded)."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(config, dict) and config.get("chat_template"))


def check_method(path: str, spec: RunSpec) -> None:
    """Apply the run's method to the architecture on the meta device (see the module doc)."""
    # torch and transformers for a causal-LM run only: ftbench.preflight imports this module
    # before every run (check_spec, the caller, has run quiet_libraries() by now)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    quiet_libraries()
    method = spec.method if spec.method.name != "qlora" else replace(spec.method, name="lora")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=spec.trust_remote_code)
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config,
                                                         trust_remote_code=spec.trust_remote_code)
        except Exception as exc:  # not a causal LM, unknown architecture
            raise FtbenchError(f"model {spec.model} cannot be built as a causal LM: "
                               f"{error_line(exc, 160)}") from None
        apply_method(model, method, TASK)
