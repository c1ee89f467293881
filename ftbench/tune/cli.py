"""The `--tune` flags of `ftbench run` and what they start. No heavy imports at parse time."""

from __future__ import annotations

import argparse
from typing import Any

from ftbench.tune.space import PRUNERS, SAMPLERS, TuneConfig, TuneError, parse_config, parse_grid_flag


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "tuning (docs/tuning.md)",
        "search each method's learning rate (and what the preset's [tune] table names) on a "
        "validation carve of the training set, then train the best value per method on the "
        "whole training set and evaluate it on the test set")
    group.add_argument("--tune", action="store_true", help="tune, then run the finals")
    group.add_argument("--tune-grid", metavar="LR,LR,...",
                       help="the learning rates to try, for every method (default: 5 points over "
                            "two decades around each method's preset rate)")
    group.add_argument("--tune-sampler", choices=SAMPLERS, help="grid (default, reproducible) or tpe")
    group.add_argument("--tune-trials", type=int, metavar="N", help="tpe: trials per method")
    group.add_argument("--tune-pruner", choices=PRUNERS, help="stop trials that are clearly behind")
    group.add_argument("--validation-fraction", type=float, metavar="F",
                       help="share of the training set the trials are scored on (default 0.2)")
    group.add_argument("--tune-storage", metavar="URL",
                       help="an SQLAlchemy URL shared by workers (default: sqlite in the runs folder)")
    group.add_argument("--study", metavar="NAME", help="the study name (workers share it)")
    group.add_argument("--trials-only", action="store_true",
                       help="a worker: run trials until none is left, no final runs")


def wants_tuning(args: argparse.Namespace) -> bool:
    flags = ("tune_grid", "tune_sampler", "tune_trials", "tune_pruner", "validation_fraction",
             "tune_storage", "study")
    if not args.tune and (args.trials_only or any(getattr(args, f, None) is not None for f in flags)):
        raise TuneError("the --tune-*, --study, --validation-fraction and --trials-only flags "
                        "need --tune")
    return bool(args.tune)


def config_from(args: argparse.Namespace, preset: Any) -> TuneConfig:
    """The preset's [tune] table with the flags laid over it."""
    table = dict(getattr(preset, "tune", {}) or {})
    config = parse_config(table, f"{preset.path or preset.name} [tune]")
    flags = {"sampler": args.tune_sampler, "trials": args.tune_trials, "pruner": args.tune_pruner,
             "validation_fraction": args.validation_fraction, "storage": args.tune_storage,
             "study": args.study}
    over = parse_config({k: v for k, v in flags.items() if v is not None}, "--tune")
    merged = {k: getattr(over, k) for k, v in flags.items() if v is not None}
    config = TuneConfig(**{**config.__dict__, **merged})
    if args.tune_grid is not None:
        grid = {k: v for k, v in config.grid.items() if k.rsplit(".", 1)[-1] != "learning_rate"}
        grid["learning_rate"] = parse_grid_flag(args.tune_grid)
        config = TuneConfig(**{**config.__dict__, "grid": grid})
    return config


def check_compatible(args: argparse.Namespace) -> None:
    spread = [flag for flag, dest in (("--nproc-per-node", "nproc_per_node"), ("--nnodes", "nnodes"),
                                      ("--parallel", "parallel"), ("--devices", "devices"))
              if getattr(args, dest, None) not in (None, False)]
    if spread:
        raise TuneError(f"--tune runs one trial at a time per worker; {spread[0]} is not supported "
                        "with it (start one worker per GPU instead: docs/tuning.md)")


def tune_command(args: argparse.Namespace, preset: Any, specs: list[Any]) -> int:
    """Plan (every check, nothing trained), then run the sweep."""
    # the sweep and the run store load only for --tune, not for --help, which imports this module
    from ftbench.results.store import runs_dir
    from ftbench.tune.sweep import open_studies, plan_sweep, run_sweep

    config = config_from(args, preset)
    folder = runs_dir(args.runs_dir)
    plan = plan_sweep(specs, config, folder, seeds=args.seeds)
    if config.storage is None:  # the default study file lives in the runs folder
        folder.mkdir(parents=True, exist_ok=True)
    open_studies(plan)  # the storage opens and no study clashes, before any training
    return run_sweep(plan, args.runs_dir, as_json=args.json, trials_only=args.trials_only)
