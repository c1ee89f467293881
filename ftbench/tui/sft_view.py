"""What the TUI shows of a causal-LM run: base -> tuned, forgetting, sample generations.

Pure Rich renderables and strings from a `RunRecord` (no Textual): the run detail view and the
live view's progress line use them. Every string from the record goes through ``one_line`` /
`rich.text.Text`, never markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from ftbench.terms import number
from ftbench.text import one_line, printable

if TYPE_CHECKING:
    from ftbench.results.record import RunRecord

# (key, label, digits, better): the figures measured on the base and the tuned model
LM_FIGURES: tuple[tuple[str, str, int, str], ...] = (
    ("exact_match", "exact match", 3, "max"),
    ("perplexity", "perplexity", 3, "min"),
    ("response_loss", "response loss", 4, "min"),
    ("general_loss", "general-text loss", 4, "min"),
)


def is_generative(record: RunRecord) -> bool:
    return isinstance(record.baseline, dict) or bool(record.samples)


def base_to_tuned(record: RunRecord) -> str | None:
    """``EM 0.040 → 0.550 · forgetting +0.121`` (None for a run without a base measurement)."""
    base = record.baseline if isinstance(record.baseline, dict) else None
    if base is None:
        return None
    parts = []
    em_before, em_after = number(base.get("exact_match")), number(record.metrics.get("exact_match"))
    if em_before is not None:
        parts.append(f"EM {em_before:.3f} → " + (f"{em_after:.3f}" if em_after is not None else "-"))
    else:
        before, after = number(base.get("perplexity")), number(record.metrics.get("perplexity"))
        if before is not None:
            parts.append(f"ppl {before:.3f} → " + (f"{after:.3f}" if after is not None else "-"))
    forgetting = number(record.metrics.get("forgetting"))
    if forgetting is not None:
        parts.append(f"forgetting {forgetting:+.3f}")
    return " · ".join(parts) or None


def comparison_table(record: RunRecord) -> Table:
    """Base and tuned side by side, measured the same way (module doc of causal_lm_eval)."""
    base = record.baseline if isinstance(record.baseline, dict) else {}
    table = Table.grid(padding=(0, 2))
    table.title = "Base → tuned (same held-out data, same measurement)"
    table.title_justify = "left"
    table.title_style = "bold"
    for name, style, justify in (("", "dim", "left"), ("base", "", "right"),
                                 ("tuned", "", "right"), ("change", "", "right")):
        table.add_column(name, style=style, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_row(Text(""), Text("base", style="dim"), Text("tuned", style="dim"),
                  Text("change", style="dim"))
    for key, label, digits, better in LM_FIGURES:
        before, after = number(base.get(key)), number(record.metrics.get(key))
        if before is None and after is None:
            continue
        change = Text("-", style="dim")
        if before is not None and after is not None:
            delta = after - before
            good = delta > 0 if better == "max" else delta < 0
            change = Text(f"{delta:+.{digits}f}", style="green" if good and delta else
                          "red" if delta else "")
        table.add_row(label, _num(before, digits), _num(after, digits), change)
    forgetting = number(record.metrics.get("forgetting"))
    if forgetting is not None:
        table.add_row("forgetting", Text(""), Text(""),
                      Text(f"{forgetting:+.4f}", style="red" if forgetting > 0 else "green"))
    measured = base.get("measured_on")
    if isinstance(measured, str):
        table.add_row("base is", Text(one_line(measured, 80), style="dim"), "", "")
    return table


def samples_table(record: RunRecord, limit: int = 5) -> Table:
    """A few held-out prompts: the gold answer and what the base and tuned models wrote."""
    table = Table.grid(padding=(0, 1))
    table.title = "Sample generations"
    table.title_justify = "left"
    table.title_style = "bold"
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [s for s in record.samples if isinstance(s, dict)][:limit]
    if not rows:
        table.add_row("none", Text("no generations were kept", style="dim"))
    for i, row in enumerate(rows):
        if i:
            table.add_row("", "")
        table.add_row(f"#{i + 1} prompt", Text(_text(row.get("prompt"), 400)))
        if row.get("gold") is not None:
            table.add_row("gold", Text(_text(row.get("gold"), 40), style="bold"))
        for stage in ("base", "tuned"):
            text = row.get(stage)
            if text is None:
                table.add_row(stage, Text("not measured (the run did not complete)" if
                                          stage == "tuned" else "-", style="dim"))
                continue
            mark = _mark(row.get(f"{stage}_correct"), row.get(f"{stage}_answer"))
            line = Text()
            line.append_text(mark)
            line.append(_text(text, 400) or "(empty)")
            table.add_row(stage, line)
    return table


def _mark(correct: Any, answer: Any) -> Text:
    if correct is True:
        return Text(f"✓ {_text(answer, 20)} · ", style="green")
    if correct is False:
        return Text(f"✗ {_text(answer, 20) if answer is not None else 'no answer'} · ",
                    style="red")
    return Text("")


def _num(value: float | None, digits: int) -> Text:
    return Text("-", style="dim") if value is None else Text(f"{value:.{digits}f}")


def _text(value: Any, limit: int) -> str:
    """Record text for one cell: control characters escaped, newlines shown as ⏎."""
    if value is None:
        return ""
    clean = printable(str(value).replace("\n", " ⏎ "))
    return clean if len(clean) <= limit else clean[:limit - 1] + "…"
