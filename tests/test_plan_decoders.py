"""`ftbench plan` on decoder models: trainable counts equal the run's for every method (tied
embeddings included), QLoRA's 4-bit weights, and a token-level label in the trace."""

from __future__ import annotations

import pytest

from ftbench.methods import METHOD_NAMES
from ftbench.plan.device import DeviceInfo
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams
from test_plan import measured_counts

CPU = DeviceInfo("cpu", "test cpu", 8000.0, 4000.0, "test")


def lm_spec(method: str, batch: int = 4, seq: int = 64) -> RunSpec:
    return RunSpec(preset="t", model="tiny-llama", task="causal-lm",
                   data=DataSpec(name="math-problems", train_size=40,
                                 options={"template": "plain"}),
                   train=TrainParams(batch_size=batch, max_length=seq, max_steps=5),
                   method=MethodSpec(method, {"r": 4} if method in ("lora", "qlora") else {}))


@pytest.mark.parametrize("method", [m for m in METHOD_NAMES if m != "bitfit"])
def test_decoder_counts_equal_the_measured_ones_exactly(method: str) -> None:
    from ftbench.methods import qlora_available
    from ftbench.plan.estimate import predict

    if method == "qlora" and not qlora_available()[0]:
        pytest.skip(qlora_available()[1])
    spec = lm_spec(method)
    p = predict(spec, CPU)
    assert (p.trainable, p.total, p.trainable_without_head) == measured_counts(spec)


def test_full_counts_the_tied_matrix_once_and_head_only_unties_it() -> None:
    from ftbench.plan.estimate import predict

    full, head = predict(lm_spec("full"), CPU), predict(lm_spec("head-only"), CPU)
    vocab_x_hidden = 100 * 64   # the character tokenizer's 100 tokens, hidden 64
    assert full.trainable == full.total and head.trainable == vocab_x_hidden
    assert head.total == full.total + vocab_x_hidden


def test_decoder_activations_grow_with_the_batch_and_hold_the_logits() -> None:
    from ftbench.plan.estimate import predict

    small, large = predict(lm_spec("lora", batch=2), CPU), predict(lm_spec("lora", batch=8), CPU)
    assert large.memory.activations > small.memory.activations > 0
    # the fp32 logits over the vocabulary are saved for the loss: at least batch x seq x vocab
    assert small.memory.activations >= 2 * 64 * 100 * 4


def test_qlora_on_a_decoder_plans_four_bit_weights() -> None:
    from ftbench.methods import qlora_available
    from ftbench.plan.estimate import predict

    if not qlora_available()[0]:
        pytest.skip(qlora_available()[1])
    weights = predict(lm_spec("qlora"), CPU).memory.weights
    assert weights.get("nf4", 0) > 0 and weights.get("nf4-state", 0) > 0


def test_decoder_flops_count_every_linear_and_the_tied_head() -> None:
    """MFU's FLOPs on a decoder: every linear layer per token, lm_head included although its
    weight is the (tied) embedding matrix: the matmul happens either way."""
    from transformers import AutoModelForCausalLM

    from ftbench.engine.flops import count_training_flops
    from ftbench.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-llama").path)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    per_layer = 64 * 64 * 2 + 64 * 32 * 2 + 64 * 128 * 3     # q, o; k, v; gate, up, down
    linear = 2 * per_layer + 64 * 100                         # two blocks + lm_head
    count = count_training_flops(model, 50.0)
    assert count.linear_params == linear
    assert count.forward_per_token == 2 * linear + 4 * 2 * 50.0 * 64
    # full fine-tuning: forward, activation gradients through both blocks, weight gradients of
    # every linear (the tied head's too)
    assert count.train_per_token == 2 * count.forward_per_token + 2 * linear


def test_a_causal_lm_is_evaluated_in_the_sft_evaluators_loss_chunks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without eval_steps the Trainer never evaluates a causal LM (engine.trainargs); the SFT
    # evaluator's loss forwards take rows whose fp32 logits stay under LOSS_LOGITS_BYTES, so
    # the planned evaluation forward is that many rows, not eval_batch_size's
    from dataclasses import replace
    from types import SimpleNamespace

    from ftbench.plan import estimate
    from ftbench.tasks import causal_lm_eval
    from ftbench.tasks.causal_lm_eval import LOSS_LOGITS_BYTES

    smollm2 = SimpleNamespace(vocab_size=49152)
    spec = lm_spec("lora", seq=160)
    rows = LOSS_LOGITS_BYTES // (160 * 49152 * 4)
    assert rows == 4
    assert estimate.eval_forward_rows(spec, smollm2, 50) == rows
    assert estimate.eval_forward_rows(spec, smollm2, 2) == 2
    periodic = replace(spec, train=replace(spec.train, eval_steps=10))
    assert estimate.eval_forward_rows(periodic, smollm2, 50) == 50
    assert estimate.eval_forward_rows(replace(spec, task="classification"), smollm2, 50) == 50
    # the prediction follows (tiny-llama's 100-token vocabulary: chunks of 2 rows here)
    monkeypatch.setattr(causal_lm_eval, "LOSS_LOGITS_BYTES", 2 * 160 * 100 * 4)
    chunked, trainer = (estimate.predict(replace(s, train=replace(s.train, eval_batch_size=50)),
                                         CPU).memory.forward_working_set for s in (spec, periodic))
    assert chunked < trainer
