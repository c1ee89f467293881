"""The one bounds checker (ftbench.rules) and the spec validation built on it."""

from __future__ import annotations

import argparse
import math
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftbench.errors import FtbenchError, MethodError, PresetError, SpecError
from ftbench.methods.registry import METHODS, validate_method_args
from ftbench.presets import DATA, METHOD, TRAIN, Overrides, expand, load_preset
from ftbench.rules import Rule, field_rules
from ftbench.spec import SEEDS, SIZE, STEPS, DataSpec, MethodSpec, RunSpec, TrainParams


def _in_range(rule: Rule, v: float) -> bool:
    low_ok = rule.min is None or (v > rule.min if rule.min_exclusive else v >= rule.min)
    high_ok = rule.max is None or (v < rule.max if rule.max_exclusive else v <= rule.max)
    return low_ok and high_ok


bounds = st.builds(
    lambda lo, span, lo_x, hi_x: Rule("int", min=lo, max=lo + span, min_exclusive=lo_x, max_exclusive=hi_x),
    st.integers(-1000, 1000), st.integers(2, 1000), st.booleans(), st.booleans())


@given(bounds, st.integers(-3000, 3000))
def test_int_rule_accepts_exactly_its_range(rule: Rule, v: int) -> None:
    problem = rule.problem(v)
    assert (problem is None) == _in_range(rule, v)
    assert (rule.violated_bound(v) is None) == _in_range(rule, v)
    if problem is not None:
        assert "\n" not in problem and "out of range" in problem and rule.describe() in problem


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_rule_refuses_non_finite_and_out_of_range(v: float) -> None:
    rule = Rule("float", min=0, min_exclusive=True, max=1)
    problem = rule.problem(v)
    assert (problem is None) == (math.isfinite(v) and 0 < v <= 1)


@given(st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2)))
def test_number_rules_refuse_other_types_with_one_line(v: Any) -> None:
    for kind in ("int", "float"):
        problem = Rule(kind, min=1).problem(v)
        assert problem is not None and problem.startswith("expected ") and "\n" not in problem


def test_rule_words() -> None:
    assert Rule("int", min=1, max=50).describe() == "an integer >= 1 and <= 50"
    assert Rule("float", min=0, min_exclusive=True, max=1).describe() == "a number > 0 and <= 1"
    assert Rule("int", min=1, auto=True).describe() == 'an integer >= 1 or "auto"'
    assert Rule("str", choices=("a", "b")).problem("c") == "'c' is not allowed; expected one of 'a', 'b'"
    assert Rule("str").problem("  ") == "must not be empty"
    assert Rule("int", min=1).violated_bound(0) == ">= 1"
    assert Rule("float", max=1, max_exclusive=True).violated_bound(1) == "< 1"
    with pytest.raises(PresetError, match=r"^k\\n: 0 is out of range"):
        Rule("int", min=1).check(0, "k\n", PresetError)


@given(st.text(max_size=12))
def test_parse_and_arg_type_agree(text: str) -> None:
    rule = Rule("int", min=1, max=100, auto=True)
    try:
        parsed = rule.parse(text, "Seeds")
    except FtbenchError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("Seeds")
        with pytest.raises(argparse.ArgumentTypeError):
            rule.arg_type("--seeds")(text)
    else:
        assert rule.arg_type("--seeds")(text) == parsed
        assert parsed == "auto" or 1 <= parsed <= 100


def test_arg_type_messages() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"^invalid int value: 'x'$"):
        STEPS.arg_type("--max-steps")("x")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^0 is out of range; expected an integer >= 1"):
        STEPS.arg_type("--max-steps")("0")
    assert SEEDS.arg_type("--seeds")("3") == 3


# --- the spec dataclasses carry the rules the presets check ----------------------------------

def test_preset_tables_are_derived_from_spec_fields() -> None:
    assert DATA == field_rules(DataSpec) and list(DATA) == [f.name for f in fields(DataSpec)]
    assert TRAIN == field_rules(TrainParams) and list(TRAIN) == [f.name for f in fields(TrainParams)]
    assert set(METHOD) == {f.name for f in fields(MethodSpec)}
    for key, rule in METHOD.items():
        assert field_rules(MethodSpec)[key] is rule


def test_every_spec_field_that_comes_from_outside_has_a_rule() -> None:
    for cls in (DataSpec, TrainParams, MethodSpec):
        assert set(field_rules(cls)) == {f.name for f in fields(cls)}, cls


train_values = st.fixed_dictionaries({}, optional={
    "epochs": st.one_of(st.none(), st.floats(-5, 2000), st.integers(-5, 2000)),
    "max_steps": st.one_of(st.none(), st.integers(-5, 20_000_000)),
    "batch_size": st.one_of(st.integers(-5, 70_000), st.just("auto"), st.just("big")),
    "learning_rate": st.floats(allow_nan=True, allow_infinity=True),
    "warmup_ratio": st.floats(-1, 2),
    "max_length": st.integers(0, 10_000),
    "precision": st.sampled_from(["auto", "fp32", "fp16", "bf16", "fp8"]),
    "grad_accum": st.integers(-1, 5000),
    "group_by_length": st.one_of(st.none(), st.booleans(), st.integers(0, 1)),
})


@settings(max_examples=200)
@given(train_values)
def test_train_params_validate_in_post_init(values: dict[str, Any]) -> None:
    rules = field_rules(TrainParams)
    expected_ok = all(v is None or rules[k].problem(v) is None for k, v in values.items())
    merged = {"epochs": 1.0, **values}
    expected_ok = expected_ok and not (merged["epochs"] is None and merged.get("max_steps") is None)
    try:
        TrainParams(**values)
    except SpecError as exc:
        assert not expected_ok
        assert "\n" not in str(exc) and str(exc).startswith("TrainParams")
    else:
        assert expected_ok


@given(st.integers(-10, 60_000_000))
def test_data_spec_sizes_use_the_preset_rule(n: int) -> None:
    ok = 2 <= n <= 50_000_000
    try:
        DataSpec(name="imdb", train_size=n)
    except SpecError as exc:
        assert not ok and "DataSpec.train_size" in str(exc)
    else:
        assert ok


def _spec(**kw: Any) -> RunSpec:
    base: dict[str, Any] = dict(preset="p", model="tiny-bert", task="classification",
                                data=DataSpec(name="imdb"), train=TrainParams(), method=MethodSpec("lora"))
    return RunSpec(**{**base, **kw})


def test_run_spec_validates_itself_and_from_dict() -> None:
    spec = _spec()
    assert RunSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match=r"^RunSpec.task: 'regression' is not allowed"):
        _spec(task="regression")
    with pytest.raises(SpecError, match=r"^RunSpec.seed: -1 is out of range"):
        replace(spec, seed=-1)
    with pytest.raises(SpecError, match=r"^RunSpec.train: expected a TrainParams"):
        _spec(train={"epochs": 1})
    bad = spec.to_dict()
    bad["train"]["max_length"] = 4
    with pytest.raises(SpecError, match=r"^TrainParams.max_length: 4 is out of range"):
        RunSpec.from_dict(bad)
    bad = spec.to_dict()
    bad["method"]["args"] = {"r": 0}
    with pytest.raises(SpecError, match=r"^MethodSpec: method 'lora': arg 'r' must be >= 1, got 0$"):
        RunSpec.from_dict(bad)
    with pytest.raises(SpecError, match="set epochs or max_steps"):
        TrainParams(epochs=None)


# --- one checker for presets, method args, CLI flags and the TUI dialog -----------------------

def test_method_args_bounds_come_from_rules() -> None:
    for info in METHODS.values():
        for key, arg in info.args.items():
            if arg.bounds is None or arg.bounds.kind not in ("int", "float"):
                continue
            if arg.bounds.min is not None:
                below = arg.bounds.min if arg.bounds.min_exclusive else arg.bounds.min - 1
                with pytest.raises(MethodError, match=f"arg '{key}' must be >"):
                    validate_method_args(info.name, {key: type(arg.default or 1)(below)})


@pytest.mark.parametrize("field_name, rule, value", [
    ("seeds", SEEDS, 51), ("max_steps", STEPS, 0), ("train_size", SIZE, 1), ("eval_size", SIZE, 60_000_000),
])
def test_overrides_are_checked_by_the_spec_rules(field_name: str, rule: Rule, value: int) -> None:
    assert rule.problem(value) is not None
    with pytest.raises(PresetError, match=r"out of range; expected " + rule.describe()):
        expand(load_preset("quickstart"), Overrides(**{field_name: value}))


def test_a_zero_learning_rate_is_a_control_run_but_not_an_override() -> None:
    assert TrainParams(learning_rate=0.0).learning_rate == 0.0
    with pytest.raises(SpecError, match=r"^MethodSpec.learning_rate: 0.0 is out of range; expected a number > 0"):
        MethodSpec("lora", learning_rate=0.0)
