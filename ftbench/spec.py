"""Plain dataclasses describing what to run. No heavy imports here.

A `Preset` (parsed from TOML by `ftbench.presets`) expands into one `RunSpec` per
method x seed. A `RunSpec` is fully resolved: the engine needs nothing else, and its
`to_dict()` is what every run record stores under `spec`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Task = Literal["classification", "qa"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]

TASKS: tuple[str, ...] = ("classification", "qa")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class DataSpec:
    """Which data to train and evaluate on.

    `name` is a logical dataset name (``imdb``, ``rotten_tomatoes``, ``tweets``,
    ``synthetic-sentiment``, ``sst2``, ``sentiment140``, ...) or ``file`` for a local file.
    """

    name: str
    train_size: int | None = None
    eval_size: int | None = None
    path: str | None = None
    eval_path: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    source: Literal["auto", "bundled", "hub"] = "auto"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainParams:
    epochs: float | None = 1.0
    max_steps: int | None = None
    batch_size: int | Literal["auto"] = 16  # "auto": the largest that fits (engine/autobatch.py)
    eval_batch_size: int | None = None
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_length: int = 128
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    eval_steps: int | None = None  # None: evaluate once per epoch
    logging_steps: int = 10
    grad_accum: int = 1
    group_by_length: bool | None = None  # None: on with a GPU (less padding), off on CPU
    # None ("auto"): on a CUDA GPU for long runs (engine/autobatch.resolve_compile); the compile
    # time is in train_s and left out of the steady-state figures
    torch_compile: bool | None = None


@dataclass(frozen=True)
class MethodSpec:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    learning_rate: float | None = None  # overrides TrainParams.learning_rate


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
    seeds: int = 1
    seed: int = 42
    offline_model: str = "minilm-l6"
    offline_dataset: str | None = None
    offline_train_size: int | None = None  # --offline: smaller sizes for CPU-sized runs
    offline_eval_size: int | None = None
    needs_gpu: bool = False
    references: tuple[Reference, ...] = ()
    path: str = ""


@dataclass(frozen=True)
class RunSpec:
    preset: str
    model: str
    task: Task
    data: DataSpec
    train: TrainParams
    method: MethodSpec
    seed: int = 42
    offline: bool = False
    substitutions: tuple[str, ...] = ()  # what --offline swapped, in words
    report_to: tuple[str, ...] = ()
    references: tuple[Reference, ...] = field(default=(), compare=False)
    trust_remote_code: bool = False  # --trust-remote-code: run the model folder's own Python code
    allow_pickle: bool = False       # --allow-pickle: load .bin/.pt weights (pickle can run code)
    # --offline on a machine without a CUDA GPU: the preset's [offline] CPU sizing
    # ({"train_size": n, "eval_size": n}); a GPU run keeps the preset's own sizes
    cpu_sizes: dict[str, int] = field(default_factory=dict, compare=False)

    def sized_for(self, device: str) -> tuple["RunSpec", str | None]:
        """This spec with the data sizes for ``device``, and a note saying which were used."""
        from dataclasses import replace

        if not self.cpu_sizes:
            return self, None
        own = ", ".join(f"{k} {getattr(self.data, k) or 'all'}" for k in self.cpu_sizes)
        if device == "cuda":
            return replace(self, cpu_sizes={}), (
                f"preset's own sizes on a CUDA GPU ({own}); the [offline] CPU sizing "
                f"({', '.join(f'{k} {v}' for k, v in self.cpu_sizes.items())}) is not applied")
        note = (", ".join(f"{k} {getattr(self.data, k) or 'all'} -> {v}" for k, v in self.cpu_sizes.items())
                + " (the preset's [offline] sizing for a CPU; a CUDA GPU uses the preset's own)")
        return replace(self, data=replace(self.data, **self.cpu_sizes), cpu_sizes={},
                       substitutions=self.substitutions + (note,)), note

    @property
    def learning_rate(self) -> float:
        return self.method.learning_rate or self.train.learning_rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("references", None)  # stored at the record's top level, not in the spec
        d["learning_rate"] = self.learning_rate
        d["substitutions"] = list(self.substitutions)
        d["report_to"] = list(self.report_to)
        d["cpu_sizes"] = dict(self.cpu_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
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
            cpu_sizes=dict(d.get("cpu_sizes", {})),
        )
