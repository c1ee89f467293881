"""ftbench.methods: trainable sets, parameter counts (checked against hand arithmetic from
the config dims, not against the code's own counting), training mechanics, QLoRA on CPU,
argument validation.

Tiny models: hidden H=32, 2 blocks, FFN I=64, vocab V=100, P=64 positions, 2 labels.
Dropout is 0 everywhere so a few optimizer steps are deterministic.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from ftbench.methods import (  # noqa: E402
    METHOD_NAMES,
    METHODS,
    MethodError,
    MethodUnsupported,
    apply_method,
    count_parameters,
    from_pretrained_kwargs,
    head_module_names,
    qlora_available,
    validate_method_args,
)
from ftbench.methods.params import canonical_name  # noqa: E402
from ftbench.spec import MethodSpec  # noqa: E402

H, L, I, V, P = 32, 2, 64, 100, 64  # noqa: E741 (I: the FFN size, as in the docstring)
ARCHS = ("bert", "distilbert", "roberta")
TASKS = ("classification", "qa")
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- models
def _config(arch: str):
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    if arch == "bert":
        return BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                          intermediate_size=I, max_position_embeddings=P, type_vocab_size=2,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if arch == "roberta":
        return RobertaConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                             intermediate_size=I, max_position_embeddings=P, type_vocab_size=1,
                             pad_token_id=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return DistilBertConfig(vocab_size=V, dim=H, n_layers=L, n_heads=2, hidden_dim=I,
                            max_position_embeddings=P, dropout=0.0, attention_dropout=0.0,
                            seq_classif_dropout=0.0, qa_dropout=0.0)


def _model_class(task: str):
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification

    return AutoModelForSequenceClassification if task == "classification" else AutoModelForQuestionAnswering


def build(arch: str, task: str):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _model_class(task).from_config(_config(arch))


def batch(task: str, seq: int = 8):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(3, V, (4, seq), generator=g)
    mask = torch.ones_like(x)
    mask[0, -2:] = 0
    if task == "classification":
        return {"input_ids": x, "attention_mask": mask, "labels": torch.tensor([0, 1, 0, 1])}
    return {"input_ids": x, "attention_mask": mask,
            "start_positions": torch.tensor([1, 2, 3, 4]), "end_positions": torch.tensor([2, 3, 4, 5])}


# ------------------------------------------------------------------- hand arithmetic
def lin(i: int, o: int) -> int:
    return i * o + o


def embeddings(arch: str) -> int:
    types = {"bert": 2, "roberta": 1, "distilbert": 0}[arch]
    return V * H + P * H + types * H + 2 * H  # word + position + token type + LayerNorm


BLOCK = 3 * lin(H, H) + lin(H, H) + 2 * H + lin(H, I) + lin(I, H) + 2 * H  # qkv, attn out, LN, FFN, LN
BLOCK_BIASES = 3 * H + H + H + I + H + H  # the bias of every Linear and LayerNorm in a block


def has_pooler(arch: str, task: str) -> bool:
    return arch == "bert" and task == "classification"  # QA and RoBERTa heads build no pooler


def head(arch: str, task: str) -> int:
    if task == "qa":
        return lin(H, 2)
    return {"bert": lin(H, 2), "roberta": lin(H, H) + lin(H, 2), "distilbert": lin(H, H) + lin(H, 2)}[arch]


def base_total(arch: str, task: str) -> int:
    return embeddings(arch) + L * BLOCK + (lin(H, H) if has_pooler(arch, task) else 0) + head(arch, task)


def names(arch: str) -> dict[str, str]:
    if arch == "distilbert":
        return {"blocks": r"distilbert\.transformer\.layer", "q": r"attention\.q_lin", "k": r"attention\.k_lin",
                "v": r"attention\.v_lin", "attn_out": r"attention\.out_lin", "ffn_out": r"ffn\.lin2"}
    return {"blocks": rf"{arch}\.encoder\.layer", "q": r"attention\.self\.query", "k": r"attention\.self\.key",
            "v": r"attention\.self\.value", "attn_out": r"attention\.output\.dense", "ffn_out": r"output\.dense"}


R = 4  # LoRA rank used in the tests
PREFIX_TOKENS = 5
ADAPTER_B = H // 16  # default reduction_factor 16
ADAPTER = lin(H, ADAPTER_B) + lin(ADAPTER_B, H)

TEST_ARGS: dict[str, dict] = {
    "lora": {"r": R, "dropout": 0.0},
    "qlora": {"r": R, "dropout": 0.0},
    "prefix": {"num_virtual_tokens": PREFIX_TOKENS},
}


def expected(method: str, arch: str, task: str) -> tuple[str, int, int]:
    """(regex of the trainable backbone/added names, trainable without head, params added)."""
    n = names(arch)
    blk = n["blocks"]
    pooler = lin(H, H) if has_pooler(arch, task) else 0
    if method == "full":
        return r".*", base_total(arch, task) - head(arch, task), 0
    if method == "head-only":
        return r"(?!)", 0, 0
    if method == "last-layer":
        return rf"({blk}\.{L - 1}\.|bert\.pooler\.)", BLOCK + pooler, 0
    if method in ("lora", "qlora"):
        added = L * 2 * (R * H + H * R)
        return rf"{blk}\.\d+\.({n['q']}|{n['v']})\.lora_[AB]\.default\.weight$", added, added
    if method == "ia3":
        added = L * (H + H + I)  # key out, value out, FFN second linear's input
        return rf"{blk}\.\d+\.({n['k']}|{n['v']}|{n['ffn_out']})\.ia3_l\.default$", added, added
    if method == "prefix":
        added = PREFIX_TOKENS * L * 2 * H
        return r"prompt_encoder\.default\.embedding\.weight$", added, added
    if method == "adapters":
        added = L * ADAPTER
        return rf"{blk}\.\d+\.{n['ffn_out']}\.adapter\.(down|up)\.(weight|bias)$", added, added
    if method == "bitfit":
        return r".*\.bias$", H + L * BLOCK_BIASES + (H if pooler else 0), 0
    raise AssertionError(method)


def supported(method: str, arch: str) -> bool:
    return not (method == "prefix" and arch == "distilbert") and method != "qlora"


CASES = [(m, a, t) for m in METHOD_NAMES for a in ARCHS for t in TASKS if supported(m, a)]


def all_names(model) -> list[str]:
    return [n for n in (canonical_name(raw) for raw, _ in model.named_parameters()) if n is not None]


# --------------------------------------------------------------------------- tests
def test_registry_lists_the_nine_methods():
    assert METHOD_NAMES == ("full", "head-only", "last-layer", "lora", "qlora", "adapters", "ia3",
                            "prefix", "bitfit")
    assert {m for m, info in METHODS.items() if info.uses_peft} == {"lora", "qlora", "ia3", "prefix"}
    assert [m for m, info in METHODS.items() if info.quantized] == ["qlora"]
    assert list(METHODS["lora"].args) == ["r", "alpha", "dropout", "target_modules"]


def test_registry_import_does_not_pull_in_torch():
    code = ("import sys, ftbench.methods.registry, ftbench.methods; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'bitsandbytes') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("arch", ARCHS)
def test_head_module_names(arch):
    assert head_module_names(build(arch, "qa")) == ("qa_outputs",)
    cls = head_module_names(build(arch, "classification"))
    assert cls == {"bert": ("classifier",), "roberta": ("classifier",),
                   "distilbert": ("pre_classifier", "classifier")}[arch]


@pytest.mark.parametrize("method,arch,task", CASES)
def test_trainable_set_and_counts(method, arch, task):
    model = build(arch, task)
    heads = head_module_names(model)
    assert base_total(arch, task) == sum(p.numel() for p in model.parameters())  # the arithmetic itself
    out = apply_method(model, MethodSpec(method, TEST_ARGS.get(method, {})), task)
    pattern, without_head, added = expected(method, arch, task)
    head_re = re.compile(rf"^({'|'.join(heads)})\.")
    want = {n for n in all_names(out) if head_re.match(n) or re.match(pattern, n)}
    counts = count_parameters(out, heads)
    assert set(counts.trainable_names) == want
    trainable_raw = {canonical_name(n) for n, p in out.named_parameters() if p.requires_grad}
    assert trainable_raw == want
    assert counts.trainable_without_head == without_head
    assert counts.trainable == without_head + head(arch, task)
    assert counts.total == base_total(arch, task) + added


@pytest.mark.parametrize("method,arch,task", CASES)
def test_steps_move_only_trainable_params_and_loss_drops(method, arch, task):
    model = build(arch, task)
    out = apply_method(model, MethodSpec(method, TEST_ARGS.get(method, {})), task)
    before = {n: p.detach().clone() for n, p in out.named_parameters()}
    trainable = [p for p in out.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=1e-2 if method != "full" else 2e-3)
    data = batch(task)
    torch.manual_seed(0)
    out.train()
    losses = []
    for _ in range(5):
        loss = out(**data).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    for n, p in out.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, before[n]), f"{n} did not change"
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"


@pytest.mark.parametrize("task", TASKS)
def test_prefix_on_distilbert_is_unsupported_before_training(task):
    with pytest.raises(MethodUnsupported, match=r"^method 'prefix' is not supported for distilbert: .*past key"):
        apply_method(build("distilbert", task), MethodSpec("prefix"), task)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_prefix_changes_output_and_keeps_positions_in_range(arch):
    model = build(arch, "classification").eval()
    seq = P if arch == "bert" else P - 2  # the longest input the position table allows
    data = batch("classification", seq=seq)
    data.pop("labels")
    with torch.no_grad():
        plain = model(**data).logits
    out = apply_method(model, MethodSpec("prefix", {"num_virtual_tokens": PREFIX_TOKENS}), "classification")
    out.eval()
    with torch.no_grad():
        prefixed = out(**data).logits  # would index past the position table if shifted by the prefix
    assert prefixed.shape == plain.shape
    assert not torch.allclose(prefixed, plain)


def test_prefix_refuses_gradient_checkpointing_before_training():
    out = apply_method(build("bert", "qa"), MethodSpec("prefix"), "qa")
    with pytest.raises(MethodUnsupported, match="cannot run with gradient checkpointing"):
        out.activation_checkpointing_enable()  # what the Trainer calls in its constructor
    out.get_base_model().bert.encoder.layer[0].gradient_checkpointing = True  # enabled behind our back
    with pytest.raises(MethodUnsupported, match="cannot run with gradient checkpointing"):
        out.train()(**batch("qa"))


@pytest.mark.parametrize("method", ["adapters", "prefix", "qlora", "bitfit"])
def test_trainer_runs_with_evaluation_between_steps(method, tmp_path):
    """The engine trains with transformers.Trainer: a short run with evals in between."""
    from transformers import Trainer, TrainingArguments

    spec = MethodSpec(method, TEST_ARGS.get(method, {}))
    if method == "qlora":
        ok, why = qlora_available()
        if not ok:
            pytest.skip(why)
        build("roberta", "classification").save_pretrained(tmp_path / "m")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _model_class("classification").from_pretrained(
                tmp_path / "m", **from_pretrained_kwargs(spec, torch.float32))
    else:
        model = build("roberta", "classification")
    model = apply_method(model, spec, "classification")
    data = batch("classification")
    rows = [{k: v[i] for k, v in data.items()} for i in range(4)] * 2
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=4, learning_rate=1e-2,
        eval_strategy="steps", eval_steps=1, logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, disable_tqdm=True, remove_unused_columns=False, seed=0,
        gradient_checkpointing=method != "prefix", gradient_checkpointing_kwargs={"use_reentrant": False})
    trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[:4])
    first = trainer.evaluate()["eval_loss"]
    trainer.train()
    assert trainer.evaluate()["eval_loss"] < first


@pytest.mark.parametrize("method", ["adapters", "lora", "ia3"])
def test_added_modules_start_as_the_pretrained_model(method):
    model = build("bert", "classification").eval()
    data = batch("classification")
    data.pop("labels")
    with torch.no_grad():
        plain = model(**data).logits
    out = apply_method(model, MethodSpec(method, {"placement": "both"} if method == "adapters" else {}),
                       "classification").eval()
    with torch.no_grad():
        assert torch.allclose(out(**data).logits, plain, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_adapter_options(arch):
    model = build(arch, "classification")
    heads = head_module_names(model)
    args = {"placement": "both", "bottleneck": 4, "train_layer_norm": True, "non_linearity": "gelu"}
    out = apply_method(model, MethodSpec("adapters", args), "classification")
    counts = count_parameters(out, heads)
    per_adapter = lin(H, 4) + lin(4, H)
    layer_norms = 2 * H + L * 2 * (2 * H)  # embeddings LN + two LNs per block
    assert counts.trainable_without_head == L * 2 * per_adapter + layer_norms
    assert counts.total == base_total(arch, "classification") + L * 2 * per_adapter
    n = names(arch)
    assert sum(bool(re.search(rf"{n['attn_out']}\.adapter\.", x)) for x in counts.trainable_names) == L * 4


def test_method_arg_overrides():
    model = build("bert", "classification")
    out = apply_method(model, MethodSpec("lora", {"r": 2, "target_modules": ["query", "key", "value"]}),
                       "classification")
    counts = count_parameters(out, ("classifier",))
    assert counts.trainable_without_head == L * 3 * (2 * H + H * 2)
    model = build("distilbert", "qa")
    counts = count_parameters(apply_method(model, MethodSpec("last-layer", {"layers": 2}), "qa"), ("qa_outputs",))
    assert counts.trainable_without_head == 2 * BLOCK
    model = build("roberta", "qa")
    spec = MethodSpec("prefix", {"num_virtual_tokens": 5, "prefix_projection": True, "encoder_hidden_size": 16})
    counts = count_parameters(apply_method(model, spec, "qa"), ("qa_outputs",))
    assert counts.trainable_without_head == 5 * H + lin(H, 16) + lin(16, L * 2 * H)  # embedding + MLP
    model = build("distilbert", "classification")
    spec = MethodSpec("ia3", {"target_modules": ["v_lin", "lin1"], "feedforward_modules": ["lin1"]})
    counts = count_parameters(apply_method(model, spec, "classification"), ("pre_classifier", "classifier"))
    assert counts.trainable_without_head == L * (H + H)  # v_lin output, lin1 input
    with pytest.raises(MethodError, match="'feedforward_modules' must be a subset"):
        apply_method(build("bert", "qa"), MethodSpec("ia3", {"target_modules": ["key"],
                                                             "feedforward_modules": ["value"]}), "qa")
    with pytest.raises(MethodError, match="'layers' is 3 but the model has 2 blocks"):
        apply_method(build("bert", "qa"), MethodSpec("last-layer", {"layers": 3}), "qa")


def test_bad_target_modules_is_a_method_error():
    with pytest.raises(MethodError, match="^method 'lora': "):
        apply_method(build("bert", "classification"), MethodSpec("lora", {"target_modules": ["nope"]}),
                     "classification")


# ----------------------------------------------------------------------------- QLoRA
def test_from_pretrained_kwargs_is_empty_except_for_qlora():
    for m in METHOD_NAMES:
        if m != "qlora":
            assert from_pretrained_kwargs(MethodSpec(m), torch.float32) == {}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_qlora_on_cpu(arch, task, tmp_path):
    ok, why = qlora_available()
    if not ok:
        pytest.skip(why)
    import bitsandbytes as bnb

    build(arch, task).save_pretrained(tmp_path)
    spec = MethodSpec("qlora", TEST_ARGS["qlora"])
    kwargs = from_pretrained_kwargs(spec, torch.float32)
    q = kwargs["quantization_config"]
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _model_class(task).from_pretrained(tmp_path, **kwargs)
    heads = head_module_names(model)
    four_bit = {n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    plain = {n for n, m in model.named_modules() if type(m) is torch.nn.Linear}
    assert len(four_bit) == L * 6  # q, k, v, attention out, FFN in, FFN out per block
    pooler = {"bert.pooler.dense"} if has_pooler(arch, task) else set()
    assert plain == {n for n in plain if n.split(".")[0] in heads} | pooler
    assert plain >= pooler and all(n.split(".")[0] in heads or n in pooler for n in plain)
    assert all(model.get_submodule(n).weight.dtype == torch.float32 for n in plain)

    out = apply_method(model, spec, task)
    counts = count_parameters(out, heads)
    pattern, without_head, added = expected("qlora", arch, task)
    assert counts.trainable_without_head == without_head
    assert counts.trainable == without_head + head(arch, task)
    assert counts.total == base_total(arch, task) + added  # Params4bit counted as real elements
    head_re = re.compile(rf"^({'|'.join(heads)})\.")
    assert all(head_re.match(n) or re.match(pattern, n) for n in counts.trainable_names)

    before = {n: p.detach().clone() for n, p in out.named_parameters()}
    opt = torch.optim.Adam([p for p in out.parameters() if p.requires_grad], lr=1e-2)
    data = batch(task)
    losses = []
    for _ in range(4):  # train, then an eval pass, as the Trainer does between steps
        out.train()
        loss = out(**data).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        out.eval()
        with torch.no_grad():
            out(**{k: v for k, v in data.items() if k in ("input_ids", "attention_mask")})
    assert losses[-1] < losses[0], losses
    for n, p in out.named_parameters():
        assert torch.equal(p, before[n]) != p.requires_grad, n


def test_qlora_needs_a_4bit_model():
    with pytest.raises(MethodError, match="not loaded in 4-bit"):
        apply_method(build("bert", "classification"), MethodSpec("qlora"), "classification")


# ------------------------------------------------------------------------ validation
def test_validate_method_args_messages():
    validate_method_args("lora", {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["query"]})
    validate_method_args("lora", {"target_modules": None, "alpha": 8.5})
    validate_method_args("adapters", {"placement": "both", "bottleneck": 8})
    validate_method_args("full", {})
    cases = [
        ("lora", "rnk", 4, "method 'lora': unknown arg 'rnk' (allowed: r, alpha, dropout, target_modules)"),
        ("lora", "r", "8", "method 'lora': arg 'r' must be int, got str '8'"),
        ("lora", "r", True, "method 'lora': arg 'r' must be int, got bool True"),
        ("lora", "r", 0, "method 'lora': arg 'r' must be >= 1, got 0"),
        ("lora", "dropout", 1.5, "method 'lora': arg 'dropout' must be < 1, got 1.5"),
        ("lora", "dropout", 1, "method 'lora': arg 'dropout' must be < 1, got 1"),
        ("lora", "dropout", -0.1, "method 'lora': arg 'dropout' must be >= 0, got -0.1"),
        ("lora", "alpha", 0, "method 'lora': arg 'alpha' must be > 0, got 0"),
        ("lora", "target_modules", [1],
         "method 'lora': arg 'target_modules' must be list of str or str, got list [1]"),
        ("lora", "target_modules", [], "method 'lora': arg 'target_modules' must not be empty"),
        ("adapters", "placement", "inside",
         "method 'adapters': arg 'placement' must be one of ffn, attention, both, got 'inside'"),
        ("full", "lr", 1, "method 'full': unknown arg 'lr' (allowed: none)"),
        ("prefix", "num_virtual_tokens", 0, "method 'prefix': arg 'num_virtual_tokens' must be >= 1, got 0"),
    ]
    for method, key, value, message in cases:
        with pytest.raises(MethodError) as err:
            validate_method_args(method, {key: value})
        assert str(err.value) == message
        assert "\n" not in str(err.value)
    with pytest.raises(MethodError, match=r"^unknown method 'lorra' \(allowed: full, head-only"):
        validate_method_args("lorra", {})
