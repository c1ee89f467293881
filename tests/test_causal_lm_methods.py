"""The nine methods on decoder LMs: trainable counts against hand arithmetic on SmolLM2-135M's
real shape (built on the meta device: no weights, no memory), the tied-embedding rule, and
the refusals that must come before training.

SmolLM2-135M: hidden d=576, 30 blocks, 9 query heads of 64, 3 key/value heads (k/v width 192),
FFN 1536, vocab 49,152, RMSNorm without bias, no bias anywhere, lm_head tied to the input
embeddings.
"""

from __future__ import annotations

import pytest
import torch

from ftbench.errors import MethodError, MethodUnsupported
from ftbench.methods import apply_method, count_parameters, head_module_names
from ftbench.methods.lm import is_tied
from ftbench.spec import MethodSpec

D, LAYERS, KV, FFN, VOCAB = 576, 30, 192, 1536, 49152
EMBED = VOCAB * D                                            # 28,311,552
ATTN = D * D * 2 + D * KV * 2                                # q, o + k, v
MLP = 3 * D * FFN                                            # gate, up, down
BLOCK = ATTN + MLP + 2 * D                                   # + two RMSNorm weights
TOTAL = LAYERS * BLOCK + EMBED + D                           # + the final norm
LORA16_ALL = LAYERS * 16 * ((D + D) * 2 + (D + KV) * 2 + (D + FFN) * 3)
LORA8_QV = LAYERS * 8 * ((D + D) + (D + KV))
IA3 = LAYERS * (KV + KV + FFN)                               # k, v outputs; down_proj input
PREFIX20 = 20 * LAYERS * 2 * KV                              # keys and values per layer
ADAPTER_FFN = LAYERS * (D * 36 + 36 + 36 * D + D)            # bottleneck 576 // 16 = 36


def smollm2_shape() -> object:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=FFN,
                         num_hidden_layers=LAYERS, num_attention_heads=9, num_key_value_heads=3,
                         head_dim=64, max_position_embeddings=8192, tie_word_embeddings=True,
                         attention_bias=False, mlp_bias=False)
    with torch.device("meta"):
        return LlamaForCausalLM(config)


CASES = {
    # method, args: (trainable, total)
    ("full", ()): (TOTAL, TOTAL),
    ("head-only", ()): (EMBED, TOTAL + EMBED),
    ("last-layer", ()): (BLOCK + D + EMBED, TOTAL + EMBED),
    ("last-layer", (("layers", 2),)): (2 * BLOCK + D + EMBED, TOTAL + EMBED),
    ("lora", (("r", 16), ("target_modules", "all-linear"))): (LORA16_ALL, TOTAL + LORA16_ALL),
    ("lora", ()): (LORA8_QV, TOTAL + LORA8_QV),
    ("ia3", ()): (IA3, TOTAL + IA3),
    ("prefix", ()): (PREFIX20, TOTAL + PREFIX20),
    ("adapters", ()): (ADAPTER_FFN, TOTAL + ADAPTER_FFN),
}


def test_the_shape_is_smollm2() -> None:
    assert TOTAL == 134_515_008   # what transformers reports for the dequantized SmolLM2 GGUF
    model = smollm2_shape()
    assert count_parameters(model, head_module_names(model)).total == TOTAL


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: c[0] + "".join(f"-{k}{v}" for k, v in c[1]))
def test_trainable_counts_on_smollm2_equal_hand_counts(case: tuple[str, tuple]) -> None:
    method, args = case
    model = apply_method(smollm2_shape(), MethodSpec(name=method, args=dict(args)), "causal-lm")
    counts = count_parameters(model, ("lm_head",))
    assert (counts.trainable, counts.total) == CASES[case]
    names = set(counts.trainable_names)
    if method in ("lora", "ia3", "prefix", "adapters"):
        assert not any(n.startswith("lm_head") for n in names)   # no head is saved or trained
        assert counts.trainable_without_head == counts.trainable
    if method in ("head-only", "last-layer"):
        assert "lm_head.weight" in names and "model.embed_tokens.weight" not in names
        assert counts.trainable - counts.trainable_without_head == EMBED


def test_head_only_unties_and_full_keeps_the_tie() -> None:
    full = apply_method(smollm2_shape(), MethodSpec(name="full"), "causal-lm")
    assert is_tied(full)
    head = apply_method(smollm2_shape(), MethodSpec(name="head-only"), "causal-lm")
    assert not is_tied(head) and head.config.tie_word_embeddings is False
    assert not head.model.embed_tokens.weight.requires_grad and head.lm_head.weight.requires_grad


def test_bitfit_on_a_model_without_biases_is_refused() -> None:
    with pytest.raises(MethodUnsupported, match="no bias parameters, so BitFit would train nothing"):
        apply_method(smollm2_shape(), MethodSpec(name="bitfit"), "causal-lm")


def test_bitfit_on_a_decoder_with_biases_trains_biases_only() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = apply_method(model, MethodSpec(name="bitfit"), "causal-lm")
    counts = count_parameters(model, ("lm_head",))
    # Qwen2 has q/k/v biases: 32 + 16 + 16 per layer (k/v width 2 heads x 8)
    assert counts.trainable == 2 * (32 + 16 + 16)
    assert all(n.endswith(".bias") for n in counts.trainable_names)


def test_last_layer_asking_for_more_blocks_than_exist() -> None:
    with pytest.raises(MethodError, match="has 30 blocks"):
        apply_method(smollm2_shape(), MethodSpec(name="last-layer", args={"layers": 31}),
                     "causal-lm")
