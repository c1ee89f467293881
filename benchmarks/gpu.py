"""The one GPU check: ftbench's throughput, memory and QA results on a CUDA GPU, in one table.

Part 1 (random-init base-size shapes; needs only the bundled IMDb reviews and a vocabulary):

* BERT-base full FT, RoBERTa-base LoRA and QLoRA (bf16, seq 128, batch 64), each trained by
  ftbench, by a hand-written Trainer + peft script and by a plain (compiled) PyTorch loop
  (benchmarks/baselines.py), in alternating order: steady-state samples/s, MFU, torch and NVML
  peak memory, and the ratios ftbench / Trainer and ftbench / plain loop;
* per-step time of full, LoRA, IA3, BitFit and QLoRA on the same RoBERTa-base shape and batch;
* the TUI's live view vs headless: ``train_s`` of the same run.

Part 2 (needs the bundled MiniLM and SQuAD too):

* ``ftbench run --preset lora-qa --offline`` (at the preset's own sizes on a GPU): EM / F1 with
  the HasAns / NoAns split beside the all-no-answer baseline, and the process's peak RSS;
* MiniLM-L6 QA per-step time, full FT vs LoRA r=16 (batch 32, 384-token windows);
* BERT-base full FT at ``batch_size = "auto"``, eager and compiled (compile time apart);
* the speed levers, each turned off alone (ftbench/engine/levers.py).

Everything runs in this one process (one import of torch); every ftbench run goes through the
engine `ftbench run` uses. Steady state follows ftbench's rule (after 10 % of the steps, at
least 10; 20 when compiled). ``--tiny`` runs the same code on tiny CPU models and synthetic data
in about a minute: CI runs it so the script cannot rot.

    python benchmarks/gpu.py --part 1 --out part1.json     # then --part 2 --out part2.json
    python benchmarks/gpu.py --report part1.json part2.json  # one table from both
    python benchmarks/gpu.py --tiny                          # CPU smoke run (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


class Bench:
    def __init__(self, tiny: bool, steps: int) -> None:
        self.tiny = tiny
        self.steps = steps
        self.runs = tempfile.mkdtemp(prefix="ftbench-gpu-")
        self.rows: list[dict[str, Any]] = []
        self.batch = 8 if tiny else 64
        self.per_step: dict[str, dict[str, Any]] = {}   # method -> its ftbench run (roberta, batch)
        if tiny:  # trace the compiled paths without generating kernels on a CPU
            os.environ.setdefault("FTBENCH_COMPILE_BACKEND", "aot_eager")

    # --- models and data -----------------------------------------------------------------
    def model(self, kind: str) -> str:
        return {"bert": "tiny-bert", "roberta": "tiny-roberta"}[kind] if self.tiny \
            else f"{kind}-base-random"

    def data(self, batch: int) -> Any:
        from ftbench.spec import DataSpec

        if self.tiny:
            return DataSpec(name="synthetic-sentiment", train_size=max(64, batch * 4), eval_size=32)
        return DataSpec(name="imdb", source="bundled", train_size=max(512, batch * self.steps),
                        eval_size=64)

    def spec(self, kind: str, method: str, batch: int | str, steps: int | None = None,
             compile: bool | None = False) -> Any:
        from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

        data = self.data(batch if isinstance(batch, int) else self.batch)
        if batch == "auto" and not self.tiny:  # enough examples for the largest batch tried
            data = DataSpec(name="imdb", source="bundled", train_size=20000, eval_size=64)
        steps = steps or self.steps
        lr = {"full": 2e-5, "bitfit": 1e-3}.get(method, 5e-4)
        return RunSpec(preset="gpu-benchmark", model=self.model(kind), task="classification",
                       data=data, train=TrainParams(epochs=None, max_steps=steps, batch_size=batch,
                                                    learning_rate=lr, max_length=128,
                                                    logging_steps=2 if self.tiny else 10,
                                                    torch_compile=compile),
                       method=MethodSpec(name=method), seed=42, offline=True)

    def texts(self, batch: int) -> tuple[list[str], list[int]]:
        from ftbench.data import load_classification

        d = load_classification(self.data(batch), seed=42, offline=True)
        return list(d.train_texts), [int(y) for y in d.train_labels]

    # --- runners -------------------------------------------------------------------------
    def ftbench(self, spec: Any) -> dict[str, Any]:
        from ftbench.engine.runner import run
        from ftbench.plan.record import prediction_for_record

        record = run(spec, runs_dir=self.runs, predict=prediction_for_record).record
        _free()
        return _from_record(record)

    def baseline(self, which: str, kind: str, method: str, batch: int) -> dict[str, Any]:
        import baselines

        from ftbench.engine.steady import warmup_steps
        from ftbench.models import resolve_model

        texts, labels = self.texts(batch)
        folder = resolve_model(self.model(kind)).path
        precision = _precision()
        lr = 2e-5 if method == "full" else 5e-4
        common = dict(batch=batch, steps=self.steps, lr=lr, max_length=128, precision=precision,
                      warmup=warmup_steps(self.steps))
        t = time.perf_counter()
        try:
            if which == "trainer":
                out = baselines.plain_trainer(folder, method, texts, labels,
                                              logging_steps=2 if self.tiny else 10, **common)
            else:
                compile_ = method != "qlora"
                if self.tiny:
                    compile_ = False
                out = baselines.plain_loop(folder, method, texts, labels, compile=compile_, **common)
                out["compiled"] = compile_
        except Exception as exc:  # a baseline that cannot run here is reported, not fatal
            out = {"error": f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"}
        out["wall_s"] = round(time.perf_counter() - t, 1)
        _free()
        return out

    def add(self, section: str, **row: Any) -> None:
        row = {"section": section, **row}
        self.rows.append(row)
        print(json.dumps(row, default=str), flush=True)

    # --- part 1 --------------------------------------------------------------------------
    def throughput(self) -> None:
        from ftbench.methods import qlora_available

        configs = [("bert", "full"), ("roberta", "lora"), ("roberta", "qlora")]
        for i, (kind, method) in enumerate(configs):
            if method == "qlora" and not qlora_available()[0]:
                self.add("throughput", model=self.model(kind), method=method,
                         error=f"qlora unavailable: {qlora_available()[1]}")
                continue
            b = self.batch
            # the lambdas run below, in this iteration, so they see this kind/method/b
            order: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("ftbench", lambda: self.ftbench(self.spec(kind, method, b))),  # noqa: B023
                ("trainer", lambda: self.baseline("trainer", kind, method, b)),  # noqa: B023
                ("loop", lambda: self.baseline("loop", kind, method, b)),  # noqa: B023
            ]
            if i % 2:
                order.reverse()  # alternate who goes first (warm caches, clocks)
            results = {name: fn() for name, fn in order}
            f = results["ftbench"]
            if kind == "roberta":
                self.per_step[method] = f
            row = dict(model=self.model(kind), method=method, batch=b, **f,
                       trainer_samples_per_s=results["trainer"].get("steady_samples_per_s"),
                       loop_samples_per_s=results["loop"].get("steady_samples_per_s"),
                       loop_compiled=results["loop"].get("compiled"),
                       baseline_errors={k: v["error"] for k, v in results.items()
                                            if k != "ftbench" and v.get("error")} or None)
            row["vs_trainer"] = _ratio(f.get("steady_samples_per_s"), row["trainer_samples_per_s"])
            row["vs_loop"] = _ratio(f.get("steady_samples_per_s"), row["loop_samples_per_s"])
            self.add("throughput", **row)

    def per_method(self) -> None:
        from ftbench.methods import qlora_available

        for method in ("full", "lora", "ia3", "bitfit", "qlora"):
            if method == "qlora" and not qlora_available()[0]:
                continue
            # LoRA and QLoRA were measured in the throughput stage: the same run is reused
            r = self.per_step.get(method) or self.ftbench(self.spec("roberta", method, self.batch))
            rate = r.get("steady_samples_per_s")
            self.add("per_method", model=self.model("roberta"), method=method, batch=self.batch,
                     ms_per_step=round(1000 * self.batch / rate, 2) if rate else None, **r)

    def auto_batch(self) -> None:
        for compile_ in (False, True):
            steps = self.steps if self.tiny else 60
            r = self.ftbench(self.spec("bert", "full", "auto", steps=steps, compile=compile_))
            self.add("auto_batch", model=self.model("bert"), method="full", compiled=compile_, **r)

    def levers(self) -> None:
        """What each speed lever gives: BERT-base full FT at batch 64 with all levers on, then
        with each one turned off (``FTBENCH_LEVERS_OFF``, see ftbench/engine/levers.py)."""
        from ftbench.engine.levers import LEVERS

        base = None
        for off in ("",) + LEVERS:
            os.environ["FTBENCH_LEVERS_OFF"] = off
            try:
                r = self.ftbench(self.spec("bert", "full", self.batch))
            finally:
                os.environ.pop("FTBENCH_LEVERS_OFF", None)
            rate = r.get("steady_samples_per_s")
            base = rate if off == "" else base
            self.add("levers", model=self.model("bert"), lever_off=off or "(none: all on)",
                     gain=_ratio(base, rate) if off else None, **r)

    def tui_vs_headless(self) -> None:
        spec = self.spec("bert", "full", self.batch)
        headless = self.ftbench(spec)
        tui = self.tui(spec)
        self.add("tui", model=spec.model, method="full", headless_train_s=headless.get("train_s"),
                 tui_train_s=tui.get("train_s"), tui_error=tui.get("error"),
                 ratio=_ratio(tui.get("train_s"), headless.get("train_s")))

    def tui(self, spec: Any) -> dict[str, Any]:
        try:
            from ftbench.results.store import load_runs
            from ftbench.tui.app import FtbenchApp
        except ImportError as exc:
            return {"error": f"TUI unavailable: {exc}"}
        runs = tempfile.mkdtemp(prefix="ftbench-gpu-tui-")

        async def main() -> None:
            from ftbench.prepare import Prepared

            app = FtbenchApp(runs, start=Prepared.given(spec.preset, [spec]))
            async with app.run_test(size=(120, 40)) as pilot:
                while app.queue is None or app.training:
                    await pilot.pause(0.2)

        asyncio.run(main())
        records = load_runs(runs).records
        _free()
        return _from_record(records[0]) if records else {"error": "the TUI saved no record"}

    # --- part 2 --------------------------------------------------------------------------
    def qa(self) -> None:
        from ftbench.prepare import device_for, resolve
        from ftbench.presets import Overrides, load_preset

        device = device_for()  # the [offline] sizes of this machine's device, as `ftbench run`
        if self.tiny:
            from ftbench.spec import DataSpec

            (spec,) = resolve(load_preset("lora-qa"), Overrides(offline=True, max_steps=self.steps),
                              device).specs
            spec = replace(spec, model="tiny-bert",
                           data=DataSpec(name="synthetic-qa", train_size=32, eval_size=12,
                                         options={"doc_stride": 16}),
                           train=replace(spec.train, max_length=48, batch_size=8, logging_steps=2))
        else:
            (spec,) = resolve(load_preset("lora-qa"), Overrides(offline=True), device).specs
        r = self.ftbench(spec)
        self.add("qa", preset="lora-qa --offline", model=spec.model, method=spec.method.name, **r)

    def qa_speed(self) -> None:
        from ftbench.prepare import device_for, resolve
        from ftbench.presets import Overrides, load_preset
        from ftbench.spec import DataSpec

        for method in ("full", "lora"):
            (s,) = resolve(load_preset("lora-qa"), Overrides(offline=True, methods=(method,),
                                                              max_steps=self.steps, batch_size=32,
                                                              train_size=2000, eval_size=50),
                           device_for()).specs
            if method == "full":  # the preset's rate is LoRA's; full FT needs a smaller one
                s = replace(s, train=replace(s.train, learning_rate=5e-5))
            if self.tiny:
                s = replace(s, model="tiny-bert",
                            data=DataSpec(name="synthetic-qa", train_size=32, eval_size=12,
                                          options={"doc_stride": 16}),
                            train=replace(s.train, max_length=48, batch_size=8, logging_steps=2))
            r = self.ftbench(s)
            rate = r.get("steady_samples_per_s")
            self.add("qa_speed", model=s.model, method=method, batch=s.train.batch_size,
                     ms_per_step=round(1000 * s.train.batch_size / rate, 2) if rate else None, **r)


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def _precision() -> str:
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def _from_record(record: Any) -> dict[str, Any]:
    t, m, env = record.timing, record.memory, record.environment
    out = {k: t.get(k) for k in ("train_s", "samples_per_s", "steady_samples_per_s",
                                 "steady_tokens_per_s", "steady_tflops", "steady_mfu", "mfu",
                                 "warmup_steps", "steady_steps", "first_step_s", "compile_s",
                                 "batch_size", "steps")}
    out.update(status=record.status, error=record.error, precision=env.get("precision"),
               batch_size_auto=env.get("batch_size_auto"),
               torch_peak_allocated_mb=m.get("torch_peak_allocated_mb"),
               nvml_peak_used_mb=m.get("nvml_peak_used_mb"), rss_peak_mb=m.get("process_peak_rss_mb"),
               trainable=record.params.get("trainable"))
    if "exact_match" in record.metrics:
        keys = ("exact_match", "f1", "has_ans_exact", "has_ans_f1", "has_ans_total", "no_ans_exact",
                "no_ans_total", "start_accuracy", "end_accuracy", "no_answer_rate")
        out.update({k: record.metrics.get(k) for k in keys})
        out["baseline_em"] = ((record.data_info.get("baselines") or {}).get("no_answer") or {}).get("exact_match")
        out["sizing"] = record.data_info.get("sizing")
        out["train_size"] = record.data_info.get("train_size")
    return out


def environment() -> dict[str, Any]:
    import peft
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "transformers": transformers.__version__,
           "peft": peft.__version__, "device": "cpu", "cpus": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d")}
    try:
        import bitsandbytes

        env["bitsandbytes"] = bitsandbytes.__version__
    except Exception:
        env["bitsandbytes"] = None
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
        try:
            import pynvml

            pynvml.nvmlInit()
            env["driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception:
            env["driver"] = None
    return env


# --- the table -------------------------------------------------------------------------------

def _f(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and spec == "%":
        return f"{100 * v:.1f} %"
    return f"{v:{spec}}" if spec else str(v)


def report(rows: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for r in rows:
        if r["section"] == "environment":
            out.append("Environment: " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "section"))
    sections = {
        "throughput": ("Throughput (bf16, seq 128, batch 64; steady state)",
                       ["model", "method", "ftbench samp/s", "Trainer samp/s", "loop samp/s",
                        "ftbench/Trainer", "ftbench/loop", "TFLOP/s", "MFU", "torch peak MB", "NVML peak MB"],
                       lambda r: [r["model"], r["method"], _f(r.get("steady_samples_per_s")),
                                  _f(r.get("trainer_samples_per_s")),
                                  _f(r.get("loop_samples_per_s")) + (" (compiled)" if r.get("loop_compiled") else ""),
                                  _f(r.get("vs_trainer")), _f(r.get("vs_loop")), _f(r.get("steady_tflops")),
                                  _f(r.get("steady_mfu"), "%"), _f(r.get("torch_peak_allocated_mb")),
                                  _f(r.get("nvml_peak_used_mb"))]),
        "per_method": ("Per-step time by method (same model and batch)",
                       ["model", "method", "ms/step", "samp/s", "MFU", "trainable", "torch peak MB"],
                       lambda r: [r["model"], r["method"], _f(r.get("ms_per_step")),
                                  _f(r.get("steady_samples_per_s")), _f(r.get("steady_mfu"), "%"),
                                  _f(r.get("trainable")), _f(r.get("torch_peak_allocated_mb"))]),
        "auto_batch": ("batch_size = auto", ["model", "compiled", "batch", "samp/s", "TFLOP/s", "MFU",
                                             "compile s", "torch peak MB", "probe"],
                       lambda r: [r["model"], _f(r.get("compiled")), _f(r.get("batch_size")),
                                  _f(r.get("steady_samples_per_s")), _f(r.get("steady_tflops")),
                                  _f(r.get("steady_mfu"), "%"), _f(r.get("compile_s")),
                                  _f(r.get("torch_peak_allocated_mb")), _f(r.get("batch_size_auto"))]),
        "tui": ("TUI live view vs headless (train_s of the same run)",
                ["model", "headless s", "TUI s", "TUI/headless"],
                lambda r: [r["model"], _f(r.get("headless_train_s")), _f(r.get("tui_train_s")),
                           _f(r.get("ratio")) if not r.get("tui_error") else r["tui_error"]]),
        "levers": ("Speed levers (BERT-base full FT, batch 64): each turned off alone",
                   ["lever off", "samp/s", "MFU", "all-on / this"],
                   lambda r: [r["lever_off"], _f(r.get("steady_samples_per_s")),
                              _f(r.get("steady_mfu"), "%"), _f(r.get("gain"))]),
        "qa": ("lora-qa --offline", ["model", "train Qs", "EM", "F1", "HasAns EM (n)", "NoAns EM (n)",
                                     "no-answer baseline EM", "start/end acc", "train s", "RSS peak MB"],
               lambda r: [r["model"], _f(r.get("train_size")), _f(r.get("exact_match"), ".3f"),
                          _f(r.get("f1"), ".3f"),
                          f"{_f(r.get('has_ans_exact'), '.3f')} ({_f(r.get('has_ans_total'))})",
                          f"{_f(r.get('no_ans_exact'), '.3f')} ({_f(r.get('no_ans_total'))})",
                          _f(r.get("baseline_em"), ".3f"),
                          f"{_f(r.get('start_accuracy'), '.3f')} / {_f(r.get('end_accuracy'), '.3f')}",
                          _f(r.get("train_s")), _f(r.get("rss_peak_mb"))]),
        "qa_speed": ("MiniLM-L6 QA per step (batch 32, 384-token windows)",
                     ["model", "method", "ms/step", "samp/s", "torch peak MB"],
                     lambda r: [r["model"], r["method"], _f(r.get("ms_per_step")),
                                _f(r.get("steady_samples_per_s")), _f(r.get("torch_peak_allocated_mb"))]),
    }
    for name, (title, header, cells) in sections.items():
        mine = [r for r in rows if r["section"] == name]
        if not mine:
            continue
        out += ["", f"**{title}**", "", "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header)]
        for r in mine:
            if r.get("error") and r.get("status") != "completed":
                out.append(f"| {r.get('model', '')} | {r.get('method', '')} | error: {r['error']} |")
            else:
                out.append("| " + " | ".join(str(c) for c in cells(r)) + " |")
    return "\n".join(out)


STAGES = ["throughput", "per_method", "tui", "qa", "auto_batch", "levers", "qa_speed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["1", "2", "all"], default="all")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--tiny", action="store_true", help="tiny CPU models and data (CI)")
    parser.add_argument("--skip", action="append", default=[],
                        choices=STAGES)
    parser.add_argument("--only", action="append", default=[], choices=STAGES)
    parser.add_argument("--out", help="also write the rows as JSON here")
    parser.add_argument("--report", nargs="+", metavar="JSON", help="print the table of saved rows")
    args = parser.parse_args()
    if args.report:
        rows = [row for path in args.report for row in json.loads(Path(path).read_text())]
        print(report(rows))
        return
    from ftbench.quiet import quiet_libraries

    quiet_libraries()
    bench = Bench(args.tiny, 12 if args.tiny and args.steps == 150 else args.steps)

    bench.add("environment", **environment())
    stages = {"1": ["throughput", "per_method", "tui"], "2": ["qa", "levers", "auto_batch", "qa_speed"]}
    wanted = stages["1"] + stages["2"] if args.part == "all" else stages[args.part]
    for stage in wanted:
        if stage in args.skip or args.only and stage not in args.only:
            continue
        t = time.perf_counter()
        getattr(bench, {"tui": "tui_vs_headless"}.get(stage, stage))()
        print(f"[{stage}] {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        if args.out:  # after every stage, so a run cut short keeps what it measured
            Path(args.out).write_text(json.dumps(bench.rows, indent=1, default=str))
    print(report(bench.rows))


if __name__ == "__main__":
    main()
