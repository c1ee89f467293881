"""Plain dataclasses describing what to run. No heavy imports here.

A `Preset` (parsed from TOML by `ftbench.presets`) expands into one `RunSpec` per
method x seed, and `ftbench.prepare` resolves those for the device they will train on. A
`RunSpec` is then final: one learning rate, no per-device settings left, nothing for the
engine to apply; its `to_dict()` is what every run record stores under `spec`.

Values are checked where a spec is built from outside input (a preset's TOML, the CLI's
`Overrides`, a record or job file through `from_dict`): each dataclass validates its fields
in ``__post_init__``. Code that derives a spec from checked parts uses `amend`, which does not
check them again.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, TypeVar

from ftbench.errors import MethodError, SpecError
from ftbench.rules import Rule, ruled, validate_fields

Task = Literal["classification", "qa", "causal-lm"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]

TASKS: tuple[str, ...] = ("classification", "qa", "causal-lm")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")

SIZE = Rule("int", min=2, max=50_000_000)         # examples in a train or eval subset
LEARNING_RATE = Rule("float", min=0, min_exclusive=True, max=1)  # an override: 0 would mean unset
# the run's own rate: 0 is allowed (the weights stay as loaded: a control run, eval-order tests)
TRAIN_LEARNING_RATE = Rule("float", min=0, max=1)
STEPS = Rule("int", min=1, max=10_000_000)
SEEDS = Rule("int", min=1, max=50)                # seeds per method
SEED = Rule("int", min=0, max=2**31 - 1)

T = TypeVar("T")


def amend(obj: T, **changes: Any) -> T:
    """``obj`` (a spec dataclass) with ``changes``, without validating it again.

    Each changed value was checked where it came in (a preset key, a CLI flag, a dialog field,
    the `Overrides` it travels in) and every other field when ``obj`` was built;
    `dataclasses.replace` would check them all anew on every step of the way.
    """
    names = {f.name for f in fields(obj)}  # type: ignore[arg-type]
    unknown = set(changes) - names
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    new = copy.copy(obj)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new


@dataclass(frozen=True)
class DataSpec:
    """Which data to train and evaluate on.

    `name` is a logical dataset name (``imdb``, ``rotten_tomatoes``, ``tweets``,
    ``synthetic-sentiment``, ``sst2``, ``sentiment140``, ...) or ``file`` for a local file.
    """

    name: str = ruled(Rule("str", required=True))
    train_size: int | None = ruled(SIZE, default=None)
    eval_size: int | None = ruled(SIZE, default=None)
    path: str | None = ruled(Rule("str"), default=None)
    eval_path: str | None = ruled(Rule("str"), default=None)
    text_column: str = ruled(Rule("str"), default="text")
    text_pair_column: str | None = ruled(Rule("str"), default=None)
    label_column: str = ruled(Rule("str"), default="label")
    source: Literal["auto", "bundled", "hub"] = ruled(Rule("str", choices=("auto", "bundled", "hub")),
                                                      default="auto")
    options: dict[str, Any] = ruled(Rule("table"), default_factory=dict)

    def __post_init__(self) -> None:
        validate_fields(self, SpecError)


@dataclass(frozen=True)
class TrainParams:
    epochs: float | None = ruled(Rule("float", min=0, min_exclusive=True, max=1000), default=1.0)
    max_steps: int | None = ruled(STEPS, default=None)
    # "auto": the largest that fits (engine/autobatch.py)
    batch_size: int | Literal["auto"] = ruled(Rule("int", min=1, max=65_536, auto=True), default=16)
    eval_batch_size: int | None = ruled(Rule("int", min=1, max=65_536), default=None)
    learning_rate: float = ruled(TRAIN_LEARNING_RATE, default=2e-5)
    weight_decay: float = ruled(Rule("float", min=0, max=1), default=0.0)
    warmup_ratio: float = ruled(Rule("float", min=0, max=1, max_exclusive=True), default=0.0)
    max_length: int = ruled(Rule("int", min=8, max=8192), default=128)
    precision: Precision = ruled(Rule("str", choices=PRECISIONS), default="auto")
    gradient_checkpointing: bool = ruled(Rule("bool"), default=False)
    eval_steps: int | None = ruled(STEPS, default=None)  # None: evaluate once per epoch
    logging_steps: int = ruled(STEPS, default=10)
    grad_accum: int = ruled(Rule("int", min=1, max=4096), default=1)
    # None: on with a GPU (less padding), off on CPU
    group_by_length: bool | None = ruled(Rule("bool"), default=None)
    # None ("auto"): engine/autobatch.resolve_compile decides and records why (off until compile
    # is measured to pay on a GPU); compile time is in train_s, left out of the steady state
    torch_compile: bool | None = ruled(Rule("bool"), default=None)
    # measure the serving cost after the final evaluation (engine/serving.py, docs/serving.md):
    # size on disk, latency and throughput of the base, unmerged and merged model; off by
    # default (it times many forwards), never counted in training time
    serving: bool = ruled(Rule("bool"), default=False)

    def __post_init__(self) -> None:
        validate_fields(self, SpecError)
        if self.epochs is None and self.max_steps is None:
            raise SpecError("TrainParams: set epochs or max_steps")


@dataclass(frozen=True)
class MethodSpec:
    name: str = ruled(Rule("str", required=True))
    args: dict[str, Any] = ruled(Rule("table"), default_factory=dict)
    # overrides TrainParams.learning_rate
    learning_rate: float | None = ruled(LEARNING_RATE, default=None)

    def __post_init__(self) -> None:
        """The one check of a method's name and arguments (presets, the CLI and the TUI build
        a MethodSpec; the method code trusts it)."""
        # the method registry loads when a MethodSpec is built, not for --help
        from ftbench.methods.registry import METHOD_NAMES, unknown_method, validate_method_args

        validate_fields(self, SpecError)
        if self.name not in METHOD_NAMES:
            problem = unknown_method(self.name)
            raise SpecError(f"MethodSpec.name: {problem}").about("name", problem)
        try:
            validate_method_args(self.name, self.args)
        except MethodError as exc:
            raise SpecError(f"MethodSpec: {exc}").about("args", str(exc)) from None


@dataclass(frozen=True)
class Reference:
    """A figure reported by the write-up a preset reproduces. Never mixed into results."""

    method: str
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    reproduces: str
    model: str
    task: Task
    data: DataSpec
    train: TrainParams
    methods: tuple[MethodSpec, ...]
    seeds: int = ruled(SEEDS, default=1)
    seed: int = ruled(SEED, default=42)
    offline_model: str = "minilm-l6"
    offline_dataset: str | None = None
    # --offline per device: {"cpu": {...}, "cuda": {...}} (train_size, eval_size, learning_rate)
    offline_device: dict[str, dict[str, Any]] = field(default_factory=dict)
    needs_gpu: bool = False
    references: tuple[Reference, ...] = ()
    path: str = ""
    tune: dict[str, Any] = field(default_factory=dict)  # the [tune] table (ftbench.tune.space)

    def __post_init__(self) -> None:
        validate_fields(self, SpecError)


@dataclass(frozen=True)
class RunSpec:
    preset: str = ruled(Rule("str", required=True))
    model: str = ruled(Rule("str", required=True))
    task: Task = ruled(Rule("str", required=True, choices=TASKS))
    data: DataSpec
    train: TrainParams
    method: MethodSpec
    seed: int = ruled(SEED, default=42)
    offline: bool = False
    substitutions: tuple[str, ...] = ()  # what --offline swapped, in words
    report_to: tuple[str, ...] = ()
    references: tuple[Reference, ...] = field(default=(), compare=False)
    trust_remote_code: bool = False  # --trust-remote-code: run the model folder's own Python code
    allow_pickle: bool = False       # --allow-pickle: load .bin/.pt weights (pickle can run code)
    # --tune (ftbench.tune): {"study", "role": "trial" | "final", "trial", "params", ...}, linking
    # a sweep's trials and final runs in their records; empty for a plain run
    tune: dict[str, Any] = field(default_factory=dict, compare=False)
    # the device kind ("cpu" or "cuda") `ftbench.prepare` resolved this run for (None: built by
    # hand); the engine trains the spec as it is and warns when it runs on the other kind
    resolved_for: str | None = ruled(Rule("str", choices=("cpu", "cuda")), default=None)
    # --offline: which of the preset's [offline] settings per device were applied, in words
    # (stored as the record's data_info.sizing)
    sizing: str | None = None

    def __post_init__(self) -> None:
        validate_fields(self, SpecError)
        for name, kind in (("data", DataSpec), ("train", TrainParams), ("method", MethodSpec)):
            if not isinstance(getattr(self, name), kind):
                raise SpecError(f"RunSpec.{name}: expected a {kind.__name__}, "
                                f"got {type(getattr(self, name)).__name__}")
        if self.method.learning_rate is not None:
            # One rate per run, train.learning_rate: a method's own rate (a preset's
            # per-method override, validated by MethodSpec) is folded in here, once.
            object.__setattr__(self, "train", amend(self.train, learning_rate=self.method.learning_rate))
            object.__setattr__(self, "method", amend(self.method, learning_rate=None))

    @property
    def learning_rate(self) -> float:
        return self.train.learning_rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("references", None)  # stored at the record's top level, not in the spec
        d["learning_rate"] = self.learning_rate
        d["substitutions"] = list(self.substitutions)
        d["report_to"] = list(self.report_to)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        return cls(
            preset=d["preset"],
            model=d["model"],
            task=d["task"],
            data=DataSpec(**d["data"]),
            train=TrainParams(**d["train"]),
            method=MethodSpec(**d["method"]),
            seed=d.get("seed", 42),
            offline=d.get("offline", False),
            substitutions=tuple(d.get("substitutions", ())),
            report_to=tuple(d.get("report_to", ())),
            trust_remote_code=d.get("trust_remote_code", False),
            allow_pickle=d.get("allow_pickle", False),
            tune=dict(d.get("tune") or {}),
            resolved_for=d.get("resolved_for"),
            sizing=d.get("sizing"),
        )
