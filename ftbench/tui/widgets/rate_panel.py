"""Throughput and the latest figures of the current run: samples/s, tokens/s, lr, eval.

Live samples/s and tokens/s come with every logging step (the engine reads its device-side
token counter only there, where the Trainer syncs for the loss anyway); when the run ends,
the record's figures over the whole training phase replace them.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ftbench.tui.format import fixed, number, rate
from ftbench.tui.session import QueueItem, primary_eval_key


class RatePanel(Static):
    DEFAULT_CSS = """
    RatePanel { height: 2; width: auto; max-width: 40; }
    """

    def show_item(self, item: QueueItem | None) -> None:
        if item is None:
            self.update("")
            return
        feed = item.feed
        step = feed.last_step
        record = item.record
        samples = number(record.timing.get("samples_per_s")) if record else None
        tokens = number(record.timing.get("tokens_per_s")) if record else None
        if step is None and samples is None:
            self.update("")  # nothing trained (yet, or at all)
            return
        if samples is None and step is not None:
            samples = number(step.samples_per_s)
        if tokens is None and step is not None:
            tokens = number(step.tokens_per_s)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(rate(samples), style="bold")
        text.append(" samples/s · ", style="dim")
        if tokens is not None:
            text.append(rate(tokens), style="bold")
            text.append(" tok/s", style="dim")
        else:
            text.append("- tok/s", style="dim")
        text.append("\n")
        text.append("lr ", style="dim")
        text.append(f"{step.lr:.1e}" if step is not None and step.lr is not None else "-")
        evals = list(feed.evals)
        key = primary_eval_key(item.spec.task, evals)
        last = next((e for e in reversed(evals) if key in e.metrics), None) if key else None
        short = {"accuracy": "acc", "exact_match": "EM"}.get(key or "", key or "eval")
        text.append(f" · {short} ", style="dim")
        text.append(fixed(last.metrics.get(key)) if last is not None else "-", style="bold")
        if last is not None:
            text.append(f" @{last.step}", style="dim")
        self.update(text)
