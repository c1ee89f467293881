"""The run record: one JSON document per run, versioned.

Schema version 2 (docs/run-format.md). Every key below is always present; values that could not be
measured are ``None`` (JSON ``null``), never invented. ``parse_record`` validates a document
read from disk and raises `RecordError` with one line on anything it does not understand;
records with a newer ``schema_version`` are refused rather than guessed at, and older versions
go through explicit `MIGRATIONS`.

``prediction`` (an object or null) is what `ftbench plan` predicted for the run before it
started (``Prediction.to_dict()``: parameters, memory by part, time, fit, plus
``baseline_rss_mb``, the RSS just before the model loaded, which a CPU prediction is
compared from; see `ftbench.plan.judge`), stored next to
what was measured so the estimator is judged by the records it serves. It is null in records
written before ftbench stored it, and when the prediction itself failed; it is never filled in
afterwards.

Version 2 added ``baseline`` and ``samples`` for generative (causal-LM) runs: the base model's
figures measured before training the same way as the tuned ones in ``metrics`` (an object, or
null for the other tasks), and a few held-out prompts with the gold answer and the base and
tuned generations (a list of objects, empty for the other tasks). Version-1 files load through
`MIGRATIONS` with ``baseline`` null and ``samples`` empty.

``serving`` (added within version 2: older files read it as null) is the run's serving cost,
measured after the final evaluation when the run asked for it (`ftbench.engine.serving`,
docs/serving.md): size on disk of what would ship, and latency / throughput of the base,
unmerged and merged model, with the reason in words where a variant was not measured. Null
when the run did not ask for it, or did not complete.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ftbench.errors import FtbenchError

SCHEMA_VERSION = 2
STATUSES: tuple[str, ...] = ("completed", "failed", "cancelled", "diverged")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def valid_run_id(run_id: object) -> bool:
    """Letters, digits, '.', '_' and '-', at most 128, no '..': a file name inside the folder."""
    return isinstance(run_id, str) and bool(_RUN_ID.match(run_id)) and ".." not in run_id


class RecordError(FtbenchError):
    """A run file that cannot be used: corrupt, wrong shape, or from a newer ftbench."""


def _empty_params() -> dict[str, Any]:
    return {"trainable": None, "total": None, "trainable_without_head": None, "head_included": True}


def _empty_timing() -> dict[str, Any]:
    return {"train_s": None, "eval_s": None, "total_s": None, "samples_per_s": None,
            "tokens_per_s": None, "steps": None, "train_samples": None, "train_tokens": None,
            # steady state: after `warmup_steps` (and any compile); older records read as null
            "warmup_steps": None, "steady_steps": None, "steady_s": None,
            "steady_samples_per_s": None, "steady_tokens_per_s": None, "steady_tflops": None,
            "steady_mfu": None, "first_step_s": None, "compile_s": None, "batch_size": None,
            # torchrun runs: processes, and samples per optimizer step over all of them
            # (batch_size stays per device); samples_per_s / tokens_per_s are then summed over
            # the ranks. Null in one-process runs and in records written before them.
            "world_size": None, "global_batch_size": None,
            # causal-lm: loss-bearing (response) tokens trained on and their rate, apart from
            # every real token above; the base model's measurement before training (not in
            # train_s or eval_s). Null for the other tasks and in older records.
            "trained_tokens": None, "trained_tokens_per_s": None,
            "steady_trained_tokens_per_s": None, "base_eval_s": None}


def _empty_memory() -> dict[str, Any]:
    return {"torch_peak_allocated_mb": None, "torch_peak_reserved_mb": None,
            "nvml_peak_used_mb": None, "process_peak_rss_mb": None,
            # torchrun runs: one object per rank {rank, local_rank, nvml_index (the GPU NVML
            # read, null on CPU), torch_peak_allocated_mb, torch_peak_reserved_mb,
            # nvml_peak_used_mb, process_peak_rss_mb}; the figures above are rank 0's.
            # Null in one-process runs and older records.
            "per_rank": None}


def _empty_series() -> dict[str, list[dict[str, Any]]]:
    return {"train": [], "eval": [], "gpu": []}


@dataclass
class RunRecord:
    run_id: str
    preset: str
    method: str
    status: str
    created_at: str
    spec: dict[str, Any]
    finished_at: str | None = None
    error: str | None = None
    ftbench_version: str = ""
    schema_version: int = SCHEMA_VERSION
    model_info: dict[str, Any] = field(default_factory=dict)   # resolved model source, random_init
    data_info: dict[str, Any] = field(default_factory=dict)    # source actually used, sizes, notes
    params: dict[str, Any] = field(default_factory=_empty_params)
    timing: dict[str, Any] = field(default_factory=_empty_timing)
    memory: dict[str, Any] = field(default_factory=_empty_memory)
    metrics: dict[str, Any] = field(default_factory=dict)
    series: dict[str, list[dict[str, Any]]] = field(default_factory=_empty_series)
    environment: dict[str, Any] = field(default_factory=dict)
    references: list[dict[str, Any]] = field(default_factory=list)
    prediction: dict[str, Any] | None = None                    # see the module docstring
    baseline: dict[str, Any] | None = None                      # causal-lm: the base model
    samples: list[dict[str, Any]] = field(default_factory=list)  # causal-lm: generations
    serving: dict[str, Any] | None = None                       # see the module docstring

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "ftbench_version": self.ftbench_version,
            "run_id": self.run_id,
            "preset": self.preset,
            "method": self.method,
            "status": self.status,
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "spec": self.spec,
            "model_info": self.model_info,
            "data_info": self.data_info,
            "params": self.params,
            "timing": self.timing,
            "memory": self.memory,
            "metrics": self.metrics,
            "series": self.series,
            "environment": self.environment,
            "references": self.references,
            "prediction": self.prediction,
            "baseline": self.baseline,
            "samples": self.samples,
            "serving": self.serving,
        }

    # Convenience accessors used by reports.
    @property
    def model(self) -> str:
        return str(self.spec.get("model", "?"))

    @property
    def dataset(self) -> str:
        data = self.spec.get("data") or {}
        return str(data.get("name", "?")) if isinstance(data, dict) else "?"

    @property
    def seed(self) -> int | None:
        seed = self.spec.get("seed")
        return seed if isinstance(seed, int) else None

    @property
    def task(self) -> str:
        return str(self.spec.get("task", "classification"))


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had no generative runs: no base-model figures, no sample generations."""
    out = dict(doc)
    out["baseline"] = None
    out["samples"] = []
    out["schema_version"] = 2
    return out


# Migrations: MIGRATIONS[n] turns a version-n document into version n+1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "run_id": str,
    "preset": str,
    "method": str,
    "status": str,
    "created_at": str,
    "spec": dict,
    "params": dict,
    "timing": dict,
    "memory": dict,
    "metrics": dict,
    "series": dict,
    "environment": dict,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "ftbench_version": str,
    "error": (str, type(None)),
    "finished_at": (str, type(None)),
    "model_info": dict,
    "data_info": dict,
    "references": list,
    "prediction": (dict, type(None)),
    "baseline": (dict, type(None)),
    "samples": list,
    "serving": (dict, type(None)),
}


def _check_numbers(section: str, value: dict[str, Any], measured: tuple[str, ...] = ()) -> None:
    """Values may be anything JSON, but the measurements ftbench itself writes (``measured``)
    must be numbers or null: reports format them as numbers."""
    for key in measured:
        v = value.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise RecordError(f"{section}.{key} should be a number or null, got {type(v).__name__}")
    for key, v in value.items():
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, (int, float)):
            if isinstance(v, float) and math.isinf(v):
                raise RecordError(f"{section}.{key} is infinite")
            continue
        if isinstance(v, (list, dict)):
            continue
        raise RecordError(f"{section}.{key} has unexpected type {type(v).__name__}")


def _check_names(doc: dict[str, Any]) -> None:
    """The names reports print as labels (preset, method, model, dataset) hold no control or
    bidi-override characters: ftbench never writes them, and they could drive a terminal."""
    spec = doc["spec"]
    data = spec.get("data")
    names = {"preset": doc["preset"], "method": doc["method"], "spec.model": spec.get("model"),
             "spec.data.name": data.get("name") if isinstance(data, dict) else None}
    for key, value in names.items():
        if isinstance(value, str) and not value.isprintable():
            raise RecordError(f"{key} contains control characters")


def parse_record(doc: Any) -> RunRecord:
    """Validate a decoded JSON document and build a `RunRecord` (raises `RecordError`)."""
    if not isinstance(doc, dict):
        raise RecordError(f"expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RecordError("missing or non-integer schema_version")
    if version > SCHEMA_VERSION:
        raise RecordError(
            f"schema_version {version} is newer than this ftbench understands "
            f"({SCHEMA_VERSION}); upgrade ftbench to read it"
        )
    if version < 1:
        raise RecordError(f"schema_version {version} is not a valid version")
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version = doc["schema_version"]
    for key, typ in _REQUIRED.items():
        if key not in doc:
            raise RecordError(f"missing key '{key}'")
        if not isinstance(doc[key], typ) or isinstance(doc[key], bool) and typ is int:
            raise RecordError(f"key '{key}' should be {_typename(typ)}, got {type(doc[key]).__name__}")
    for key, typ in _OPTIONAL.items():
        if key in doc and not isinstance(doc[key], typ):
            raise RecordError(f"key '{key}' should be {_typename(typ)}, got {type(doc[key]).__name__}")
    if doc["status"] not in STATUSES:
        raise RecordError(f"status {doc['status']!r} is not one of {', '.join(STATUSES)}")
    if not valid_run_id(doc["run_id"]):
        raise RecordError(f"run_id {doc['run_id'][:80]!r} is not a valid run id")
    _check_names(doc)
    measured = {
        "params": ("trainable", "total", "trainable_without_head"),
        "timing": tuple(_empty_timing()),
        "memory": tuple(k for k in _empty_memory() if k != "per_rank"),
        "metrics": (),
    }
    for section, keys in measured.items():
        _check_numbers(section, doc[section], keys)
    if doc.get("baseline") is not None:
        _check_numbers("baseline", doc["baseline"])
    if doc.get("serving") is not None:
        _check_numbers("serving", doc["serving"])
    if not all(isinstance(s, dict) for s in doc.get("samples", [])):
        raise RecordError("samples should be a list of objects")
    per_rank = doc["memory"].get("per_rank")
    if per_rank is not None and not (isinstance(per_rank, list)
                                     and all(isinstance(r, dict) for r in per_rank)):
        raise RecordError("memory.per_rank should be a list of objects or null")
    series = doc["series"]
    for name, points in series.items():
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            raise RecordError(f"series.{name} should be a list of objects")
    return RunRecord(
        run_id=doc["run_id"],
        preset=doc["preset"],
        method=doc["method"],
        status=doc["status"],
        created_at=doc["created_at"],
        spec=doc["spec"],
        finished_at=doc.get("finished_at"),
        error=doc.get("error"),
        ftbench_version=doc.get("ftbench_version", ""),
        schema_version=doc["schema_version"],
        model_info=doc.get("model_info", {}),
        data_info=doc.get("data_info", {}),
        params={**_empty_params(), **doc["params"]},
        timing={**_empty_timing(), **doc["timing"]},
        memory={**_empty_memory(), **doc["memory"]},
        metrics=doc["metrics"],
        series={**_empty_series(), **series},
        environment=doc["environment"],
        references=doc.get("references", []),
        prediction=doc.get("prediction"),
        baseline=doc.get("baseline"),
        samples=doc.get("samples", []),
        serving=doc.get("serving"),
    )


def _typename(typ: type | tuple[type, ...]) -> str:
    if isinstance(typ, tuple):
        return " or ".join("null" if t is type(None) else t.__name__ for t in typ)
    return {"dict": "an object", "list": "a list", "str": "a string", "int": "an integer"}.get(
        typ.__name__, typ.__name__
    )
