"""`ftbench data pack DIR`: everything an air-gapped machine needs to install and run ftbench.

A pack holds the wheels of exactly the locked versions (``locks/cpu.txt``) of ftbench's runtime
dependencies for a target Python and platform, a wheel of ftbench itself, the offline data
bundles (a zip of each bundle's checksummed member files), ``manifest.json`` (every file's size
and sha256), ``requirements.txt``, ``INSTALL.txt`` and ``install.py`` (`ftbench.unpack`, stdlib
only). Installing needs no index: ``python3 DIR/install.py``, or
``pip install --no-index --find-links DIR/wheels -r DIR/requirements.txt`` then
``ftbench data fetch --from DIR``.

Which wheels: pip resolves dependency markers (``; python_version >= "3.12"``) against the
Python that runs pip, not the ``--python-version`` it downloads for (pypa/pip#11198), and it
cannot leave out what the target already has. So the pack walks the dependency closure itself:
from ftbench's wheel, each requirement whose marker holds on the target is taken at the lock's
exact version (``pip download --no-deps``, one pip call per level), its wheel's metadata gives
the next level. A package outside the lock (``setuptools`` for torch on Python 3.12, the
``nvidia-*`` wheels of a CUDA torch) takes the newest version its requirers allow, and the
manifest lists it as unlocked. ``--exclude`` and ``--have`` (the target's ``pip freeze``) leave
packages out, with everything only they need.

Nothing is written at ``DIR`` until the pack is complete: it is built in a temporary folder
beside it and renamed into place.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ftbench import __version__
from ftbench.errors import FtbenchError
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
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

Log = Callable[[str], None]

TORCH_INDEX = "https://download.pytorch.org/whl/{variant}"
MIN_SPLIT = 1 << 20          # the control files (manifest, install.py) must fit beside parts
PIP_TIMEOUT_S = 60
PIP_RETRIES = 2
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30, "kb": 10**3, "mb": 10**6, "gb": 10**9}


class PackFailed(FtbenchError):
    """A pack could not be made; the message says which input or package and what to do."""


# --- the request, parsed and checked at the boundary -----------------------------------------

@dataclass(frozen=True)
class PackRequest:
    dest: Path
    bundles: tuple[str, ...]
    lock: dict[str, str]                 # canonical name -> exact version
    lock_path: Path
    python_version: str | None = None    # "3.12"; None: this interpreter
    platforms: tuple[str, ...] = ()      # pip platform tags; (): this machine
    torch: str = "pip"                   # "pip", "cpu", "cuNNN" or an index URL
    exclude: frozenset[str] = frozenset()
    have: dict[str, str] = field(default_factory=dict)
    extra: tuple[str, ...] = ()          # --with requirements
    split_size: int | None = None
    wheel: Path | None = None            # a ready ftbench wheel; None: build one
    find_links: tuple[str, ...] = ()
    no_index: bool = False
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


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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
    from ftbench.bundles import BUNDLES

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
        dest=target, bundles=tuple(names), lock=pins, lock_path=lock_path,
        python_version=python_version, platforms=tuple(platforms), torch=torch,
        exclude=excluded, have=read_pins(Path(have), "--have file") if have else {},
        extra=tuple(extra), split_size=size, wheel=wheel_path, find_links=tuple(find_links),
        no_index=no_index, force=force)


def _near(name: str, choices: Iterable[str]) -> str | None:
    import difflib

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


# --- the target: pip's flags and the marker environment --------------------------------------

_LEGACY_MANYLINUX = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}


def expand_platforms(tags: Sequence[str]) -> list[str]:
    """pip takes ``--platform`` tags literally: a glibc 2.28 machine also runs the wheels of
    every older manylinux, so list them all (and their legacy aliases)."""
    out: list[str] = []
    for tag in tags:
        found = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", tag)
        legacy = re.fullmatch(r"(manylinux2014|manylinux2010|manylinux1)_(\w+)", tag)
        musl = re.fullmatch(r"musllinux_(\d+)_(\d+)_(\w+)", tag)
        if found or legacy:
            if found:
                glibc, arch = (int(found.group(1)), int(found.group(2))), found.group(3)
            else:
                glibc, arch = _LEGACY_MANYLINUX[legacy.group(1)], legacy.group(2)  # type: ignore[union-attr]
            out += [f"manylinux_{glibc[0]}_{minor}_{arch}" for minor in range(glibc[1], 4, -1)]
            out += [f"{alias}_{arch}" for alias, version in _LEGACY_MANYLINUX.items()
                    if version <= glibc]
        elif musl:
            out += [f"musllinux_{musl.group(1)}_{minor}_{musl.group(3)}"
                    for minor in range(int(musl.group(2)), 0, -1)]
        else:
            out.append(tag)
    return list(dict.fromkeys(out))


def pip_target_flags(req: PackRequest) -> list[str]:
    flags: list[str] = []
    for tag in expand_platforms(req.platforms):
        flags += ["--platform", tag]
    if req.python_version:
        flags += ["--python-version", req.python_version]
    if flags:
        flags += ["--implementation", "cp"]
    return flags


def pip_source_flags(req: PackRequest) -> list[str]:
    flags = ["--no-index"] if req.no_index else []
    for link in req.find_links:
        flags += ["--find-links", link]
    return flags


def target_environment(req: PackRequest) -> dict[str, str]:
    """PEP 508 marker values of the target (this machine's, with the target's Python and
    platform put in)."""
    from packaging.markers import default_environment

    env = dict(default_environment())
    if req.python_version:
        env["python_version"] = req.python_version
        env["python_full_version"] = env["implementation_version"] = f"{req.python_version}.0"
        env["implementation_name"], env["platform_python_implementation"] = "cpython", "CPython"
    if req.platforms:
        tag = req.platforms[0]
        arch = re.sub(r"^(many|musl)?linux(_\d+_\d+|\d+)?_|^macosx_\d+_\d+_|^win_?", "", tag)
        if "linux" in tag:
            env.update(sys_platform="linux", platform_system="Linux", os_name="posix",
                       platform_machine=arch)
        elif tag.startswith("macosx"):
            env.update(sys_platform="darwin", platform_system="Darwin", os_name="posix",
                       platform_machine="arm64" if arch == "arm64" else "x86_64")
        elif tag.startswith("win"):
            env.update(sys_platform="win32", platform_system="Windows", os_name="nt",
                       platform_machine={"amd64": "AMD64", "arm64": "ARM64"}.get(arch, "x86"))
        env["platform_release"] = env["platform_version"] = ""
    return env


def describe_target(req: PackRequest) -> str:
    python = req.python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
    where = req.platforms[0] if req.platforms else "this machine's platform"
    return f"Python {python}, {where}"


# --- wheels and their metadata ---------------------------------------------------------------

@dataclass
class Wheel:
    name: str                 # canonical
    version: str
    path: Path
    requires: list[str]       # Requires-Dist lines
    locked: bool
    extras: set[str] = field(default_factory=set)


def read_wheel(path: Path, locked: bool) -> Wheel:
    """Name, version and requirements from a wheel's METADATA (nothing is executed)."""
    try:
        with zipfile.ZipFile(path) as zf:
            metas = [n for n in zf.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(metas) != 1:
                raise PackFailed(f"{path.name} is not a valid wheel (no single METADATA)")
            meta = email.parser.BytesParser().parsebytes(zf.read(metas[0]))
    except zipfile.BadZipFile:
        raise PackFailed(f"{path.name} is not a valid wheel (not a zip file)") from None
    return Wheel(canonical(str(meta["Name"])), str(meta["Version"]), path,
                 list(meta.get_all("Requires-Dist") or []), locked)


@dataclass
class Closure:
    wheels: dict[str, Wheel]
    needed_by: dict[str, list[str]]          # name -> "requirer (specifier)" lines
    left_out: dict[str, str]                 # name -> why (excluded / on the target)


class _Walk:
    """The dependency closure of ftbench for the target, at the lock's versions."""

    def __init__(self, req: PackRequest, folder: Path, log: Log) -> None:
        self.req, self.folder, self.log = req, folder, log
        self.env = target_environment(req)
        self.wheels: dict[str, Wheel] = {}
        self.needed_by: dict[str, list[str]] = {}
        self.left_out: dict[str, str] = {}

    def deps(self, wheel: Wheel, extras: Iterable[str]) -> list[tuple[Requirement, str]]:
        from packaging.requirements import InvalidRequirement, Requirement

        contexts = [{**self.env, "extra": e} for e in ("", *sorted(extras))]
        out = []
        for line in wheel.requires:
            try:
                dep = Requirement(line)
            except InvalidRequirement:
                raise PackFailed(f"{wheel.path.name} has a requirement pip cannot read: "
                                 f"{line!r}") from None
            if dep.marker is None or any(dep.marker.evaluate(c) for c in contexts):
                out.append((dep, f"{wheel.name} {wheel.version}"))
        return out

    def add(self, wheel: Wheel, extras: Iterable[str] = ()) -> list[tuple[Requirement, str]]:
        self.wheels[wheel.name] = wheel
        wheel.extras |= set(extras)
        return self.deps(wheel, wheel.extras)

    def run(self, roots: list[tuple[Requirement, str]]) -> Closure:
        from packaging.specifiers import SpecifierSet

        queue = roots
        while queue:
            batch: dict[str, tuple[SpecifierSet, set[str], list[str]]] = {}
            later: list[tuple[Requirement, str]] = []
            for dep, by in queue:
                name = canonical(dep.name)
                if dep.url:
                    raise PackFailed(f"{by} requires {dep.name} from a URL ({dep.url}); the "
                                     "pack takes packages from the index only")
                self.needed_by.setdefault(name, []).append(f"{by} ({dep.specifier or 'any'})")
                if name in self.req.exclude:
                    self.left_out[name] = "--exclude"
                    continue
                if name in self.wheels:
                    have = self.wheels[name]
                    if not dep.specifier.contains(have.version, prereleases=True):
                        raise PackFailed(f"{by} needs {dep.name}{dep.specifier}, but the pack "
                                         f"has {name} {have.version} (from the lock); move the "
                                         "lock forward")
                    new = set(dep.extras) - have.extras
                    if new:
                        later += self.add(have, new)
                    continue
                on_target = self.req.have.get(name)
                if on_target is not None and name not in batch and \
                        dep.specifier.contains(on_target, prereleases=True):
                    self.left_out[name] = f"the target has {on_target}"
                    continue
                spec, extras, by_list = batch.setdefault(name, (SpecifierSet(), set(), []))
                batch[name] = (spec & dep.specifier, extras | set(dep.extras), by_list + [by])
                self.left_out.pop(name, None)
            for name, wheel in self.download(batch).items():
                later += self.add(wheel, batch[name][1])
            queue = later
        return Closure(self.wheels, self.needed_by, self.left_out)

    def pin(self, name: str, spec: SpecifierSet, by: list[str]) -> str:
        version = self.req.lock.get(name)
        if version is None:
            return f"{name}{spec}"
        if not spec.contains(version, prereleases=True):
            raise PackFailed(f"the lock pins {name}=={version}, but {by[0]} needs "
                             f"{name}{spec}; move the lock forward")
        return f"{name}=={version}"

    def download(self, batch: dict[str, tuple[SpecifierSet, set[str], list[str]]]
                 ) -> dict[str, Wheel]:
        if not batch:
            return {}
        pins = {name: self.pin(name, spec, by) for name, (spec, _, by) in batch.items()}
        torch_pin = pins.pop("torch", None) if self.req.torch != "pip" else None
        got: dict[str, Wheel] = {}
        if pins:
            got.update(self.pip_download(list(pins.values()), []))
        if torch_pin is not None:
            got.update(self.download_torch(torch_pin))
        missing = [pins.get(n, n) for n in batch if n not in got]
        if missing:
            raise PackFailed(f"pip downloaded no wheel for {', '.join(missing)}")
        return got

    def download_torch(self, pin: str) -> dict[str, Wheel]:
        variant = self.req.torch
        url = variant if "://" in variant else TORCH_INDEX.format(variant=variant)
        if "://" not in variant and "==" in pin:  # exactly that build, whatever find-links hold
            pin = f"{pin}+{variant}"
        got = self.pip_download([pin], ["--index-url", url], where=url)
        wheel = got.get("torch")
        if wheel is not None and "://" not in variant and not wheel.version.endswith(f"+{variant}"):
            raise PackFailed(f"pip found torch {wheel.version}, not the {variant} build; is a "
                             "find-links folder in your pip configuration offering it?")
        return got

    def pip_download(self, pins: list[str], extra_flags: list[str],
                     where: str = "the package index") -> dict[str, Wheel]:
        from ftbench.bundles import _pip_reason, _run_streaming

        out = Path(tempfile.mkdtemp(prefix="round-", dir=self.folder))
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--timeout", str(PIP_TIMEOUT_S),
               "--retries", str(PIP_RETRIES), "-d", str(out), *pip_target_flags(self.req),
               *pip_source_flags(self.req), *extra_flags, *pins]
        self.log(f"ftbench: pip download {' '.join(pins)}\n")
        try:
            tail = _run_streaming(cmd, lambda text: self.log(f"  {text}"))
        except FtbenchError as exc:
            raise PackFailed(str(exc)) from None
        got: dict[str, Wheel] = {}
        for path in sorted(out.glob("*.whl")):
            wheel = read_wheel(path, locked=False)
            wheel.locked = self.req.lock.get(wheel.name) == wheel.version.split("+")[0]
            got[wheel.name] = wheel
        wanted = {canonical(re.split(r"[<>=!~ ;\[]", p, maxsplit=1)[0]): p for p in pins}
        missing = [p for n, p in wanted.items() if n not in got]
        if missing:
            failed = _failed_package(tail) or missing[0]
            raise PackFailed(f"could not download {failed} for {describe_target(self.req)} from "
                             f"{where} ({_pip_reason(tail)}); "
                             f"{_download_hint(self.req, failed)}")
        return got


def _failed_package(output: str) -> str | None:
    found = re.findall(r"(?:No matching distribution found for|satisfies the requirement) "
                       r"([^\s(]+)", output)
    return found[-1] if found else None


def _download_hint(req: PackRequest, failed: str) -> str:
    if canonical(re.split(r"[<>=!~ ;\[]", failed, maxsplit=1)[0]) == "torch" and req.torch != "pip":
        return ("pack on a machine that reaches that index, give --torch the URL of a mirror, "
                "or --exclude torch when the target has a torch build already")
    return ("check --python-version and --platform, or --exclude it when the target has it "
            "already")


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
           "--no-input", "-w", str(out), *pip_source_flags(req)]
    if _setuptools_recent():
        cmd.append("--no-build-isolation")  # no index needed to build
    cmd.append(str(copy))
    from ftbench.bundles import _pip_reason, _run_streaming

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
    from importlib import metadata

    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 71


def _roots(req: PackRequest, own: Wheel, walk: _Walk) -> list[tuple[Requirement, str]]:
    from packaging.requirements import InvalidRequirement, Requirement

    roots = walk.add(own)
    for text in req.extra:
        try:
            roots.append((Requirement(text), "--with"))
        except InvalidRequirement:
            raise PackFailed(f"--with {text!r}: not a requirement pip can read") from None
    return roots


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
        own = read_wheel(build_own_wheel(stage / "download", req, log), locked=True)
        walk = _Walk(req, stage / "download", log)
        closure = walk.run(_roots(req, own, walk))
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
        unused_exclusions=sorted(n for n in req.exclude if n not in closure.left_out),
        seconds=time.perf_counter() - start)


def _bundle_files(req: PackRequest, folder: Path, log: Log) -> list[PackedFile]:
    from ftbench.bundles import BUNDLES, write_archive

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
            "python_version": req.python_version or f"{sys.version_info[0]}.{sys.version_info[1]}",
            "platforms": list(req.platforms) or None, "torch": req.torch,
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
    from ftbench import unpack

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
        import textwrap

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
    from ftbench.bundles import BUNDLES, fetch_from_archive

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
    from ftbench.bundles import BUNDLES

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
