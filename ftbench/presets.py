"""Presets: find, parse (tomllib), validate strictly, expand into RunSpecs.

Validation is strict because presets are outside input: an unknown key, a wrong type, an
unknown method or an impossible value raises `PresetError` with one line naming the file, the
key and what is allowed. Nothing here imports torch.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from ftbench.errors import FtbenchError, PresetError
from ftbench.methods.registry import METHOD_NAMES, unknown_method
from ftbench.rules import Rule, field_rules, printable_key, typename
from ftbench.spec import (LEARNING_RATE, SEED, SEEDS, SIZE, STEPS, TASKS, DataSpec, MethodSpec, Preset,
                          Reference, RunSpec, TrainParams, amend)

MAX_PRESET_BYTES = 1024 * 1024
BUILTIN_DIR = Path(__file__).parent / "presets"
T = TypeVar("T")


# --- field rules (the spec dataclasses carry them; see ftbench.rules) ----------------------

TOP: dict[str, Rule] = {
    "name": Rule("str"),
    "title": Rule("str", required=True),
    "description": Rule("str", required=True),
    "reproduces": Rule("str", required=True),
    "model": Rule("str", required=True),
    "task": Rule("str", required=True, choices=TASKS),
    "seeds": SEEDS,
    "seed": SEED,
    "needs_gpu": Rule("bool"),
    "data": Rule("table", required=True),
    "train": Rule("table", required=True),
    "methods": Rule("table", required=True),  # an array of tables, checked separately
    "references": Rule("table"),
    "offline": Rule("table"),
    "tune": Rule("table"),  # checked by ftbench.tune.space when --tune uses it (docs/tuning.md)
}
DATA: dict[str, Rule] = field_rules(DataSpec)
TRAIN: dict[str, Rule] = field_rules(TrainParams)
METHOD: dict[str, Rule] = {key: field_rules(MethodSpec)[key] for key in ("name", "learning_rate", "args")}
REFERENCE: dict[str, Rule] = {
    "method": Rule("str", required=True),
    "note": Rule("str"),
    "metrics": Rule("table", required=True),
}
OFFLINE: dict[str, Rule] = {
    "model": Rule("str"),
    "dataset": Rule("str"),
    # without a CUDA GPU
    "train_size": SIZE,
    "eval_size": SIZE,
    # with one (else the preset's own sizes)
    "gpu_train_size": SIZE,
    "gpu_eval_size": SIZE,
    "gpu_learning_rate": LEARNING_RATE,
}


def _offline_device(offline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """[offline] keys as per-device settings: plain keys for a CPU, gpu_ keys for CUDA."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in offline.items():
        if key in ("train_size", "eval_size"):
            out.setdefault("cpu", {})[key] = value
        elif key.startswith("gpu_"):
            out.setdefault("cuda", {})[key.removeprefix("gpu_")] = \
                float(value) if key == "gpu_learning_rate" else value
    if out and "cuda" not in out:
        out["cuda"] = {}
    return out


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> PresetError:
        # Keys come from the file ("a\nb" = 1 is valid TOML): escape them so the error stays one
        # line and cannot drive the terminal.
        key = printable_key(key)
        where = f"{self.source}: {key}: " if key else f"{self.source}: "
        return PresetError(where + message)

    def table(self, value: Any, rules: dict[str, Rule], prefix: str,
              built_by: type | None = None) -> dict[str, Any]:
        """Check a table's keys (unknown, missing) and the values no dataclass checks: the
        values of ``built_by``'s ruled fields are checked once, when it is built (`build`)."""
        own = field_rules(built_by) if built_by is not None else {}
        if not isinstance(value, dict):
            raise self.fail(prefix.rstrip("."), f"expected a table, got {typename(value)}")
        for key in value:
            if key not in rules:
                allowed = ", ".join(rules)
                raise self.fail(f"{prefix}{key}", f"unknown key (allowed: {allowed})")
        for key, rule in rules.items():
            if key not in value:
                if rule.required:
                    raise self.fail(f"{prefix}{key}", f"missing; expected {rule.describe()}")
                continue
            if key == "methods" and prefix == "" or key == "references" and prefix == "":
                continue
            if own.get(key) is rule:
                continue
            self.value(value[key], rule, f"{prefix}{key}")
        return value

    def build(self, cls: type[T], prefix: str, **kwargs: Any) -> T:
        """``cls(**kwargs)``, its one validation, said as this file's key."""
        try:
            return cls(**kwargs)
        except FtbenchError as exc:
            if exc.field is None or exc.problem is None:
                raise self.fail(prefix.rstrip("."), str(exc)) from None
            raise self.fail(f"{prefix}{exc.field}", exc.problem) from None

    def value(self, v: Any, rule: Rule, key: str) -> None:
        message = rule.problem(v)
        if message is not None:
            raise self.fail(key, message)


# --- loading -------------------------------------------------------------------------------

def builtin_presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def find_preset(name_or_path: str) -> Path:
    """A built-in name, or a path to a TOML file."""
    builtins = builtin_presets()
    if name_or_path in builtins:
        return builtins[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or "/" in name_or_path or path.exists():
        if not path.is_file():
            raise PresetError(f"{name_or_path}: no such preset file")
        return path
    known = ", ".join(builtins) or "none"
    raise PresetError(f"unknown preset '{name_or_path}' (built-in: {known}; or pass a path to a .toml file)")


def load_preset(name_or_path: str) -> Preset:
    path = find_preset(name_or_path)
    return parse_preset_file(path)


def parse_preset_file(path: Path) -> Preset:
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_PRESET_BYTES:
            raise PresetError(f"{source}: file is {size:,} bytes; a preset is at most {MAX_PRESET_BYTES:,}")
        raw = path.read_bytes()
    except OSError as exc:
        raise PresetError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PresetError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return parse_preset_text(text, source=source, default_name=path.stem)


def parse_preset_text(text: str, source: str = "<preset>", default_name: str = "preset") -> Preset:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise PresetError(f"{source}: invalid TOML: nested too deeply") from None
    return _build(doc, _Checker(source), default_name)


def _build(doc: dict[str, Any], c: _Checker, default_name: str) -> Preset:
    c.table(doc, TOP, "", built_by=Preset)
    data = c.table(doc["data"], DATA, "data.", built_by=DataSpec)
    train = c.table(doc["train"], TRAIN, "train.", built_by=TrainParams)
    data_spec = c.build(DataSpec, "data.", **data)  # its values' types, checked once
    _check_dataset(data, c)
    if "epochs" not in train and "max_steps" not in train:
        raise c.fail("train", "set epochs or max_steps")
    methods_raw = doc["methods"]
    if not isinstance(methods_raw, list) or not methods_raw:
        raise c.fail("methods", "expected a non-empty array of tables ([[methods]])")
    methods: list[MethodSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(methods_raw):
        key = f"methods[{i}]"
        m = c.table(entry, METHOD, f"{key}.", built_by=MethodSpec)
        lr = m.get("learning_rate")
        method = c.build(MethodSpec, f"{key}.", name=m["name"], args=m.get("args", {}),
                         learning_rate=float(lr) if _is_number(lr) else lr)
        if method.name in seen:
            raise c.fail(f"{key}.name", f"method '{method.name}' appears twice")
        seen.add(method.name)
        methods.append(method)
    references = _references(doc.get("references", []), c)
    offline = c.table(doc.get("offline", {}), OFFLINE, "offline.")
    name = doc.get("name", default_name)
    if not _is_slug(name):
        raise c.fail("name", f"{name!r} is not a valid preset name (letters, digits, '-', '_')")
    train_params = c.build(TrainParams, "train.", **{
        k: (float(v) if TRAIN[k].kind == "float" and _is_number(v) else v) for k, v in train.items()})
    return c.build(
        Preset, "",
        name=name,
        title=doc["title"],
        description=doc["description"].strip(),
        reproduces=doc["reproduces"],
        model=doc["model"],
        task=doc["task"],
        data=data_spec,
        train=train_params,
        methods=tuple(methods),
        seeds=doc.get("seeds", 1),
        seed=doc.get("seed", 42),
        offline_model=offline.get("model", "minilm-l6"),
        offline_dataset=offline.get("dataset"),
        offline_device=_offline_device(offline),
        needs_gpu=doc.get("needs_gpu", False),
        references=tuple(references),
        path=c.source,
        tune=dict(doc.get("tune", {})),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_slug(name: str) -> bool:
    return bool(name) and len(name) <= 64 and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name)


def _check_dataset(data: dict[str, Any], c: _Checker) -> None:
    # ftbench.data loads only when a preset is checked, not when presets are listed by name
    from ftbench.data import KNOWN_DATASETS

    name = data["name"]
    if name == "file":
        if "path" not in data:
            raise c.fail("data.path", "required when data.name is 'file'")
        return
    if name not in KNOWN_DATASETS:
        raise c.fail("data.name", f"unknown dataset {name!r} (known: {', '.join(KNOWN_DATASETS)}, file)")


def _references(raw: Any, c: _Checker) -> list[Reference]:
    if not isinstance(raw, list):
        raise c.fail("references", "expected an array of tables ([[references]])")
    out = []
    for i, entry in enumerate(raw):
        key = f"references[{i}]"
        r = c.table(entry, REFERENCE, f"{key}.")
        metrics = r["metrics"]
        for mk, mv in metrics.items():
            if isinstance(mv, bool) or not isinstance(mv, (int, float)) or not math.isfinite(mv):
                raise c.fail(f"{key}.metrics.{mk}", f"expected a finite number, got {typename(mv)}")
        out.append(Reference(method=r["method"], metrics={k: float(v) for k, v in metrics.items()},
                             note=r.get("note", "")))
    return out


# --- expansion -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Overrides:
    """What a person changed for one start: the CLI's flags or the TUI's start dialog.

    Checked once, when built (the front ends build it from what was typed); `expand` and
    `ftbench.prepare` trust it. Errors name the CLI flag.
    """

    methods: tuple[str, ...] = ()
    model: str | None = None
    dataset: str | None = None
    max_steps: int | None = None
    seeds: int | None = None
    offline: bool = False
    report_to: tuple[str, ...] = ()
    compile: bool | None = None            # None: the preset's choice (default auto)
    serving: bool | None = None            # None: the preset's choice (default off)
    batch_size: int | str | None = None    # a number or "auto"
    train_size: int | None = None
    eval_size: int | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        for name in self.methods:
            if name not in METHOD_NAMES:
                raise PresetError(unknown_method(name))
        if self.dataset:
            from ftbench.data import KNOWN_DATASETS  # see _check_dataset

            if self.dataset not in KNOWN_DATASETS:
                raise PresetError(f"unknown dataset {self.dataset!r} (known: {', '.join(KNOWN_DATASETS)})")
        for flag, rule, value in (("--train-size", SIZE, self.train_size),
                                  ("--eval-size", SIZE, self.eval_size),
                                  ("--max-steps", STEPS, self.max_steps),
                                  ("--seeds", SEEDS, self.seeds)):
            if value is not None:
                rule.check(value, flag, PresetError)
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", _batch_size(self.batch_size))


def expand(preset: Preset, overrides: Overrides = Overrides()) -> list[RunSpec]:
    """One RunSpec per method x seed, in preset order, with overrides and offline swaps.

    Nothing is checked again here: the preset was checked when it was parsed, the overrides
    when they were built. Per-device settings are `ftbench.prepare`'s (`resolve`).
    """
    methods = list(preset.methods)
    if overrides.methods:
        by_name = {m.name: m for m in methods}
        methods = [by_name.get(name) or MethodSpec(name=name) for name in overrides.methods]
    model = overrides.model or preset.model
    data_changes: dict[str, Any] = {}
    if overrides.dataset:
        data_changes.update(name=overrides.dataset, source="auto")
    if overrides.train_size is not None:
        data_changes["train_size"] = overrides.train_size
    if overrides.eval_size is not None:
        data_changes["eval_size"] = overrides.eval_size
    data = amend(preset.data, **data_changes)
    train_changes: dict[str, Any] = {}
    if overrides.compile is not None:
        train_changes["torch_compile"] = overrides.compile
    if overrides.batch_size is not None:
        train_changes["batch_size"] = overrides.batch_size
    if overrides.serving is not None:
        train_changes["serving"] = overrides.serving
    if overrides.max_steps is not None:
        train = preset.train
        train_changes.update(
            max_steps=overrides.max_steps,
            eval_steps=train.eval_steps if train.eval_steps and train.eval_steps < overrides.max_steps else None,
            logging_steps=min(train.logging_steps, overrides.max_steps))
    train = amend(preset.train, **train_changes)
    substitutions: list[str] = []
    if overrides.offline:
        model, data, substitutions = offline_swaps(preset, model, data)
    seeds = overrides.seeds if overrides.seeds is not None else preset.seeds
    specs = []
    for method in methods:
        for i in range(seeds):  # RunSpec folds a method's own rate into train.learning_rate
            specs.append(RunSpec(
                preset=preset.name, model=model, task=preset.task, data=data, train=train,
                method=method, seed=preset.seed + i, offline=overrides.offline,
                substitutions=tuple(substitutions), report_to=overrides.report_to,
                references=tuple(r for r in preset.references if r.method == method.name),
                trust_remote_code=overrides.trust_remote_code, allow_pickle=overrides.allow_pickle,
            ))
    return specs


def _batch_size(value: int | str) -> int | str:
    """--batch-size: a whole number in the preset rule's range, or "auto"."""
    if isinstance(value, int):
        TRAIN["batch_size"].check(value, "--batch-size", PresetError)
        return value
    try:
        return TRAIN["batch_size"].parse(str(value), "--batch-size")  # type: ignore[no-any-return]
    except FtbenchError as exc:
        raise PresetError(str(exc)) from None


def offline_swaps(preset: Preset, model: str, data: DataSpec) -> tuple[str, DataSpec, list[str]]:
    """Swap hub models for the bundled one and hub datasets for bundled copies; say so."""
    # ftbench.data and ftbench.models load only when used, not when presets are listed by name
    from ftbench.data import KNOWN_DATASETS
    from ftbench.models import is_hub_id

    notes: list[str] = []
    if is_hub_id(model):
        notes.append(f"model {model} (hub) replaced by {preset.offline_model}")
        model = preset.offline_model
    info = KNOWN_DATASETS.get(data.name)
    target = preset.offline_dataset
    if target is None and info is not None and not info.offline:
        target = info.substitute
    if target and target != data.name:
        notes.append(f"dataset {data.name} (hub) replaced by {target}")
        data = amend(data, name=target, source="bundled")
    elif data.name != "file":
        data = amend(data, source="bundled")
    return model, data, notes


def runnable_here(preset: Preset) -> str:
    """A short word for `ftbench presets`: can this run without network / a GPU?"""
    # ftbench.data and ftbench.models load only when used, not when presets are listed by name
    from ftbench.data import KNOWN_DATASETS
    from ftbench.models import is_hub_id

    needs_hub = is_hub_id(preset.model)
    info = KNOWN_DATASETS.get(preset.data.name)
    if info is not None and (not info.offline or preset.data.source == "hub"):
        needs_hub = True
    where = "hub (or --offline)" if needs_hub else "offline"
    if preset.needs_gpu:
        where += ", GPU advised"
    return where


def load_all(on_error: Callable[[str], None] | None = None) -> list[Preset]:
    """Every built-in preset that parses; errors reported through ``on_error``."""
    presets = []
    for path in builtin_presets().values():
        try:
            presets.append(parse_preset_file(path))
        except PresetError as exc:
            if on_error:
                on_error(str(exc))
    return presets
