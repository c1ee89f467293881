"""The air-gap round trip: `ftbench data pack` -> a fresh venv with no index -> install.py ->
the quickstart, timed and sized (docs/airgap.md shows the figures).

    .venv/bin/python benchmarks/airgap.py                  # the real one: every locked wheel
                                                           # and bundle from the index, ~1 GB
    .venv/bin/python benchmarks/airgap.py --tiny           # CI: no network, a few seconds of pip

The real run packs for this interpreter and platform with `--split-size 60M`, makes a fresh
venv (`python3 -m venv`), runs the pack's install.py in it and then `ftbench run --preset
quickstart --headless --max-steps 2 --train-size 64 --eval-size 32 --method head-only` with
FTBENCH_CACHE in a new folder. The venv, install and run steps see no pip configuration and no
index (PIP_CONFIG_FILE=/dev/null, PIP_NO_INDEX=1), and no network at all where `unshare -n`
works (the record says which).

`--tiny` needs no network: the pack is made with `--no-index` from a local folder holding one
generated pure-Python package (1.5 MB, so `--split-size 1M` splits it) and leaves out, through
`--have`, everything this venv already has; the fresh venv sees this venv's packages (but not
ftbench) through a .pth file, and the quickstart runs on the random-init `tiny-bert` with
`synthetic-sentiment`. Every step is the same code as the real run.

`--python PY --python-version X.Y` packs for another Python and installs into a venv of PY.
`--exclude A,B --preinstall-from FULLPACK` plays a target that has A and B already: the fresh
venv first gets them from the wheels of an earlier, complete pack (no index either), then the
pack without them is installed on top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = "airgap-probe"
QUICKSTART = ["run", "--preset", "quickstart", "--headless", "--max-steps", "2", "--train-size",
              "64", "--eval-size", "32", "--method", "head-only", "--json"]


def mib(n: int) -> float:
    return round(n / (1 << 20), 1)


def clean_env(**extra: str) -> dict[str, str]:
    """No pip configuration and no index: what an air-gapped machine has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def offline_prefix() -> list[str]:
    """``unshare -n`` (a network namespace with no interfaces) where this user may make one."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True,
                                  check=False).returncode == 0:
        return [unshare, "-n"]
    return []


def step(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> tuple[float, str]:
    """Run one step in ``cwd`` (default: the log's folder, away from the checkout, whose
    ftbench folder would shadow the installed one), its output to ``log``; stop the benchmark
    with its tail on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd or log.parent,
                          check=False)
    seconds = time.perf_counter() - t0
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n=== {name}: {' '.join(cmd)} (exit {proc.returncode}, {seconds:.1f} s)\n")
        f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise SystemExit(f"airgap: {name} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return seconds, proc.stdout


def probe_wheel(folder: Path) -> Path:
    """A pure-Python wheel of 1.5 MB (random bytes: deflate cannot shrink them under 1 MiB)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "airgap_probe-1.0-py3-none-any.whl"
    blob = os.urandom(1_500_000)
    dist = "airgap_probe-1.0.dist-info"
    files = {
        "airgap_probe/__init__.py": "import pathlib\nBLOB = pathlib.Path(__file__).with_name("
                                    "'blob.bin')\n",
        "airgap_probe/blob.bin": blob,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: airgap\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/RECORD", record)
    return path


def this_env_freeze(out: Path) -> Path:
    """This venv's packages but ftbench, as `pip freeze --all` would list them."""
    from importlib import metadata

    lines = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                    if d.metadata["Name"] and d.metadata["Name"].lower() != "ftbench"})
    out.write_text("\n".join(lines) + "\n")
    return out


def see_this_env(venv: Path, view: Path) -> None:
    """Let ``venv`` import this venv's packages, but not ftbench (linked into ``view``; a .pth
    file adds the view to the venv's path)."""
    import sysconfig

    view.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        low = entry.name.lower()
        if low.startswith(("ftbench", "__editable__", "airgap_probe")):
            continue
        (view / entry.name).symlink_to(entry)
    target = Path(subprocess.run(
        [str(venv_python(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    (target / "_parent_view.pth").write_text(f"{view}\n")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="no network: CI settings")
    parser.add_argument("--work", type=Path, help="where to build (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--split-size", help="default 60M (1M with --tiny)")
    parser.add_argument("--torch", default="pip", help="passed to ftbench data pack")
    parser.add_argument("--python", default=None, help="the target Python (default: this one's base)")
    parser.add_argument("--python-version", help="passed to ftbench data pack (with --python)")
    parser.add_argument("--platform", action="append", default=[], help="passed to ftbench data pack")
    parser.add_argument("--exclude", action="append", default=[], help="passed to ftbench data pack")
    parser.add_argument("--preinstall-from", type=Path, metavar="PACK",
                        help="install the --exclude'd packages first, from this pack's wheels")
    parser.add_argument("--bundles", default=None,
                        help="passed to ftbench data pack (default: all; none with --tiny)")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="ftbench-airgap-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "airgap.log"
    pack, venv, cache = work / "pack", work / "venv", work / "cache"
    split = args.split_size or ("1M" if args.tiny else "60M")
    cmd = [sys.executable, "-m", "ftbench", "data", "pack", str(pack), "--split-size", split,
           "--torch", args.torch]
    for option, values in (("--platform", args.platform), ("--exclude", args.exclude)):
        for value in values:
            cmd += [option, value]
    if args.python_version:
        cmd += ["--python-version", args.python_version]
    bundles = args.bundles or ("none" if args.tiny else None)
    if bundles:
        cmd += ["--bundles", bundles]
    quickstart = list(QUICKSTART)
    if args.tiny:
        wheelhouse = work / "wheelhouse"
        probe_wheel(wheelhouse)
        cmd += ["--no-index", "--find-links", str(wheelhouse), "--with", f"{PROBE}==1.0",
                "--have", str(this_env_freeze(work / "have.txt"))]
        quickstart += ["--model", "tiny-bert", "--dataset", "synthetic-sentiment"]
    figures: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "packing_python": platform.python_version(), "tiny": args.tiny, "split_size": split,
        "torch": args.torch,
    }
    try:
        figures["pack_s"], summary = step("pack", cmd, log, cwd=ROOT)
        manifest_path = pack / "01" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        volumes = sorted(p for p in pack.iterdir() if p.is_dir())
        figures.update(
            wheels=sum(f["kind"] == "wheel" for f in files),
            wheels_mib=mib(sum(f["size"] for f in files if f["kind"] == "wheel")),
            bundles_mib=mib(sum(f["size"] for f in files if f["kind"] == "bundle")),
            pack_mib=mib(sum(p.stat().st_size for p in pack.rglob("*") if p.is_file())),
            parts=sum(len(f["parts"]) for f in files), split_files=sum(len(f["parts"]) > 1
                                                                      for f in files),
            volumes=len(volumes), largest_volume_mib=max(
                mib(sum(p.stat().st_size for p in v.rglob("*") if p.is_file())) for v in volumes),
            largest_wheel=max((f for f in files if f["kind"] == "wheel"),
                              key=lambda f: f["size"])["name"].split("/")[-1],
            unlocked=[r for r in manifest["requirements"]
                      if r.split("==")[0] not in _lock_names() | {"ftbench"}],
            left_out=len(manifest["left_out"]),
        )
        print(summary.strip().splitlines()[-1], flush=True)
        offline = offline_prefix()
        figures["network_cut"] = bool(offline)
        target = args.python or base_python()
        venv_cmd = [target, "-m", "venv", str(venv)] + (["--without-pip"] if args.tiny else [])
        figures["venv_s"], _ = step("venv", offline + venv_cmd, log, env=clean_env())
        if args.tiny:
            see_this_env(venv, work / "view")
        python = venv_python(venv)
        env = clean_env(FTBENCH_CACHE=str(cache))
        if args.preinstall_from:
            names = [n.strip() for value in args.exclude for n in value.split(",") if n.strip()]
            links = sorted({str(p.parent) for p in args.preinstall_from.rglob("*.whl")})
            figures["preinstalled"] = names
            figures["preinstall_s"], _ = step("preinstall", offline + [
                str(python), "-m", "pip", "install", "--no-index",
                *[f"--find-links={link}" for link in links], *names], log, env=env)
        figures["install_s"], _ = step("install", offline + [str(python), str(
            pack / "01" / "install.py")], log, env=env)
        _, where = step("where", [str(python), "-c", "import ftbench; print(ftbench.__file__)"],
                        log, env=env)
        if not Path(where.strip()).resolve().is_relative_to(venv.resolve()):
            raise SystemExit(f"airgap: ftbench was imported from {where.strip()}, not the venv")
        if args.tiny:
            probe = "import airgap_probe as p; assert p.BLOB.stat().st_size == 1_500_000"
            step("probe", [str(python), "-c", probe], log, env=env)
        figures["quickstart_s"], out = step(
            "quickstart", offline + [str(venv / "bin" / "ftbench"), *quickstart, "--runs-dir",
                                     str(work / "runs")], log, env=env)
        (run,) = json.loads(out)["runs"]
        figures.update(status=run["status"], model=run["spec"]["model"],
                       dataset=run["spec"]["data"]["name"],
                       accuracy=(run.get("metrics") or {}).get("accuracy"),
                       venv_mib=mib(sum(p.stat().st_size for p in venv.rglob("*")
                                        if p.is_file() and not p.is_symlink())))
    finally:
        if args.out:
            args.out.write_text(json.dumps(figures, indent=1) + "\n")
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:>20}: {round(value, 3) if isinstance(value, float) else value}")
    return 0 if figures.get("status") == "completed" else 1


def _lock_names() -> set[str]:
    import re

    lock = (ROOT / "locks" / "cpu.txt").read_text().splitlines()
    return {re.sub(r"[-_.]+", "-", ln.split("==")[0]).lower() for ln in lock
            if "==" in ln and not ln.startswith("#")}


if __name__ == "__main__":
    raise SystemExit(main())
