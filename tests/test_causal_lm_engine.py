"""The causal-lm task through the one engine, on the random-init tiny Llama (CPU, seconds).

Quality is not measured here (a random-init model and a few steps); these tests pin what a
causal-LM record holds (base -> tuned, forgetting, samples, trained tokens), that every method
trains a decoder, that generation accuracy is scored right (an oracle), and that bad input
stops before anything trains, with one line and exit 2.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from ftbench.cli import main
from ftbench.engine.runner import run
from ftbench.methods import METHOD_NAMES, qlora_available
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

SMALL_ARGS = {"lora": {"r": 4}, "qlora": {"r": 4}, "prefix": {"num_virtual_tokens": 4}}
LM_METRICS = {"response_loss", "perplexity", "exact_match", "answered", "general_loss",
              "forgetting", "at_step"}


@pytest.fixture(autouse=True)
def fresh_base_measurements() -> None:
    """Each test measures its own base model (the engine reuses one within a process)."""
    from ftbench.engine import generative

    generative._BASE_CACHE.clear()


@pytest.fixture(scope="module")
def general(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("general") / "general.txt"
    path.write_text("\n".join(f"The river {i} runs past the old mill and the market square."
                              for i in range(20)))
    return str(path)


def sft_spec(general: str, method: str = "lora", steps: int = 2, train: int = 8, evals: int = 4,
             max_length: int = 256, **options: Any) -> RunSpec:
    opts = {"template": "plain", "max_new_tokens": 6, "samples": 2, "general_text": general,
            "general_size": 4, "max_ops": 1, **options}
    return RunSpec(
        preset="sft-test", model="tiny-llama", task="causal-lm",
        data=DataSpec(name="math-problems", train_size=train, eval_size=evals, options=opts),
        train=TrainParams(epochs=None, max_steps=steps, batch_size=4, learning_rate=1e-2,
                          max_length=max_length, logging_steps=1),
        method=MethodSpec(name=method, args=dict(SMALL_ARGS.get(method, {}))), seed=5)


def _runnable(method: str) -> bool:
    return method != "bitfit" and (method != "qlora" or qlora_available()[0])


@pytest.mark.parametrize("method", [m for m in METHOD_NAMES if _runnable(m)])
def test_every_method_trains_a_decoder_and_records_base_and_tuned(method: str, general: str,
                                                                  tmp_path: Path) -> None:
    record = run(sft_spec(general, method), runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    assert LM_METRICS <= set(record.metrics) and record.metrics["at_step"] == 2
    base = record.baseline
    assert base is not None and {"response_loss", "perplexity", "exact_match", "general_loss"} <= set(base)
    # the tuned model is measured the same way, and training changed it
    assert record.metrics["response_loss"] != base["response_loss"]
    assert record.metrics["forgetting"] == pytest.approx(
        record.metrics["general_loss"] - base["general_loss"])
    assert record.metrics["perplexity"] == pytest.approx(
        torch.exp(torch.tensor(record.metrics["response_loss"], dtype=torch.float64)).item())
    assert base["measured_on"] == ("4-bit NF4 quantized base" if method == "qlora"
                                   else "base model as loaded")
    assert len(record.samples) == 2
    assert all({"prompt", "gold", "base", "tuned", "base_answer", "tuned_answer"} <= set(s)
               for s in record.samples)
    assert record.samples[0]["tuned"] is not None
    timing = record.timing
    assert 0 < timing["trained_tokens"] < timing["train_tokens"]
    assert timing["trained_tokens_per_s"] > 0
    note = record.model_info["tied_embeddings"]
    assert note.startswith("untied" if method in ("head-only", "last-layer") else "tied")


def test_trained_tokens_are_the_response_tokens_and_tokens_exclude_padding(general: str,
                                                                           tmp_path: Path) -> None:
    from ftbench.models import resolve_model
    from ftbench.tasks.causal_lm import CausalLMTask

    spec = sft_spec(general, "full", steps=2, train=8)   # 2 steps x 4 = every example once
    record = run(spec, runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-llama").path)
    prepared = CausalLMTask().prepare(spec, tokenizer, lambda _: None)
    assert record.timing["train_tokens"] == sum(prepared.train_dataset.lengths())
    assert record.timing["trained_tokens"] == prepared.train_dataset.response_tokens()
    info = record.data_info
    assert info["loss_on"] == "response" and info["template"] == "plain"
    assert info["checkable_answers"] is True and info["general_texts"] == 4


def test_examples_that_do_not_fit_are_counted_not_cut(general: str, tmp_path: Path) -> None:
    # prompts are ~100-160 characters (= tokens), with the response ~155-215: at 160 tokens most
    # examples are left out, a few of them by the prompt alone
    record = run(sft_spec(general, "lora", train=16, max_length=160), runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    info = record.data_info
    assert info["train_size"] == 16 - info["too_long_train"] > 0
    assert 0 < info["too_long_train_by_prompt"] < info["too_long_train"]
    assert info["too_long_eval"] + info["eval_size"] == 4 and info["eval_size"] > 0
    assert info["mean_train_tokens"] <= 160


def test_the_base_measurement_is_reused_within_a_process_but_not_for_qlora(general: str,
                                                                           tmp_path: Path) -> None:
    first = run(sft_spec(general, "full"), runs_dir=tmp_path).record
    second = run(sft_spec(general, "lora"), runs_dir=tmp_path).record
    assert second.baseline["measured_in"] == first.baseline["measured_in"]
    assert second.timing["base_eval_s"] is None
    assert {k: v for k, v in second.baseline.items() if k != "measured_in"} == \
        {k: v for k, v in first.baseline.items() if k != "measured_in"}
    if qlora_available()[0]:
        quant = run(sft_spec(general, "qlora"), runs_dir=tmp_path).record
        assert quant.baseline["measured_in"] == quant.run_id and quant.timing["base_eval_s"] > 0


# --- the evaluator against an oracle -----------------------------------------------------------

class Oracle(torch.nn.Module):
    """Answers every prompt with ``#### <gold>`` (or a wrong number for prompts in ``wrong``),
    through the same generate / forward interface a causal LM has."""

    def __init__(self, tokenizer: Any, answers: dict[str, str], wrong: set[str]) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.tokenizer, self.answers, self.wrong = tokenizer, answers, wrong

    def forward(self, input_ids: Any, attention_mask: Any, labels: Any) -> Any:
        return type("Out", (), {"loss": torch.tensor(2.0)})()

    def generate(self, input_ids: Any, attention_mask: Any, generation_config: Any) -> Any:
        rows = []
        for ids, mask in zip(input_ids, attention_mask):
            assert mask[-1] == 1     # left padding: every prompt ends at the last column
            prompt = self.tokenizer.decode(ids[mask.bool()])
            gold = self.answers[prompt]
            text = f"Some working.\n#### {int(gold) + 1 if prompt in self.wrong else gold}"
            rows.append(ids.tolist() + self.tokenizer(text, add_special_tokens=False)["input_ids"]
                        + [self.tokenizer.eos_token_id])
        width = max(map(len, rows))
        return torch.tensor([r + [self.tokenizer.pad_token_id] * (width - len(r)) for r in rows])


def test_exact_match_of_an_oracle_is_one_and_wrong_answers_count(general: str) -> None:
    from transformers import AutoTokenizer

    from ftbench.models import resolve_model
    from ftbench.tasks.causal_lm import CausalLMTask

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-llama").path)
    spec = sft_spec(general, "full", evals=10)
    evaluator = CausalLMTask().prepare(spec, tokenizer, lambda _: None).generative
    prompts = [tokenizer.decode(p) for p in evaluator.prompts]
    answers = dict(zip(prompts, evaluator.answers))
    right = evaluator.measure(Oracle(tokenizer, answers, set()))
    assert right.metrics["exact_match"] == 1.0 and right.metrics["answered"] == 1.0
    assert right.metrics["response_loss"] == pytest.approx(2.0)
    assert right.metrics["general_loss"] == pytest.approx(2.0)
    wrong = evaluator.measure(Oracle(tokenizer, answers, set(prompts[:3])))
    assert wrong.metrics["exact_match"] == pytest.approx(0.7)
    assert all(g.endswith(f"#### {a}") for g, a in zip(right.generations, evaluator.answers))


# --- bad input: one line, exit 2, nothing trained ----------------------------------------------

def _preset(tmp_path: Path, model: str = "tiny-llama", data: str = "", options: str = "",
            method: str = "lora") -> str:
    opts = options or 'template = "plain", general_text = "none", max_new_tokens = 4'
    path = tmp_path / "sft.toml"
    path.write_text(f"""
title = "t"
description = "d"
reproduces = "none"
model = "{model}"
task = "causal-lm"
[data]
{data or 'name = "math-problems"'}
train_size = 8
eval_size = 4
options = {{ {opts} }}
[train]
max_steps = 2
batch_size = 4
max_length = 256
logging_steps = 1
[[methods]]
name = "{method}"
""")
    return str(path)


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def test_a_tiny_sft_preset_runs_headless_through_the_cli(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    code, err = _cli("run", "--preset", _preset(tmp_path), "--headless", "--runs-dir", str(runs))
    assert code == 0, err
    record = json.loads(next(runs.glob("*.json")).read_text())
    assert record["schema_version"] == 2 and record["baseline"]["response_loss"] > 0
    assert record["spec"]["task"] == "causal-lm"


@pytest.mark.parametrize("case, expected", [
    ("no-template", "the tokenizer has no chat template; set data.options.template to plain, step-by-step or alpaca"),
    ("bitfit", "method 'bitfit' does not apply to LlamaForCausalLM (llama): the model has no bias"),
    ("max-new-tokens", "data.options.max_new_tokens must be an integer from 1 to 4096, got 0"),
    ("columns", "has no column 'prompt'"),
    ("gguf", "transformers cannot load GGUF file broken.gguf"),
    ("dataset", "dataset rotten_tomatoes is for the classification task, not causal-lm"),
    ("last-layer", "arg 'layers' is 5 but the model has 2 blocks"),
])
def test_bad_input_is_one_line_and_exit_2_before_training(case: str, expected: str,
                                                          tmp_path: Path) -> None:
    kwargs: dict[str, str] = {}
    if case == "no-template":
        kwargs["options"] = 'general_text = "none"'
    elif case == "bitfit":
        kwargs["method"] = "bitfit"
    elif case == "max-new-tokens":
        kwargs["options"] = 'template = "plain", max_new_tokens = 0'
    elif case == "columns":
        data = tmp_path / "pairs.csv"
        data.write_text("question,answer\nq,a\n")
        kwargs["data"] = f'name = "file"\npath = "{data}"'
    elif case == "gguf":
        broken = tmp_path / "broken.gguf"
        broken.write_bytes(b"GGUF" + b"\x00" * 64)
        kwargs["model"] = str(broken)
    elif case == "dataset":
        kwargs["data"] = 'name = "rotten_tomatoes"'
    argv = ["run", "--preset", _preset(tmp_path, **kwargs), "--headless",
            "--runs-dir", str(tmp_path / "runs")]
    if case == "last-layer":
        path = Path(argv[2])
        path.write_text(path.read_text().replace('name = "lora"', 'name = "last-layer"\n'
                                                 'args = { layers = 5 }'))
    code, err = _cli(*argv)
    assert code == 2, err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.json"))


def test_cancel_during_the_base_measurement_stops_before_training(general: str,
                                                                  tmp_path: Path) -> None:
    import threading

    from ftbench.engine.events import EvalProgress, RunStarted

    cancel = threading.Event()
    events: list[Any] = []

    def emit(event: Any) -> None:
        events.append(event)
        if isinstance(event, EvalProgress) and event.done >= 1:
            cancel.set()

    record = run(sft_spec(general, "lora"), emit, cancel, runs_dir=tmp_path).record
    assert record.status == "cancelled" and record.error == "cancelled before training started"
    assert not any(isinstance(e, RunStarted) for e in events)


def test_measuring_under_autocast_leaves_the_trainable_set_as_it_was(general: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftbench.methods import apply_method
    from ftbench.models import resolve_model
    from ftbench.tasks.causal_lm import CausalLMTask

    path = resolve_model("tiny-llama").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    evaluator = CausalLMTask().prepare(sft_spec(general), tokenizer, lambda _: None).generative
    model = apply_method(AutoModelForCausalLM.from_pretrained(path),
                         MethodSpec(name="lora", args={"r": 4}), "causal-lm")
    model.train()
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    measured = evaluator.measure(model, "bf16")
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before
    assert measured.metrics["response_loss"] > 0 and model.training


def test_splitting_loss_batches_by_logit_size_changes_nothing(general: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftbench.models import resolve_model
    from ftbench.tasks import causal_lm_eval
    from ftbench.tasks.causal_lm import CausalLMTask

    path = resolve_model("tiny-llama").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    evaluator = CausalLMTask().prepare(sft_spec(general, evals=6), tokenizer, lambda _: None).generative
    model = AutoModelForCausalLM.from_pretrained(path)
    whole = evaluator.token_loss(model, evaluator.eval_examples)
    monkeypatch.setattr(causal_lm_eval, "LOSS_LOGITS_BYTES", 1)   # one example per forward
    ticks: list[int] = []
    split = evaluator.token_loss(model, evaluator.eval_examples, lambda: ticks.append(1))
    assert split == pytest.approx(whole, rel=1e-5)
    assert len(ticks) == -(-len(evaluator.eval_examples) // evaluator.batch_size)
