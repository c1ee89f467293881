"""What a sweep searches: the `[tune]` table / `--tune-*` flags as a checked `TuneConfig`, and
each method's search space as grid points. No heavy imports (optuna loads in `study`).

The default space is the method's learning rate only: ``points`` values log-spaced over
``decades`` decades centred on the preset's value (5 points over 2 decades: the value times
0.1, 0.316, 1, 3.16, 10). A ``grid`` table names values instead, and other hyperparameters:

- ``learning_rate``, ``warmup_ratio``, ``weight_decay``: for every method;
- ``<method>.<name>``: for that method only, a training parameter above or a method argument
  (``lora.r``, ``lora.alpha``, ``ia3.learning_rate``).

TPE (``sampler = "tpe"``) samples ``trials`` points per method from the same values: a
learning rate log-uniformly between the grid's ends, others from the listed choices.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ftbench.errors import FtbenchError, SpecError
from ftbench.spec import MethodSpec, RunSpec

SAMPLERS = ("grid", "tpe")
PRUNERS = ("none", "median")
TRAIN_PARAMS = ("learning_rate", "warmup_ratio", "weight_decay")
KEYS = ("sampler", "trials", "points", "decades", "grid", "validation_fraction", "pruner", "seeds",
        "storage", "study")


class TuneError(FtbenchError):
    """A tuning setting that cannot work: one line, exit 2, nothing trained."""


@dataclass(frozen=True)
class TuneConfig:
    sampler: str = "grid"
    trials: int | None = None          # tpe: trials per method (default: the grid's size)
    points: int = 5                    # the default learning-rate grid
    decades: float = 2.0
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    validation_fraction: float = 0.2   # of the training set, for the trials
    pruner: str = "none"
    seeds: int | None = None           # final runs per method (default: the preset's seeds)
    storage: str | None = None         # an SQLAlchemy URL (default: sqlite in the runs folder)
    study: str | None = None           # the study name (default: preset and a digest of the space)


def parse_config(table: Mapping[str, Any], where: str = "[tune]") -> TuneConfig:
    """A `[tune]` table (or the flags gathered as one) checked into a TuneConfig."""
    if not isinstance(table, Mapping):
        raise TuneError(f"{where}: expected a table")
    for key in table:
        if key not in KEYS:
            raise TuneError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if value is None:
            continue
        out[key] = _check(key, value, where)
    return TuneConfig(**out)


def _check(key: str, value: Any, where: str) -> Any:
    def number(kind: type, low: float, high: float, low_open: bool = False) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and float(value).is_integer()
        if not ok or not (low < value if low_open else low <= value) or value > high:
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise TuneError(f"{where}.{key}: expected a {'whole ' if kind is int else ''}number "
                            f"{bound} and <= {high:g}, got {value!r}")
        return kind(value)

    if key == "sampler":
        return _choice(key, value, SAMPLERS, where)
    if key == "pruner":
        return _choice(key, value, PRUNERS, where)
    if key in ("trials", "points"):
        return number(int, 2 if key == "points" else 1, 1000)
    if key == "seeds":
        return number(int, 1, 50)
    if key == "decades":
        return number(float, 0, 10, low_open=True)
    if key == "validation_fraction":
        v = number(float, 0, 0.9, low_open=True)
        return v
    if key in ("storage", "study"):
        if not isinstance(value, str) or not value.strip():
            raise TuneError(f"{where}.{key}: expected a non-empty string, got {value!r}")
        return value.strip()
    if key == "grid":
        if not isinstance(value, Mapping):
            raise TuneError(f"{where}.grid: expected a table of name = [values]")
        grid: dict[str, tuple[Any, ...]] = {}
        for name, values in value.items():
            grid[name] = _grid_values(f"{where}.grid.{name}", name, values)
        return grid
    raise TuneError(f"{where}: unknown key {key!r}")  # pragma: no cover - KEYS is checked first


def _choice(key: str, value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise TuneError(f"{where}.{key}: expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _grid_values(label: str, name: str, values: Any) -> tuple[Any, ...]:
    if not isinstance(values, (list, tuple)):
        raise TuneError(f"{label}: expected a list of values, got {values!r}")
    if not values:
        raise TuneError(f"{label}: the grid is empty; give at least one value")
    if len(set(map(repr, values))) != len(values):
        raise TuneError(f"{label}: a value appears twice")
    if name.rsplit(".", 1)[-1] == "learning_rate":
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= 1):
                raise TuneError(f"{label}: a learning rate must be a number > 0 and <= 1, got {v!r}")
        return tuple(float(v) for v in values)
    return tuple(values)


def parse_grid_flag(text: str) -> tuple[float, ...]:
    """``--tune-grid 1e-5,1e-4,1e-3``: the learning rates, checked (one line on a mistake)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    values: list[float] = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise TuneError(f"--tune-grid: {part!r} is not a number") from None
    return _grid_values("--tune-grid", "learning_rate", values)


# --- one method's space ----------------------------------------------------------------------

def default_rates(center: float, points: int, decades: float) -> tuple[float, ...]:
    """``points`` values log-spaced over ``decades`` decades centred on ``center`` (3 digits)."""
    if points == 1:
        return (center,)
    exps = [decades * (i / (points - 1) - 0.5) for i in range(points)]
    return tuple(float(f"{center * 10 ** e:.3g}") for e in exps)


def method_space(config: TuneConfig, method: MethodSpec, base_rate: float) -> dict[str, tuple[Any, ...]]:
    """name -> values searched for ``method`` (``base_rate``: the rate the preset gives it)."""
    from ftbench.methods.registry import METHODS, METHOD_NAMES  # not for --help, which imports this module

    space: dict[str, tuple[Any, ...]] = {}
    for key, values in config.grid.items():
        scope, _, name = key.rpartition(".")
        if scope and scope not in METHOD_NAMES:
            raise TuneError(f"[tune].grid.{key}: unknown method {scope!r} (known: "
                            f"{', '.join(METHOD_NAMES)})")
        known = TRAIN_PARAMS + (tuple(METHODS[scope].args) if scope else ())
        if name not in known:
            raise TuneError(f"[tune].grid.{key}: cannot tune {name!r} (known: {', '.join(known)}"
                            + ("" if scope else "; a method argument needs its method, e.g. lora.r") + ")")
        if scope and scope != method.name:
            continue
        if scope or name not in space:  # a method's own grid wins over the shared one
            space[name] = values
    if "learning_rate" not in space:
        space["learning_rate"] = default_rates(base_rate, config.points, config.decades)
    if base_rate <= 0 and "learning_rate" not in config.grid:
        raise TuneError(f"{method.name}: the preset's learning rate is 0; give the grid "
                        "(--tune-grid or [tune].grid.learning_rate)")
    return dict(sorted(space.items()))


def grid_points(space: Mapping[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every combination, in a fixed order (names sorted, values as given)."""
    names = sorted(space)
    return [dict(zip(names, combo)) for combo in itertools.product(*(space[n] for n in names))]


def apply_params(spec: RunSpec, params: Mapping[str, Any]) -> RunSpec:
    """``spec`` with a trial's values: training parameters, the method's rate and arguments.
    Raises TuneError (one line) for a value the spec's rules refuse."""
    method, train = spec.method, spec.train
    try:
        for name, value in params.items():
            if name == "learning_rate":
                method = replace(method, learning_rate=float(value))
            elif name in TRAIN_PARAMS:
                train = replace(train, **{name: float(value)})
            else:
                method = replace(method, args={**method.args, name: value})
    except SpecError as exc:
        raise TuneError(f"{spec.method.name}: {exc}") from None
    return replace(spec, method=method, train=train)


def with_validation(spec: RunSpec, fraction: float) -> RunSpec:
    """``spec`` trained on part of its training set and scored on the rest (`data.holdout`)."""
    options = {**spec.data.options, "validation_fraction": fraction,
               "split_seed": spec.data.options.get("split_seed", spec.seed)}
    return replace(spec, data=replace(spec.data, options=options))


def space_document(config: TuneConfig, space: Mapping[str, tuple[Any, ...]], spec: RunSpec) -> dict[str, Any]:
    """What makes two sweeps the same study: the space, the sampler and what a trial trains."""
    return {
        "space": {k: list(v) for k, v in space.items()},
        "sampler": config.sampler, "trials": config.trials if config.sampler == "tpe" else None,
        "validation_fraction": config.validation_fraction,
        "method": spec.method.name, "method_args": dict(sorted(spec.method.args.items())),
        "model": spec.model, "task": spec.task,
        "data": {"name": spec.data.name, "train_size": spec.data.train_size},
        "max_steps": spec.train.max_steps, "epochs": spec.train.epochs, "seed": spec.seed,
    }


def digest(document: Any) -> str:
    """A short, stable name part for a document."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:8]


def check_fraction(config: TuneConfig, spec: RunSpec) -> None:
    """A validation fraction that leaves less than one batch on either side: one line."""
    from ftbench.data.holdout import validation_size  # not for --help, which imports this module

    n = spec.data.train_size
    if n is None:
        return  # the size is known once the data is loaded; the carve checks it then
    size = validation_size(n, config.validation_fraction)
    batch = spec.train.batch_size if isinstance(spec.train.batch_size, int) else 1
    eval_batch = spec.train.eval_batch_size or batch
    if size < eval_batch or n - size < batch:
        raise TuneError(f"a validation fraction of {config.validation_fraction:g} of {n} training "
                        f"examples leaves {size} for validation and {n - size} for training: "
                        f"less than one batch ({batch}); raise --train-size or change the fraction")


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
