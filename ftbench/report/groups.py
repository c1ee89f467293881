"""The comparison model: runs grouped across seeds, summarised, with reference rows and fronts.

Everything a report shows is computed here once, so the Rich tables, the plotext charts, the
Markdown/JSON exports and the TUI cannot disagree about a mean or about who is on a front.

Rules (docs/seeds.md: one seed and no spread is what ftbench must do better):
- Runs that share (preset, method, model, dataset, task) and differ only in seed form a group.
- Only ``completed`` runs enter means; failed, cancelled and diverged runs are counted and
  named, never averaged (their metrics are partial or meaningless).
- The spread is the sample standard deviation (ddof=1); with one run it is ``None``, not 0.
- Reference rows (figures a write-up reported) are kept apart: never in means, never on fronts.
- Values that are missing, non-numeric or not finite count as missing, never as zero.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple, Sequence

from ftbench.report.pareto import Point, pareto_front
from ftbench.report.serving import LATENCY_KEY, SIZE_KEY, serving_text, serving_values
from ftbench.results.record import RunRecord
from ftbench.tasks.info import TASK_INFO, primary_metrics
from ftbench.terms import number
from ftbench.text import printable

# Which metric a comparison ranks by (the first one present wins) and the task metrics a table
# shows: each task defines its own (ftbench.tasks.info).
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {name: info.primary for name, info in TASK_INFO.items()}
TASK_METRICS: dict[str, tuple[str, ...]] = {name: info.metrics for name, info in TASK_INFO.items()}
# Metrics where neither direction is "better" (a rate of predicted no-answers is descriptive).
NEUTRAL_METRICS: frozenset[str] = frozenset({"no_answer_rate", "has_answer_rate"})
# Metrics where lower is better (causal-lm: perplexity, losses, forgetting).
LOWER_METRICS: frozenset[str] = frozenset({"perplexity", "response_loss", "general_loss",
                                           "forgetting", "loss"})
# Peak-memory sources, most specific first (docs/design.md: torch allocator, NVML, process RSS).
MEMORY_KEYS: tuple[str, ...] = (
    "memory.torch_peak_allocated_mb", "memory.nvml_peak_used_mb", "memory.process_peak_rss_mb",
)
MEMORY_NAMES: dict[str, str] = {
    "memory.torch_peak_allocated_mb": "torch",
    "memory.torch_peak_reserved_mb": "torch reserved",
    "memory.nvml_peak_used_mb": "NVML",
    "memory.process_peak_rss_mb": "RSS",
}
# Reference metric keys that are not task metrics, mapped onto the columns they belong to.
# A write-up's "peak memory" is GPU memory of unstated origin; it is shown under torch.
REFERENCE_KEYS: dict[str, str] = {
    "train_s": "timing.train_s",
    "samples_per_s": "rate.samples_per_s",
    "trainable": "params.trainable",
    "trainable_pct": "params.trainable_pct",
    "peak_mb": "memory.torch_peak_allocated_mb",
}
# Throughput figures a comparison shows (docs/design.md: comparisons use steady state and say so):
# the shown key, then the steady-state source and the whole-run fallback (runs too short for
# a steady window, and records written before the engine measured one).
RATE_KEYS: dict[str, tuple[str, str]] = {
    "rate.samples_per_s": ("timing.steady_samples_per_s", "timing.samples_per_s"),
    "rate.tokens_per_s": ("timing.steady_tokens_per_s", "timing.tokens_per_s"),
    "rate.tflops": ("timing.steady_tflops", "timing.achieved_tflops"),
    "rate.mfu": ("timing.steady_mfu", "timing.mfu"),
    # causal-lm: the loss-bearing (response) tokens alone
    "rate.trained_tokens_per_s": ("timing.steady_trained_tokens_per_s",
                                  "timing.trained_tokens_per_s"),
}
# Every record's CSV row carries both sets, so a spreadsheet can tell them apart.
STEADY_TIMING_KEYS: tuple[str, ...] = (
    "warmup_steps", "steady_steps", "steady_s", "steady_samples_per_s", "steady_tokens_per_s",
    "steady_tflops", "steady_mfu", "steady_trained_tokens_per_s",
)
WHOLE_RUN_MARK = "†"
# What makes two runs' figures comparable: runs that differ in any of these measure different
# things, so a table holding them says so loudly (and `--by-budget` splits them).
BUDGET_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model", ("model",)),
    ("dataset", ("data", "name")),
    ("max_steps", ("train", "max_steps")),
    ("epochs", ("train", "epochs")),
    ("train_size", ("data", "train_size")),
    ("eval_size", ("data", "eval_size")),
    ("batch", ("train", "batch_size")),
    ("grad_accum", ("train", "grad_accum")),
    ("max_length", ("train", "max_length")),
)
IDENTITY_COLUMNS: tuple[str, ...] = (
    "run_id", "preset", "method", "model", "dataset", "task", "seed", "status", "error",
    "created_at", "finished_at",
)


# --- per-run values -------------------------------------------------------------------------

def run_values(record: RunRecord) -> dict[str, float]:
    """Every numeric measurement of a run under a dotted key (``metrics.accuracy`` ...).

    Adds ``params.trainable_pct`` (trainable / total, in %) because readers compare shares,
    and a share computed per run stays right when totals differ (LoRA adds parameters).
    A causal-LM run's base-model figures come as ``baseline.<metric>``.
    """
    values: dict[str, float] = {}
    for section in ("params", "timing", "memory", "metrics", "baseline"):
        block = getattr(record, section)
        if not isinstance(block, dict):
            continue
        for key, raw in block.items():
            v = number(raw)
            if v is not None:
                values[f"{section}.{key}"] = v
    trainable, total = values.get("params.trainable"), values.get("params.total")
    if trainable is not None and total:
        values["params.trainable_pct"] = 100.0 * trainable / total
    for shown, (steady, whole) in RATE_KEYS.items():
        if steady in values:
            values[shown] = values[steady]
        elif whole in values:
            values[shown] = values[whole]
            values["rate.whole_run"] = 1.0  # marked in tables: no steady window to show
    if any(steady in values for steady, _ in RATE_KEYS.values()) \
            and "timing.warmup_steps" in values:
        values["rate.warmup_steps"] = values["timing.warmup_steps"]
    values.update(serving_values(record))  # serving.* (report/serving.py), where measured
    return values


def _spec_value(record: RunRecord, path: tuple[str, ...]) -> Any:
    value: Any = record.spec
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def budget_of(record: RunRecord) -> tuple[tuple[str, str], ...]:
    """(name, value) per `BUDGET_FIELDS` entry, values as short text ("none" when unset)."""
    out = []
    for name, path in BUDGET_FIELDS:
        if name == "model":
            value: Any = record.model
        elif name == "dataset":
            value = record.dataset
        else:
            value = _spec_value(record, path)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out.append((name, printable(str(value)) if value is not None else "none"))
    return tuple(out)


def budget_differences(runs: Sequence[RunRecord]) -> list[tuple[str, list[str]]]:
    """Budget fields on which ``runs`` disagree, each with its distinct values (sorted)."""
    budgets = [dict(budget_of(r)) for r in runs]
    out = []
    for name, _ in BUDGET_FIELDS:
        values = {b[name] for b in budgets}
        if len(values) > 1:
            out.append((name, sorted(values, key=_natural)))
    return out


def _natural(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _scalar(value: Any) -> Any:
    """A value fit for one CSV cell: numbers, strings, booleans and None; NaN/inf as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value is None or isinstance(value, (str, int, float, bool)) else _SKIP


_SKIP = object()


def flatten_record(record: RunRecord) -> dict[str, Any]:
    """One flat row per run: identity, then params.*, timing.*, memory.*, scalar metrics.*.

    Lists and objects (confusion matrix, label names) are left out: a row is for a spreadsheet.
    """
    row: dict[str, Any] = {
        "run_id": record.run_id, "preset": record.preset, "method": record.method,
        "model": record.model, "dataset": record.dataset, "task": record.task,
        "seed": record.seed, "status": record.status, "error": record.error,
        "created_at": record.created_at, "finished_at": record.finished_at,
    }
    for section in ("params", "timing", "memory", "metrics", "baseline"):
        block = getattr(record, section)
        for key, raw in (block.items() if isinstance(block, dict) else ()):
            value = _scalar(raw)
            if value is not _SKIP:
                row[f"{section}.{key}"] = value
    for key in STEADY_TIMING_KEYS:  # both throughput sets, even where the record predates one
        row.setdefault(f"timing.{key}", None)
    values = run_values(record)
    pct = values.get("params.trainable_pct")
    row["params.trainable_pct"] = round(pct, 6) if pct is not None else None
    row["throughput_basis"] = "whole run" if values.get("rate.whole_run") else \
        "steady state" if any(k in values for k in RATE_KEYS) else None
    row.update(serving_text(record))
    row.update({k: v for k, v in values.items() if k.startswith("serving.")})
    return row


# --- statistics -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (ddof=1, None for one value) and count."""

    mean: float | None
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stat":
        vals = [v for v in values if number(v) is not None]
        if not vals:
            return cls(None, None, 0)
        mean = math.fsum(vals) / len(vals)
        std = statistics.stdev(vals) if len(vals) > 1 else None
        return cls(mean, std, len(vals))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


EMPTY = Stat(None, None, 0)


class GroupKey(NamedTuple):
    preset: str
    method: str
    model: str
    dataset: str
    task: str


def group_key(record: RunRecord) -> GroupKey:
    return GroupKey(record.preset, record.method, record.model, record.dataset, record.task)


@dataclass
class Group:
    """Runs of one configuration across seeds. Stats use completed runs only."""

    key: GroupKey
    runs: list[RunRecord]
    label: str = ""
    stats: dict[str, Stat] = field(default_factory=dict)
    mixed_settings: tuple[str, ...] = ()
    tuned: bool = False          # final runs of a --tune sweep (ftbench.tune), kept apart
    tied: bool | None = None     # with the section's best by the seeds (report.stats); None: not judged

    @property
    def name(self) -> str:
        """The method as tables show it: ``lora (tuned)``, ``≈`` when tied with the best."""
        return self.key.method + (" (tuned)" if self.tuned else "") + (" ≈" if self.tied else "")

    @property
    def completed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "completed"]

    @property
    def n(self) -> int:
        """How many runs the means are over (completed runs)."""
        return len(self.completed)

    @property
    def method(self) -> str:
        return self.key.method

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    @property
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def stat(self, key: str) -> Stat:
        return self.stats.get(key, EMPTY)

    @property
    def whole_run_rates(self) -> bool:
        """Some completed run had no steady-state window: its rates are whole-run figures."""
        return self.stat("rate.whole_run").n > 0

    def mean(self, key: str) -> float | None:
        return self.stat(key).mean

    def compute(self) -> None:
        """Fill `stats` from the completed runs (keys present in any of them)."""
        per_run = [run_values(r) for r in self.completed]
        if any("rate.whole_run" in v for v in per_run):
            # One basis per row: a mean never mixes steady-state and whole-run figures, so a
            # group with one run lacking a steady window shows whole-run rates (marked).
            for v in per_run:
                v["rate.whole_run"] = 1.0
                v.pop("rate.warmup_steps", None)
                for shown, (_, whole) in RATE_KEYS.items():
                    v.pop(shown, None)
                    if whole in v:
                        v[shown] = v[whole]
        keys = sorted({k for values in per_run for k in values})
        self.stats = {k: Stat.of([v[k] for v in per_run if k in v]) for k in keys}
        self.mixed_settings = _differing_settings(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.key._asdict(), "label": self.label, "n": self.n,
            "run_ids": [r.run_id for r in self.runs], "seeds": self.seeds,
            "statuses": self.status_counts, "mixed_settings": list(self.mixed_settings),
            "stats": {k: s.to_dict() for k, s in self.stats.items()},
        }


def _flatten_spec(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flatten_spec(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): json.dumps(value, sort_keys=True, default=str)}


def _differing_settings(runs: Sequence[RunRecord]) -> tuple[str, ...]:
    """Spec keys (other than the seed) whose values differ inside a group.

    Grouping is by preset/method/model/dataset only; a group that mixes, say, two max_steps
    would average unlike things, so the report says so instead of hiding it.
    """
    # the process count is not in the spec but changes the global batch and the rates
    flats = [{**_flatten_spec(r.spec), "world_size": json.dumps(r.timing.get("world_size") or 1)}
             for r in runs]
    keys = sorted({k for f in flats for k in f} - {"seed"})
    return tuple(k for k in keys if len({f.get(k) for f in flats}) > 1)


# --- references -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ReferenceRow:
    """A figure a write-up reported for one method of a preset (docs/seeds.md); never mixed."""

    preset: str
    method: str
    metrics: tuple[tuple[str, float], ...]
    note: str = ""

    @property
    def values(self) -> dict[str, float]:
        """The reported figures under the same dotted keys as group stats."""
        out: dict[str, float] = {}
        for key, value in self.metrics:
            out[REFERENCE_KEYS.get(key, f"metrics.{key}")] = value
        return out

    @property
    def source(self) -> str:
        """Short name of the write-up: the note up to its first colon."""
        return self.note.split(":", 1)[0].strip() or "write-up"

    @property
    def label(self) -> str:
        return f"reported ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "method": self.method, "metrics": dict(self.metrics),
                "note": self.note, "label": self.label}




def references_of(records: Iterable[RunRecord]) -> list[ReferenceRow]:
    """Distinct reference rows per preset, in first-seen order. Malformed entries are skipped."""
    seen: dict[ReferenceRow, None] = {}
    for record in records:
        for ref in record.references:
            if not isinstance(ref, dict) or not isinstance(ref.get("metrics"), dict):
                continue
            metrics = tuple((str(k), v) for k, raw in ref["metrics"].items()
                            if (v := number(raw)) is not None)
            row = ReferenceRow(record.preset, str(ref.get("method") or record.method), metrics,
                               printable(str(ref.get("note") or "")))
            seen.setdefault(row, None)
    return list(seen)


# --- sections and the comparison ------------------------------------------------------------

@dataclass
class Front:
    """A Pareto front of groups: metric (maximised) against a cost (minimised)."""

    metric: str
    cost: str
    members: list[Group]
    points: int  # how many groups had both values

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "cost": self.cost, "points": self.points,
                "members": [{**g.key._asdict(), "label": g.label,
                             "metric": g.mean(self.metric), "cost": g.mean(self.cost)}
                            for g in self.members]}


@dataclass
class Section:
    """Everything about one preset (and task): what one table, one chart set, compares."""

    preset: str
    task: str
    groups: list[Group]
    references: list[ReferenceRow] = field(default_factory=list)
    primary_metric: str | None = None
    memory_key: str | None = None
    params_front: Front | None = None
    memory_front: Front | None = None
    time_front: Front | None = None   # causal-lm sections: the metric against training time
    latency_front: Front | None = None  # runs that measured serving: metric vs latency
    size_front: Front | None = None     # ... and metric vs size on disk
    notes: list[str] = field(default_factory=list)
    per_run: bool = False  # one row per run (no averaging) instead of one per group
    budget: str = ""  # with --by-budget: what sets this section's budget apart ("max_steps 5")
    budget_differences: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What a reader must see before trusting the table (shown loudly, not as a note)."""
        if not self.budget_differences:
            return []
        what = "; ".join(f"{name} {' / '.join(values)}"
                         for name, values in self.budget_differences)
        return [f"⚠ these runs differ in budget ({what}): their figures are not comparable. "
                "Group by budget: `ftbench compare --by-budget`, or b in the TUI's Compare."]

    @property
    def warmup_steps(self) -> list[int]:
        """The warm-up lengths behind the steady-state rates shown, smallest first."""
        return sorted({int(v) for g in self.groups if not g.whole_run_rates for r in g.completed
                       if (v := run_values(r).get("rate.warmup_steps")) is not None})

    @property
    def rate_note(self) -> str | None:
        """How the throughput columns were measured (None when the section shows none)."""
        shown = any(g.mean(k) is not None for g in self.groups for k in RATE_KEYS)
        if not shown:
            return None
        warm = self.warmup_steps
        steady = any(g.n and not g.whole_run_rates for g in self.groups)
        parts = []
        if steady:
            after = (f"{warm[0]}" if len(warm) == 1 else f"{warm[0]}–{warm[-1]}") if warm else "the"
            shown_names = [name for key, name in (("rate.samples_per_s", "samples/s"),
                                                  ("rate.mfu", "MFU"))
                           if any(g.mean(key) is not None for g in self.groups)]
            parts.append(f"{', '.join(shown_names) or 'throughput'}: steady state after "
                         f"{after} warm-up steps")
        if any(g.whole_run_rates for g in self.groups):
            parts.append(f"{WHOLE_RUN_MARK} whole run (no steady-state window: run too short, "
                         "or recorded before ftbench measured one)")
        return "; ".join(parts) or None

    @property
    def title(self) -> str:
        return f"{self.preset} ({self.task})"

    @property
    def runs(self) -> list[RunRecord]:
        """Every run of the section, group by group."""
        return [r for g in self.groups for r in g.runs]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(g.key.model for g in self.groups))

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(g.key.dataset for g in self.groups))

    def metric_keys(self, include_references: bool = True) -> list[str]:
        """Task metrics present in any group (or reference), in the task's usual order."""
        present = {k for g in self.groups for k, s in g.stats.items() if s.mean is not None}
        if include_references:
            present |= {k for r in self.references for k in r.values}
        order = TASK_METRICS.get(self.task)
        if order is None:  # unknown task: any metric that is not a loss or a counter
            order = tuple(sorted(k.removeprefix("metrics.") for k in present
                                 if k.startswith("metrics.") and "loss" not in k
                                 and k not in ("metrics.at_step", "metrics.eval_samples")))
        return [f"metrics.{m}" for m in order if f"metrics.{m}" in present]

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset, "task": self.task, "primary_metric": self.primary_metric,
            "memory_key": self.memory_key, "notes": self.notes, "warnings": self.warnings,
            "budget": self.budget,
            "budget_differences": {name: values for name, values in self.budget_differences},
            "throughput": {"basis": "steady state", "warmup_steps": self.warmup_steps,
                           "whole_run_groups": [g.label for g in self.groups
                                                if g.whole_run_rates]},
            "groups": [g.to_dict() for g in self.groups],
            "references": [r.to_dict() for r in self.references],
            "plan_vs_measured": _plan_json(self.runs),
            "pareto": {
                "params": self.params_front.to_dict() if self.params_front else None,
                "memory": self.memory_front.to_dict() if self.memory_front else None,
                "time": self.time_front.to_dict() if self.time_front else None,
                "latency": self.latency_front.to_dict() if self.latency_front else None,
                "size": self.size_front.to_dict() if self.size_front else None,
            },
        }


@dataclass
class Comparison:
    """The selected runs, organised: one `Section` per (preset, task)."""

    runs: list[RunRecord]
    sections: list[Section]
    per_run: bool = False

    @property
    def groups(self) -> list[Group]:
        return [g for s in self.sections for g in s.groups]

    def to_dict(self) -> dict[str, Any]:
        return {"per_run": self.per_run, "sections": [s.to_dict() for s in self.sections],
                "rows": [flatten_record(r) for r in self.runs]}


def _plan_json(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    # report.planned imports Rich: not loaded for --help, which imports this module
    from ftbench.report.planned import plan_json

    return plan_json(runs)


def primary_metric(task: str, groups: Sequence[Group]) -> str | None:
    """The metric a section ranks by: accuracy then F1 (classification), EM then F1 (QA)."""
    present = {k for g in groups for k, s in g.stats.items() if s.mean is not None}
    candidates = primary_metrics(task)
    return next((f"metrics.{m}" for m in candidates if f"metrics.{m}" in present), None)


def memory_key(groups: Sequence[Group]) -> str | None:
    """One peak-memory source for the whole section, so a front never mixes RSS with GPU MB.

    The most specific source every group has; failing that, the one most groups have.
    """
    measured = [g for g in groups if g.n]
    if not measured:
        return None
    coverage = {k: sum(g.mean(k) is not None for g in measured) for k in MEMORY_KEYS}
    full = [k for k in MEMORY_KEYS if coverage[k] == len(measured)]
    if full:
        return full[0]
    best = max(MEMORY_KEYS, key=lambda k: coverage[k])
    return best if coverage[best] else None


def front(groups: Sequence[Group], metric: str | None, cost: str | None) -> Front | None:
    if metric is None or cost is None:
        return None
    points = [Point(g, m, c) for g in groups
              if (m := g.mean(metric)) is not None and (c := g.mean(cost)) is not None]
    if not points:
        return None
    return Front(metric, cost, [p.item for p in pareto_front(points)], len(points))


def _labels(groups: Sequence[Group], per_run: bool) -> None:
    """Short names for charts and fronts: the method, plus whatever else tells groups apart."""
    vary_model = len({g.key.model for g in groups}) > 1
    vary_data = len({g.key.dataset for g in groups}) > 1
    for g in groups:
        parts = [g.name]
        if vary_model:
            parts.append(g.key.model)
        if vary_data:
            parts.append(g.key.dataset)
        label = "/".join(parts)
        if per_run:
            seed = g.runs[0].seed
            label += f" s{seed}" if seed is not None else ""
        g.label = label
    counts: dict[str, int] = {}
    for g in groups:
        counts[g.label] = counts.get(g.label, 0) + 1
    for g in groups:
        if counts[g.label] > 1:
            g.label = f"{g.label} ({g.runs[0].run_id[-6:]})"


def _section_notes(section: Section, per_run: bool) -> list[str]:
    notes: list[str] = []
    for g in section.groups:
        for r in g.runs:
            if r.status != "completed":
                why = f": {printable(r.error)}" if r.error else ""
                notes.append(f"{r.status}: {r.run_id}{why}")
        if g.mixed_settings:
            shown = ", ".join(g.mixed_settings[:3]) + (" ..." if len(g.mixed_settings) > 3 else "")
            notes.append(f"{g.label}: runs differ in {shown}; the mean mixes them")
        seeds = [s for s in (r.seed for r in g.completed) if s is not None]
        if not per_run and len(seeds) != len(set(seeds)):
            notes.append(f"{g.label}: a seed appears more than once (use --latest)")
    if section.memory_key:
        partial = [g.label for g in section.groups if g.n and g.mean(section.memory_key) is None]
        if partial:
            notes.append(f"{', '.join(partial)}: no {MEMORY_NAMES[section.memory_key]} peak; "
                         "left off the memory front")
    return notes


def build_comparison(records: Sequence[RunRecord], *, per_run: bool = False,
                     by_budget: bool = False) -> Comparison:
    """Group, summarise and rank the selected runs; the one entry point of every report.

    ``per_run=True`` keeps every run as its own row (no averaging), for looking at seeds.
    ``by_budget=True`` splits a preset into one section per budget (`BUDGET_FIELDS`), so
    runs of different length or size never share a table; otherwise a table whose runs
    differ in budget carries a warning.
    Sections and groups keep the order in which their first run was created, which is the
    order the preset lists its methods in.
    """
    # a sweep's trials are scored on a validation carve, not the test set: never compared here
    records = [r for r in records if _tune_role(r) != "trial"]
    by_key: dict[tuple[Any, ...], list[RunRecord]] = {}
    for r in records:
        budget = budget_of(r) if by_budget else ()
        tuned = _tune_role(r) == "final"
        key = (*group_key(r), budget, tuned, r.run_id) if per_run else (*group_key(r), budget, tuned)
        by_key.setdefault(key, []).append(r)
    by_section: dict[tuple[Any, ...], list[Group]] = {}
    for key, runs in by_key.items():
        group = Group(GroupKey(*key[:5]), runs, tuned=key[6])
        group.compute()
        by_section.setdefault((group.key.preset, group.key.task, key[5]), []).append(group)
    references = references_of(records)
    sections = []
    for (preset, task, _budget), groups in by_section.items():
        ties = _mark_ties(groups, primary_metric(task, groups)) if not per_run else False
        _labels(groups, per_run)
        section = Section(preset, task, groups,
                          references=[ref for ref in references if ref.preset == preset],
                          per_run=per_run)
        section.budget_differences = budget_differences([r for g in groups for r in g.runs])
        section.primary_metric = primary_metric(task, groups)
        section.memory_key = memory_key(groups)
        section.params_front = front(groups, section.primary_metric, "params.trainable")
        section.memory_front = front(groups, section.primary_metric, section.memory_key)
        if task == "causal-lm":
            section.time_front = front(groups, section.primary_metric, "timing.train_s")
        section.latency_front = front(groups, section.primary_metric, LATENCY_KEY)
        section.size_front = front(groups, section.primary_metric, SIZE_KEY)
        section.notes = _section_notes(section, per_run)
        if ties:
            from ftbench.report.stats import tie_note  # see _mark_ties

            best = max((g for g in groups if g.mean(section.primary_metric or "") is not None),
                       key=lambda g: g.mean(section.primary_metric or "") or 0.0)
            section.notes.append(tie_note(best.label, any(g.tied for g in groups)))
        sections.append(section)
    if by_budget:
        _budget_labels(sections)
    return Comparison(records, sections, per_run)


def _tune_role(record: RunRecord) -> str | None:
    tune = record.spec.get("tune") if isinstance(record.spec, dict) else None
    return tune.get("role") if isinstance(tune, dict) else None


def _mark_ties(groups: Sequence[Group], metric: str | None) -> bool:
    """Mark the groups the seeds cannot tell from the best by ``metric``; whether any was
    judged (report.stats: a bootstrap over seeds)."""
    # report.stats loads only to compare runs, not for --help, which imports this module
    from ftbench.report.stats import tied

    if metric is None:
        return False
    key = metric  # "metrics.accuracy"
    scored = [g for g in groups if g.mean(key) is not None]
    if len(scored) < 2:
        return False
    best = max(scored, key=lambda g: g.mean(key) or 0.0)
    values = {id(g): [run_values(r)[key] for r in g.completed if key in run_values(r)] for g in scored}
    judged = False
    for g in scored:
        if g is not best:
            g.tied = tied(values[id(best)], values[id(g)])
            judged = judged or g.tied is not None
    return judged


def _budget_labels(sections: Sequence[Section]) -> None:
    """Name each budget section by the fields that tell it from its preset's other sections."""
    for preset in dict.fromkeys(s.preset for s in sections):
        same = [s for s in sections if s.preset == preset]
        if len(same) < 2:
            continue
        budgets = [dict(budget_of(s.groups[0].runs[0])) for s in same]
        differ = [name for name, _ in BUDGET_FIELDS if len({b[name] for b in budgets}) > 1]
        for section, budget in zip(same, budgets):
            section.budget = ", ".join(f"{name} {budget[name]}" for name in differ)


# --- formatting shared by tables, Markdown and charts ---------------------------------------

def fmt_count(value: float | None) -> str:
    """Parameter counts as 770 / 74.5K / 22.7M / 1.2B."""
    if value is None:
        return "-"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


def fmt_pct(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1 or value == 0:
        return f"{value:.1f}%"
    if value >= 0.01:
        return f"{value:.2f}%"
    return f"{value:.2g}%"


def fmt_number(value: float | None, kind: str) -> str:
    """One value by column kind: metric 0.812, seconds 62.1, rate 25.8, mb 1450, count 74.5K."""
    if value is None:
        return "-"
    if kind == "count":
        return fmt_count(value)
    if kind == "pct":
        return fmt_pct(value)
    if kind == "fraction":  # stored 0-1, shown as a percentage (MFU)
        return fmt_pct(100 * value)
    if kind == "metric":
        return f"{value:.3f}"
    if kind in ("mb", "int"):
        return f"{value:.0f}"
    if kind in ("seconds", "rate"):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.1f}"
    return f"{value:.4g}"


def fmt_stat(stat: Stat, kind: str, sep: str = " ± ", mark: str = "") -> str:
    """Mean with its spread: ``0.812 ± 0.006``; the spread is omitted when n < 2.
    ``mark`` (a footnote sign) goes right after the mean when there is one."""
    text = fmt_number(stat.mean, kind) + (mark if stat.mean is not None else "")
    if stat.mean is not None and stat.std is not None and kind not in ("count", "pct", "int"):
        text += sep + fmt_number(stat.std, kind)
    return text
