"""Plan's prediction beside what each run measured: one small table per preset, in
``ftbench compare`` and the TUI's Compare (`ftbench.plan.judge` says what is compared with what).

A run without a stored prediction (recorded before ftbench stored them, or whose prediction
failed) has no row; a section with no such run has no table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from ftbench.plan.judge import (
    CPU_MEASURE,
    GPU_MEASURE,
    PredictionError,
    prediction_error,
)
from ftbench.results.record import RunRecord
from ftbench.text import printable

WITHIN = 0.25  # how close counts as a hit, for colour only
SHORT = {CPU_MEASURE: "RSS growth", GPU_MEASURE: "torch allocated"}  # the caption says the rest


def judged(runs: Sequence[RunRecord]) -> list[tuple[RunRecord, PredictionError]]:
    """The runs that have a prediction and a measurement to hold it against, in order."""
    out = []
    for record in runs:
        judgement = prediction_error(record)
        if judgement is not None:
            out.append((record, judgement))
    return out


def error_text(judgement: PredictionError) -> Text:
    """``+9%`` (green within ±25 %, yellow beyond), or ``not measurable``."""
    error = judgement.error
    if error is None:
        return Text("not measurable", style="dim")
    return Text(f"{error:+.0%}", style="green" if abs(error) <= WITHIN else "yellow")


def plan_table(runs: Sequence[RunRecord], title: str = "") -> Table | None:
    """Predicted vs measured memory per run, or None when no run has both."""
    rows = judged(runs)
    if not rows:
        return None
    table = Table(title=Text(f"plan vs measured memory{' · ' + title if title else ''}"),
                  title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 1, 0, 0))
    for name, justify in (("method", "left"), ("seed", "right"), ("planned MB", "right"),
                          ("measured MB", "right"), ("error", "right"), ("what", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "what")  # type: ignore[arg-type]
    notes: dict[str, None] = {}
    for record, j in rows:
        planned = Text(f"{j.predicted_mb:,.0f}")
        planned.append(f" {j.predicted}", style="dim")
        measured = "-" if j.measured_mb is None else f"{j.measured_mb:,.0f}"
        what = SHORT.get(j.measure, j.measure) if j.unmeasurable is None \
            else f"not measurable: {j.unmeasurable}"
        if j.trainable_exact is False:
            notes["trainable parameters differ from the plan's count"] = None
        table.add_row(Text(printable(record.method)), Text("-" if record.seed is None else str(record.seed)),
                      planned, Text(measured), error_text(j), Text(printable(what), style="dim"))
    caption = [("error = (planned - measured) / measured. CPU: the RSS growth from just before "
                "the model loaded (the kernel's high-water mark) against needs (the peak plus the "
                "heap glibc keeps); GPU: torch's allocator peak against PEAK")]
    caption += list(notes)
    table.caption = Text("; ".join(caption), style="dim")
    table.caption_justify = "left"
    return table


def plan_json(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """The same rows for ``compare --json``."""
    return [{"run_id": record.run_id, "method": record.method, "seed": record.seed, **j.to_dict()}
            for record, j in judged(runs)]
