"""Where the current run stands: what it is, a progress bar, step, epoch, elapsed and ETA.

Times come from the engine's events (elapsed and ETA at the last logging step), not from a
clock of the UI's own, so what is shown is what the engine measured.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from ftbench.tui.format import STATUS_STYLE, duration
from ftbench.tui.session import QueueItem, RunQueue


class ProgressPanel(Vertical):
    DEFAULT_CSS = """
    ProgressPanel { height: auto; }
    ProgressPanel > #progress-title { height: 1; }
    ProgressPanel > Horizontal { height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="progress-title")
        with Horizontal():
            yield ProgressBar(total=100, show_eta=False, show_percentage=False, id="progress-bar")
            yield Static(id="progress-stats")

    def on_mount(self) -> None:
        self.show_idle()

    def _parts(self) -> tuple[Static, ProgressBar, Static]:
        return (self.query_one("#progress-title", Static), self.query_one(ProgressBar),
                self.query_one("#progress-stats", Static))

    def show_idle(self, hint: str = "No run in progress. Press 1 for presets, pick one, "
                  "press r to run it.") -> None:
        title, bar, stats = self._parts()
        title.update(Text(hint, style="dim"))
        bar.update(total=100, progress=0)
        bar.display = False
        stats.update("")

    def show_item(self, queue: RunQueue, item: QueueItem) -> None:
        spec = item.spec
        feed = item.feed
        title, bar, stats = self._parts()
        head = Text(no_wrap=True, overflow="ellipsis")
        style = STATUS_STYLE.get(item.status, "")
        head.append(f"{spec.method.name}", style="bold")
        head.append(f" · seed {spec.seed} · {item.index + 1}/{len(queue)} · ")
        device = feed.started.device if feed.started else None
        head.append(f"{spec.model} on {spec.data.name}" + (f" · {device}" if device else ""),
                    style="dim")
        title.update(head)
        bar.display = True
        step = feed.last_step
        total = feed.started.total_steps if feed.started else (step.total_steps if step else 0)
        if item.done:
            record = item.record
            timing = record.timing if record is not None else {}
            steps = timing.get("steps")
            total_steps = timing.get("total_steps") or total or None
            bar.update(total=total_steps or 1, progress=(steps or 0) if total_steps else 0)
            msg = Text(" " + item.status, style=STATUS_STYLE.get(item.status, ""), no_wrap=True,
                       overflow="ellipsis")
            if steps:
                msg.append(f" · {steps}/{total_steps or '?'} steps · train "
                           f"{duration(timing.get('train_s'))}", style="")
            elif item.error:
                msg.append(f": {item.error}", style=STATUS_STYLE.get(item.status, ""))
            stats.update(msg)
            return
        if feed.started is None:
            bar.update(total=None)
            stats.update(Text(" preparing: libraries, model and data", style="dim italic",
                              no_wrap=True, overflow="ellipsis"))
            return
        bar.update(total=total or None, progress=step.step if step else 0)
        text = Text(no_wrap=True, overflow="ellipsis")
        wide = self.screen.has_class("-wide")
        if step is None:
            text.append(f" 0/{total} · waiting for the first logging step", style=style)
        elif wide:
            pct = f"{100 * step.step / total:.0f}% · " if total else ""
            text.append(f" {pct}{step.step}/{total} · epoch {step.epoch:.2f} · "
                        f"{duration(step.elapsed_s)} elapsed · ETA {duration(step.eta_s)}")
        else:
            text.append(f" {step.step}/{total} · ep {step.epoch:.2f} · ETA {duration(step.eta_s)}")
        if queue.cancelling and queue.current is item:
            text.append(" · cancelling", style="yellow")
        stats.update(text)
