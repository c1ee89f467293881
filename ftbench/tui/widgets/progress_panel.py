"""Where the current run stands: what it is, a progress bar, step, epoch, elapsed and ETA.

The step counter follows the engine's per-step progress events (a few a second, no device
sync), not only logging steps. Elapsed time is the engine's training time at its newest
event plus the wall clock since, so it ticks every second and resyncs at each event; it
stops while an evaluation runs, which is shown as its own phase with its own progress.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from ftbench.tui.format import STATUS_STYLE, duration
from ftbench.tui.session import QueueItem, RunQueue
from ftbench.tui.sft_view import base_to_tuned


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
        self._showing: tuple[RunQueue, QueueItem] | None = None
        self.show_idle()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        """Once a second while a run is in flight: the clock and ETA move on their own."""
        if self._showing is not None:
            queue, item = self._showing
            if not item.done and item.feed.started is not None:
                self.show_item(queue, item)

    def _parts(self) -> tuple[Static, ProgressBar, Static]:
        return (self.query_one("#progress-title", Static), self.query_one(ProgressBar),
                self.query_one("#progress-stats", Static))

    def show_idle(self, hint: str = "No run in progress. Press 1 for presets, pick one, "
                  "press r to run it.") -> None:
        self._showing = None
        title, bar, stats = self._parts()
        title.update(Text(hint, style="dim"))
        bar.update(total=100, progress=0)
        bar.display = False
        stats.update("")

    def show_item(self, queue: RunQueue, item: QueueItem) -> None:
        self._showing = (queue, item)
        spec = item.spec
        feed = item.feed
        title, bar, stats = self._parts()
        head = Text(no_wrap=True, overflow="ellipsis")
        style = STATUS_STYLE.get(item.status, "")
        head.append(f"{spec.method.name}", style="bold")
        head.append(f" · seed {spec.seed} · {item.index + 1}/{len(queue)} · ")
        tune = spec.tune or {}
        if tune.get("role") in ("trial", "final"):  # a --tune sweep (ftbench.tune)
            values = ", ".join(f"{'lr' if k == 'learning_rate' else k} {v:.3g}" if isinstance(v, float)
                               else f"{k} {v}" for k, v in (tune.get("params") or {}).items())
            what = (f"trial {tune.get('index')} of {tune.get('of')}" if tune["role"] == "trial"
                    else "final, tuned")
            head.append(f"{what}: {values} · ", style="bold magenta")
        device = feed.started.device if feed.started else None
        head.append(f"{spec.model} on {spec.data.name}" + (f" · {device}" if device else ""),
                    style="dim")
        title.update(head)
        bar.display = True
        total = feed.total_steps
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
                change = base_to_tuned(record) if record is not None else None
                if change:  # causal-lm: the base model and the tuned one, measured alike
                    msg.append(f" · {change}", style="bold")
            elif item.error:
                msg.append(f": {item.error}", style=STATUS_STYLE.get(item.status, ""))
            stats.update(msg)
            return
        if feed.started is None:
            base = feed.evaluating   # a causal-LM run measures its base model before training
            if base is not None and base.total:
                bar.update(total=base.total, progress=base.done)
                stats.update(Text(f" measuring the base model · batch {base.done}/{base.total} · "
                                  f"{duration(feed.eval_elapsed())}", no_wrap=True,
                                  overflow="ellipsis"))
                return
            bar.update(total=None)
            stats.update(Text(" preparing: libraries, model and data", style="dim italic",
                              no_wrap=True, overflow="ellipsis"))
            return
        wide = self.screen.has_class("-wide")
        text = Text(no_wrap=True, overflow="ellipsis")
        evaluating = feed.evaluating
        if evaluating is not None:  # its own phase: batches of the evaluation, its own clock
            done, of = evaluating.done, evaluating.total
            bar.update(total=of or None, progress=done)
            text.append(f" evaluating at step {evaluating.step}", style="bold")
            text.append(f" · batch {done}/{of}" if of else " · starting")
            text.append(f" · {duration(feed.eval_elapsed())}")
            if wide:
                text.append(f" · training {feed.step}/{total} paused", style="dim")
        else:
            step = feed.step
            bar.update(total=total or None, progress=step)
            elapsed = feed.train_elapsed()
            eta = feed.eta()
            if step == 0:
                text.append(f" 0/{total} · first step running · {duration(elapsed)}",
                            style=style)
            elif wide:
                pct = f"{100 * step / total:.0f}% · " if total else ""
                epoch = feed.progress.epoch if feed.progress else feed.last_step.epoch \
                    if feed.last_step else 0.0
                text.append(f" {pct}{step}/{total} · epoch {epoch:.2f} · "
                            f"{duration(elapsed)} elapsed · ETA {duration(eta)}")
            else:
                text.append(f" {step}/{total} · {duration(elapsed)} · ETA {duration(eta)}")
        if queue.cancelling and queue.current is item:
            text.append(" · cancelling", style="yellow")
        stats.update(text)
