"""Memory while a run trains: NVML device memory every 0.5 s, or process RSS on a CPU run.

GPU runs: device used / total with a bar, utilisation, the torch allocator peaks (allocated and
reserved) and a sparkline of device memory over the run. Before a run's first sample (it is
queued, or loading libraries, model and data) a machine with a GPU shows that GPU as NVML
reads it now (`set_gpu_now`), never "no NVIDIA GPU". CPU runs (no NVIDIA GPU, or NVML not
usable): a plain "CPU run" state with the process RSS peak and its history at logging steps.
When a run ends the panel shows the peaks its record saved, which are the figures that count.
A multi-process run (torchrun) sends events from rank 0 only; the app reads every GPU the run
uses from NVML itself (`set_gpus`) and the panel shows one row per GPU in place of the single
"used" line. A single-GPU run looks as it always has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from ftbench.tui.format import mb, number
from ftbench.tui.session import LiveFeed

if TYPE_CHECKING:
    from ftbench.engine.telemetry import TelemetrySample

HISTORY = 240  # samples kept in the sparkline (two minutes of NVML at 0.5 s)
BAR = 10  # cells in a per-GPU row's memory bar


@dataclass(frozen=True)
class Machine:
    """What the app found out about the machine before any run (NVML, without torch)."""

    gpu: bool
    name: str | None = None
    total_mb: float | None = None
    reason: str = ""


class MemoryPanel(Vertical):
    DEFAULT_CSS = """
    MemoryPanel { height: 1fr; }
    MemoryPanel > #memory-text { height: auto; }
    MemoryPanel > Sparkline { height: 1fr; min-height: 1; max-height: 3; }
    MemoryPanel > #util-label { height: 1; }
    MemoryPanel > #util-history { max-height: 2; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.machine = Machine(False, reason="not probed yet")
        self.mode = "idle"  # idle | waiting | gpu | cpu | finished
        self.gpu_now: Any = None  # a TelemetrySample read by the app while a run prepares
        self._waiting: tuple[LiveFeed, str | None] | None = None
        self.gpus: tuple[TelemetrySample, ...] = ()  # one per GPU of the run (`gpus_now`)

    def compose(self) -> ComposeResult:
        yield Static(id="memory-text")
        yield Sparkline([], id="memory-history")
        yield Static(id="util-label")
        yield Sparkline([], id="util-history")

    def on_mount(self) -> None:
        self.border_title = "Memory"
        self.show_idle()

    def set_machine(self, machine: Machine) -> None:
        self.machine = machine
        if self.mode == "idle":
            self.show_idle()
        elif self.mode in ("waiting", "cpu") and self._waiting is not None:
            self.show_feed(*self._waiting)

    def set_gpu_now(self, sample: Any) -> None:
        """The GPU as NVML read it just now (the app polls while a run prepares)."""
        self.gpu_now = sample
        if self.mode == "waiting" and self._waiting is not None:
            self._show_gpu_waiting(*self._waiting)

    def set_gpus(self, samples: tuple[TelemetrySample, ...]) -> None:
        """Every GPU of a multi-process run as NVML read it just now (the app polls)."""
        self.gpus = tuple(samples)
        if self.mode in ("waiting", "gpu") and self._waiting is not None:
            self.show_feed(*self._waiting)

    # --- states --------------------------------------------------------------------------
    def show_idle(self) -> None:
        self.mode = "idle"
        m = self.machine
        if m.gpu:
            total = f" · {m.total_mb / 1024:,.0f} GiB" if m.total_mb else ""
            text = Text.assemble(("GPU ", "bold"), f"{m.name or 'NVIDIA GPU'}{total}\n",
                                 ("NVML is sampled every 0.5 s while a run trains", "dim"))
        else:
            text = Text.assemble(("CPU only", "bold"), " · no NVIDIA GPU\n",
                                 ("runs train on the CPU; memory shown is the process RSS"
                                  + (f" ({m.reason})" if m.reason else ""), "dim"))
        self._set(text, [])

    def show_feed(self, feed: LiveFeed | None, device: str | None) -> None:
        if feed is None:
            self.show_idle()
            return
        samples = list(feed.gpu)
        self._waiting = (feed, device)
        if samples:
            self._show_gpu(feed, samples)
        elif self.machine.gpu and device in (None, "cuda"):
            self._show_gpu_waiting(feed, device)
        else:
            self._show_cpu(feed, device)

    def _show_gpu_waiting(self, feed: LiveFeed, device: str | None) -> None:
        """A GPU machine before the run's own samples: the device as NVML reads it now."""
        self.mode = "waiting"
        m, now = self.machine, self.gpu_now
        total = number(getattr(now, "gpu_total_mb", None)) or m.total_mb
        lines = [_line((m.name or "NVIDIA GPU", "bold"),
                       (f" · {total / 1024:,.0f} GiB" if total else "", ""))]
        used = number(getattr(now, "gpu_used_mb", None))
        if len(self.gpus) > 1:
            lines[0] = _line((f"{len(self.gpus)} GPUs", "bold"),
                             (f" · {m.name or 'NVIDIA GPU'}", ""))
            lines.extend(gpu_rows(self.gpus))
        elif used is not None:
            util = number(getattr(now, "gpu_util", None))
            lines.append(_line(("used ", "dim"), (f"{used:,.0f} / {total or 0:,.0f} MB", ""),
                               (f" ({100 * used / total:.0f}%)" if total else "", "dim"),
                               (f" · util {util:.0f}%" if util is not None else "", "")))
        else:
            lines.append(_line(("reading NVML…", "dim")))
        phase = "preparing the run" if device is None else "training starts"
        lines.append(_line((f"{phase}: its own samples follow", "dim")))
        self._set(Text("\n").join(lines), [])

    def _show_gpu(self, feed: LiveFeed, samples: list) -> None:
        self.mode = "gpu"
        last = samples[-1]
        used, total = number(last.used_mb) or 0.0, number(last.total_mb) or 0.0
        util = number(last.util)
        if len(self.gpus) > 1:  # a multi-process run: one row per GPU, read by the app
            lines = [_line((f"{len(self.gpus)} GPUs", "bold"),
                           (f" · {self.machine.name or 'NVIDIA GPU'}", "")),
                     *gpu_rows(self.gpus)]
        else:
            lines = [_line((self.machine.name or "GPU", "bold"),
                           (f" · util {util:.0f}%" if util is not None else "", "")),
                     _line(("used ", "dim"), (f"{used:,.0f} / {total:,.0f} MB", ""),
                           (f" ({100 * used / total:.0f}%)" if total else "", "dim"))]
        peak_alloc = number(last.torch_peak_allocated_mb)
        peak_res = number(last.torch_peak_reserved_mb)
        step = feed.last_step
        if peak_alloc is not None or peak_res is not None:
            lines.append(_line(("torch peak ", "dim"), (mb(peak_alloc), ""), (" alloc · ", "dim"),
                               (mb(peak_res), ""), (" reserved", "dim")))
        elif step is not None and number(step.torch_allocated_mb) is not None:
            lines.append(_line(("torch now ", "dim"), (mb(step.torch_allocated_mb), ""),
                               (" allocated", "dim")))
        self._set(Text("\n").join(lines), [number(s.used_mb) or 0.0 for s in samples[-HISTORY:]],
                  [u for s in samples[-HISTORY:] if (u := number(s.util)) is not None])

    def _show_cpu(self, feed: LiveFeed, device: str | None) -> None:
        self.mode = "cpu"
        steps = [s for s in list(feed.steps) if number(s.rss_mb) is not None]
        lines = [_line(("CPU run", "bold"), (" · no NVIDIA GPU" if device in (None, "cpu")
                                              else f" · {device}", ""))]
        if steps:
            lines.append(_line(("process RSS ", "dim"), (mb(steps[-1].rss_mb), ""),
                               (" peak", "dim")))
        else:
            lines.append(_line(("process RSS from the first logging step", "dim")))
        lines.append(_line(("GPU memory: not measured", "dim")))
        self._set(Text("\n").join(lines), [float(s.rss_mb) for s in steps[-HISTORY:]])

    def show_record(self, memory: dict, device: str | None, feed: LiveFeed | None) -> None:
        """The saved peaks once a run has ended (the figures the comparison uses)."""
        self.mode = "finished"
        lines = [_line(("Peaks saved", "bold"),
                       (" · CPU run" if device in (None, "cpu") else f" · {device}", ""))]
        rows = (("torch alloc ", "torch_peak_allocated_mb"),
                ("torch reserved ", "torch_peak_reserved_mb"),
                ("NVML device ", "nvml_peak_used_mb"), ("process RSS ", "process_peak_rss_mb"))
        for label, key in rows:
            if number(memory.get(key)) is not None:
                lines.append(_line((label, "dim"), (mb(memory.get(key)), "")))
        if feed is not None and feed.gpu:
            history = [number(s.used_mb) or 0.0 for s in list(feed.gpu)[-HISTORY:]]
        elif feed is not None:
            history = [float(s.rss_mb) for s in list(feed.steps) if number(s.rss_mb) is not None]
        else:
            history = []
        self._set(Text("\n").join(lines), history[-HISTORY:])

    def _set(self, renderable: object, history: list[float],
             util: list[float] | None = None) -> None:
        """The text, device (or RSS) memory over time, and on a GPU its utilisation over
        time, as nvitop draws them (the last `HISTORY` samples)."""
        self.query_one("#memory-text", Static).update(renderable)
        spark = self.query_one("#memory-history", Sparkline)
        spark.data = history
        spark.display = len(history) > 1
        util = util or []
        label = self.query_one("#util-label", Static)
        label.update(Text(f"util over time · now {util[-1]:.0f}%", style="dim") if util else "")
        label.display = spark_util = len(util) > 1
        util_spark = self.query_one("#util-history", Sparkline)
        util_spark.data = util
        util_spark.display = spark_util


def gpu_rows(samples: tuple[TelemetrySample, ...]) -> list[Text]:
    """One line per GPU: NVML index, a memory bar, used / total MB and utilisation."""
    rows: list[Text] = []
    for sample in samples:
        index = sample.gpu_index
        used, total = number(sample.gpu_used_mb), number(sample.gpu_total_mb)
        if used is None:
            rows.append(_line((f"GPU {index} ", "bold"), ("not readable", "dim")))
            continue
        share = min(max(used / total, 0.0), 1.0) if total else 0.0
        filled = round(share * BAR)
        util = number(sample.gpu_util)
        rows.append(_line((f"GPU {index} ", "bold"), ("█" * filled, "green"),
                          ("░" * (BAR - filled), "dim"),
                          (f" {used:,.0f} / {total or 0:,.0f} MB", ""),
                          (f" ({100 * share:.0f}%)" if total else "", "dim"),
                          (f" · util {util:.0f}%" if util is not None else "", "")))
    return rows


def _line(*parts: tuple[str, str]) -> Text:
    """One line that never wraps: a narrow panel cuts it with an ellipsis instead."""
    text = Text.assemble(*parts)
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text
