"""Reliability: bad preset files (issue 6). Property-based: wrong types, unknown keys, missing
fields, absurd values, unicode, garbage and huge files. Every case must be exactly one line,
``ftbench: error: <file>: <key>: <what is allowed>``, exit code 2, never a traceback.

Bad presets go through ``ftbench run --preset FILE --headless`` in-process (a preset error is
raised before torch is imported, so this is fast); each case is first checked to be invalid
through `parse_preset_file`, so no case can start a training run by accident.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftbench.cli import main
from ftbench.errors import PresetError
from ftbench.presets import DATA, METHOD, OFFLINE, REFERENCE, TOP, TRAIN, Rule, parse_preset_file

CATEGORY = "presets"
FUZZ = settings(max_examples=35, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

BASE: dict[str, Any] = {
    "name": "fuzzed",
    "title": "t",
    "description": "d",
    "reproduces": "r",
    "model": "tiny-bert",
    "task": "classification",
    "seeds": 1,
    "seed": 7,
    "needs_gpu": False,
    "data": {"name": "synthetic-sentiment", "train_size": 64, "eval_size": 32, "source": "auto",
             "text_column": "text", "label_column": "label", "options": {}},
    "train": {"max_steps": 4, "epochs": 1.0, "batch_size": 8, "eval_batch_size": 8,
              "learning_rate": 1e-3, "weight_decay": 0.0, "warmup_ratio": 0.0, "max_length": 32,
              "precision": "auto", "gradient_checkpointing": False, "eval_steps": 2,
              "logging_steps": 1, "grad_accum": 1},
    "offline": {"model": "tiny-bert", "dataset": "synthetic-sentiment", "train_size": 64,
                "eval_size": 32},
    "methods": [{"name": "lora", "learning_rate": 1e-3, "args": {"r": 4, "alpha": 8, "dropout": 0.1}},
                {"name": "last-layer", "args": {"layers": 1}},
                {"name": "adapters", "args": {"reduction_factor": 16, "placement": "ffn"}},
                {"name": "prefix", "args": {"num_virtual_tokens": 4}}],
    "references": [{"method": "lora", "note": "n", "metrics": {"accuracy": 0.9}}],
}


class Raw(str):
    """A TOML literal written as is (dates, or deliberately broken syntax)."""


def toml_value(v: Any) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_string(s: str) -> str:
    # JSON escaping is valid TOML basic-string escaping, except DEL, which TOML wants escaped.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(doc: dict[str, Any]) -> str:
    """Every key at the top level, tables inline: enough for any shape a test needs."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


def test_base_preset_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "base.toml"
    path.write_text(to_toml(BASE), encoding="utf-8")
    preset = parse_preset_file(path)
    assert [m.name for m in preset.methods] == ["lora", "last-layer", "adapters", "prefix"]


# --- the check every case goes through ------------------------------------------------------

def printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def expect_one_clear_error(tally: Any, content: str | bytes, key: str | None,
                           needle: str | None = None) -> str:
    """Write ``content`` as a preset; `ftbench run` must exit 2 with one line naming file and key."""
    with tempfile.TemporaryDirectory(prefix="ftbench-preset-") as tmp:
        path = Path(tmp) / "bad.toml"
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        with tally.case(CATEGORY, expected=(PresetError,)):
            with pytest.raises(PresetError):
                parse_preset_file(path)  # never run a case that happens to be valid
            err, out = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = main(["run", "--preset", str(path), "--headless", "--runs-dir",
                             str(Path(tmp) / "runs")])
        text = err.getvalue()
        tally.check_output(CATEGORY, text + out.getvalue())
        assert code == 2, text
        lines = text.splitlines()
        assert len(lines) == 1, text
        line = lines[0]
        assert line.startswith(f"ftbench: error: {path}: "), line
        if key is not None:  # the key, or an element of it ("methods" -> "methods[0]")
            assert re.search(": " + re.escape(printable(key)) + r"(:|\[|\.)", line), (key, line)
        if needle is not None:
            assert needle in line, (needle, line)
        assert not (Path(tmp) / "runs").exists()
        return line


# --- where the fields are -------------------------------------------------------------------

def fields() -> list[tuple[tuple[Any, ...], str, Rule]]:
    """(path into the document, dotted key as the error names it, rule) for every field."""
    out: list[tuple[tuple[Any, ...], str, Rule]] = []
    for key, rule in TOP.items():
        if key not in ("methods", "references"):
            out.append(((key,), key, rule))
    for section, rules in (("data", DATA), ("train", TRAIN), ("offline", OFFLINE)):
        for key, rule in rules.items():
            out.append(((section, key), f"{section}.{key}", rule))
    for key, rule in METHOD.items():
        out.append((("methods", 0, key), f"methods[0].{key}", rule))
    for key, rule in REFERENCE.items():
        out.append((("references", 0, key), f"references[0].{key}", rule))
    return out


FIELDS = fields()


def with_value(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def without(path: tuple[Any, ...]) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return doc


DATETIME = Raw("1979-05-27T07:32:00Z")
WRONG: dict[str, Any] = {
    "str": st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                     st.lists(st.text(max_size=5), max_size=3), st.just({"a": 1}), st.just(DATETIME)),
    "int": st.one_of(st.text(max_size=10), st.floats(allow_nan=False).filter(lambda f: not f.is_integer()),
                     st.just(4.0), st.booleans(), st.lists(st.integers(), max_size=3),
                     st.just({"a": 1}), st.just(DATETIME)),
    "float": st.one_of(st.text(max_size=10), st.booleans(), st.lists(st.floats(), max_size=2),
                       st.just({"a": 1}), st.just(DATETIME)),
    "bool": st.one_of(st.text(max_size=10), st.integers(), st.floats(allow_nan=False),
                      st.lists(st.booleans(), max_size=2), st.just({"a": True})),
    "table": st.one_of(st.text(max_size=10), st.integers(), st.lists(st.integers(), max_size=3),
                       st.booleans(), st.just(DATETIME)),
}


@FUZZ
@given(data=st.data())
def test_wrong_types(tally: Any, data: Any) -> None:
    path, key, rule = data.draw(st.sampled_from(FIELDS), label="field")
    value = data.draw(WRONG[rule.kind], label="value")
    expect_one_clear_error(tally, to_toml(with_value(path, value)), key)


@FUZZ
@given(data=st.data())
def test_methods_and_references_of_the_wrong_shape(tally: Any, data: Any) -> None:
    key = data.draw(st.sampled_from(["methods", "references"]))
    value = data.draw(st.one_of(st.text(max_size=5), st.integers(), st.just({"name": "lora"}),
                                st.lists(st.integers(), min_size=1, max_size=3),
                                st.just([]) if key == "methods" else st.just("x")))
    expect_one_clear_error(tally, to_toml(with_value((key,), value)), key)


KEY_TEXT = st.text(min_size=1, max_size=24).filter(lambda k: k.strip() != "")


@FUZZ
@given(data=st.data())
def test_unknown_keys_anywhere(tally: Any, data: Any) -> None:
    where = data.draw(st.sampled_from(["", "data", "train", "offline", "methods[0]",
                                       "references[0]", "methods[0].args"]))
    node_path: tuple[Any, ...] = {
        "": (), "data": ("data",), "train": ("train",), "offline": ("offline",),
        "methods[0]": ("methods", 0), "references[0]": ("references", 0),
        "methods[0].args": ("methods", 0, "args"),
    }[where]
    allowed = {"": TOP, "data": DATA, "train": TRAIN, "offline": OFFLINE, "methods[0]": METHOD,
               "references[0]": REFERENCE, "methods[0].args": {"r": 0, "alpha": 0, "dropout": 0,
                                                               "target_modules": 0}}[where]
    key = data.draw(KEY_TEXT.filter(lambda k: k not in allowed), label="key")
    value = data.draw(st.one_of(st.integers(), st.text(max_size=8), st.booleans()), label="value")
    doc = copy.deepcopy(BASE)
    node: Any = doc
    for part in node_path:
        node = node[part]
    node[key] = value
    if where == "methods[0].args":
        line = expect_one_clear_error(tally, to_toml(doc), "methods[0].args", "unknown arg")
        assert repr(key)[:20] in line or printable(key)[:20] in line
    else:
        named = f"{where}.{key}" if where else key
        expect_one_clear_error(tally, to_toml(doc), named, "unknown key")


REQUIRED = [(("title",), "title"), (("description",), "description"), (("reproduces",), "reproduces"),
            (("model",), "model"), (("task",), "task"), (("data",), "data"), (("train",), "train"),
            (("methods",), "methods"), (("data", "name"), "data.name"),
            (("methods", 0, "name"), "methods[0].name"), (("references", 0, "method"), "references[0].method"),
            (("references", 0, "metrics"), "references[0].metrics")]


@pytest.mark.parametrize("path, key", REQUIRED, ids=[k for _, k in REQUIRED])
def test_missing_required_fields(tally: Any, path: tuple[Any, ...], key: str) -> None:
    expect_one_clear_error(tally, to_toml(without(path)), key, "missing")


def test_missing_steps_and_epochs(tally: Any) -> None:
    doc = copy.deepcopy(BASE)
    del doc["train"]["max_steps"], doc["train"]["epochs"]
    expect_one_clear_error(tally, to_toml(doc), "train", "epochs or max_steps")


def test_data_file_without_path(tally: Any) -> None:
    expect_one_clear_error(tally, to_toml(with_value(("data", "name"), "file")), "data.path")


def test_duplicate_method(tally: Any) -> None:
    doc = copy.deepcopy(BASE)
    doc["methods"].append({"name": "lora"})
    expect_one_clear_error(tally, to_toml(doc), "methods[4].name", "twice")


# --- absurd values --------------------------------------------------------------------------

NUMERIC = [(p, k, r) for p, k, r in FIELDS if r.kind in ("int", "float") and (r.min is not None or r.max is not None)]
HUGE = st.sampled_from([10**6, 10**9, 2**31, 2**63 - 1, 10**30])


def out_of_range(rule: Rule) -> st.SearchStrategy[Any]:
    options = []
    if rule.min is not None:
        lo = rule.min
        if rule.kind == "int":
            options.append(st.integers(max_value=int(lo) - (0 if rule.min_exclusive else 1),
                                       min_value=-(2**63)))
        options.append(st.floats(max_value=lo, exclude_max=not rule.min_exclusive,
                                 allow_nan=False, allow_infinity=True) if rule.kind == "float"
                       else st.sampled_from([-1, 0, -(2**63)]).filter(lambda v: v < lo))
    if rule.max is not None:
        hi = rule.max
        if rule.kind == "int":
            options.append(st.integers(min_value=int(hi) + 1, max_value=2**63 - 1))
            options.append(HUGE.filter(lambda v: v > hi))
        else:
            options.append(st.floats(min_value=hi, exclude_min=not rule.max_exclusive,
                                     allow_nan=False, allow_infinity=True))
            options.append(st.sampled_from([1e9, 1e308, 10**6]).filter(lambda v: v > hi))
    if rule.kind == "float":
        options.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    return st.one_of(options)


@FUZZ
@given(data=st.data())
def test_absurd_numbers(tally: Any, data: Any) -> None:
    path, key, rule = data.draw(st.sampled_from(NUMERIC), label="field")
    value = data.draw(out_of_range(rule), label="value")
    expect_one_clear_error(tally, to_toml(with_value(path, value)), key)


ABSURD_ARGS = [
    ("lora", "r", 0), ("lora", "r", -4), ("lora", "r", 10**9), ("lora", "r", 2**63 - 1),
    ("lora", "r", 4.5), ("lora", "alpha", 0), ("lora", "alpha", -1.0), ("lora", "alpha", math.nan),
    ("lora", "alpha", math.inf), ("lora", "dropout", 1.0), ("lora", "dropout", -0.1),
    ("lora", "dropout", math.nan), ("lora", "target_modules", []), ("lora", "target_modules", [1, 2]),
    ("qlora", "r", 0), ("last-layer", "layers", 0), ("last-layer", "layers", 10**6),
    ("adapters", "reduction_factor", 0), ("adapters", "bottleneck", 10**12),
    ("adapters", "placement", "everywhere"), ("adapters", "non_linearity", "relu6"),
    ("adapters", "train_layer_norm", "yes"), ("prefix", "num_virtual_tokens", 0),
    ("prefix", "num_virtual_tokens", 10**6), ("prefix", "encoder_hidden_size", -1),
    ("prefix", "prefix_projection", 1), ("ia3", "target_modules", []),
]


@pytest.mark.parametrize("method, arg, value", ABSURD_ARGS,
                         ids=[f"{m}-{a}-{v!r}"[:40] for m, a, v in ABSURD_ARGS])
def test_absurd_method_args(tally: Any, method: str, arg: str, value: Any) -> None:
    doc = copy.deepcopy(BASE)
    doc["methods"] = [{"name": method, "args": {arg: value}}]
    line = expect_one_clear_error(tally, to_toml(doc), "methods[0].args")
    assert repr(arg) in line


ABSURD_TEXT = [
    (("task",), "regression"), (("task",), "Classification"), (("train", "precision"), "fp8"),
    (("data", "source"), "ftp"), (("data", "name"), "imagenet"), (("methods", 0, "name"), "magic"),
    (("name",), "has space"), (("name",), "x" * 65), (("name",), "../../etc"), (("title",), ""),
    (("model",), "   "), (("description",), "x" * 20_001),
]


@pytest.mark.parametrize("path, value", ABSURD_TEXT, ids=[".".join(map(str, p)) for p, _ in ABSURD_TEXT])
def test_absurd_strings(tally: Any, path: tuple[Any, ...], value: str) -> None:
    key = ".".join(str(p) for p in path).replace(".0.", "[0].")
    expect_one_clear_error(tally, to_toml(with_value(path, value)), key)


# --- unicode --------------------------------------------------------------------------------

UNICODE = st.text(alphabet=st.characters(min_codepoint=0x80, blacklist_categories=("Cs",)),
                  min_size=1, max_size=12)


@FUZZ
@given(data=st.data())
def test_unicode_where_names_are_expected(tally: Any, data: Any) -> None:
    path, key = data.draw(st.sampled_from([
        (("name",), "name"), (("task",), "task"), (("data", "name"), "data.name"),
        (("methods", 0, "name"), "methods[0].name"), (("train", "precision"), "train.precision"),
        (("data", "source"), "data.source"), (("methods", 0, "args", "placement"), "methods[0].args"),
    ]))
    value = data.draw(UNICODE, label="value")
    doc = with_value(path, value)
    if path[-1] == "placement":
        doc["methods"][0] = {"name": "adapters", "args": {"placement": value}}
    expect_one_clear_error(tally, to_toml(doc), key)


@pytest.mark.parametrize("key", ["a\nb", "\x1b[2J", "tab\there", "ü\u202eevil", "\x00", "\x7f"])
def test_control_characters_in_keys_stay_on_one_line(tally: Any, key: str) -> None:
    doc = copy.deepcopy(BASE)
    doc["train"][key] = 1
    line = expect_one_clear_error(tally, to_toml(doc), f"train.{key}", "unknown key")
    assert "\x1b" not in line and "\x00" not in line


@pytest.mark.parametrize("content", [
    b"\xff\xfe" + "title = 't'".encode("utf-16-le"),      # UTF-16 with BOM
    b"title = \"\xc3\x28\"\n",                             # invalid UTF-8 sequence
    b"\x00\x01\x02\x03" * 64,                              # binary junk
    "\ufeff".encode() + to_toml(BASE).encode(),            # UTF-8 BOM before valid TOML
    b"title = \"\x00\"\n",                                 # NUL inside a string
], ids=["utf16", "bad-utf8", "binary", "utf8-bom", "nul"])
def test_undecodable_files(tally: Any, content: bytes) -> None:
    expect_one_clear_error(tally, content, None)


# --- garbage and huge files -----------------------------------------------------------------

@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text_is_an_error_never_a_crash(tally: Any, text: str) -> None:
    expect_one_clear_error(tally, text, None)


VALID_TEXT = to_toml(BASE)


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(data=st.data())
def test_mutated_presets_parse_or_fail_cleanly(tally: Any, data: Any) -> None:
    """Random edits of a valid file: it parses, or it is one clear `PresetError` line."""
    text = VALID_TEXT
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        i = data.draw(st.integers(0, len(text)), label="at")
        j = data.draw(st.integers(i, min(len(text), i + 8)), label="to")
        text = text[:i] + data.draw(st.text(max_size=4), label="insert") + text[j:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutant.toml"
        path.write_text(text, encoding="utf-8")
        with tally.case(CATEGORY, expected=(PresetError,)):
            try:
                parse_preset_file(path)
            except PresetError as exc:
                message = str(exc)
                assert "\n" not in message and message.startswith(str(path)), message


@pytest.mark.parametrize("kind", ["over-limit", "sparse-2GiB", "deep-array", "deep-table",
                                  "long-string", "many-methods", "many-keys"])
def test_huge_files(tally: Any, tmp_path: Path, kind: str) -> None:
    needle, key = {"over-limit": ("a preset is at most", None), "sparse-2GiB": ("a preset is at most", None),
                   "deep-array": ("nested too deeply", None), "deep-table": ("nested too deeply", None),
                   "long-string": ("too long", "description"), "many-methods": ("twice", "methods[1].name"),
                   "many-keys": ("unknown key", "k0")}[kind]
    if kind == "over-limit":
        content: str | bytes = to_toml(BASE) + "# " + "x" * (1024 * 1024) + "\n"
    elif kind == "sparse-2GiB":
        path = tmp_path / "sparse.toml"
        with open(path, "wb") as fh:
            fh.truncate(2 * 1024**3)
        content = None  # type: ignore[assignment]
        with tally.case(CATEGORY, expected=(PresetError,)):
            with pytest.raises(PresetError, match="a preset is at most"):
                parse_preset_file(path)
        return
    elif kind == "deep-array":
        content = to_toml(BASE) + "x = " + "[" * 100_000 + "]" * 100_000 + "\n"
    elif kind == "deep-table":
        content = to_toml(BASE) + "x = " + "{a = " * 50_000 + "1" + "}" * 50_000 + "\n"
    elif kind == "long-string":
        content = to_toml(with_value(("description",), "y" * 900_000))
    elif kind == "many-methods":
        content = to_toml(without(("methods",))) + "[[methods]]\nname = \"full\"\n" * 30_000
    else:
        content = "".join(f"k{i} = {i}\n" for i in range(60_000)) + to_toml(BASE)
    expect_one_clear_error(tally, content, key, needle)
