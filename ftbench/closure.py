"""The wheels a pack needs: ftbench's dependency closure for a target Python and platform, at
the lock's exact versions.

pip evaluates dependency markers (``; python_version >= "3.12"``) against the Python that runs
pip, not the ``--python-version`` it downloads for (pypa/pip#11198), and it cannot leave out
what the target already has. So the closure is walked here: from ftbench's wheel, each
requirement whose marker holds on the target is taken at the lock's exact version (``pip
download --no-deps``, one pip call per level), and its wheel's metadata gives the next level.
A package outside the lock (``setuptools`` for torch, the ``nvidia-*`` wheels of a CUDA torch)
takes the newest version its requirers allow. Excluded packages, and those the target has at a
version that meets their requirers, are left out with everything only they need.
"""

from __future__ import annotations

import email.parser
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from ftbench.bundles import _pip_reason, _run_streaming
from ftbench.errors import FtbenchError, PackFailed

Log = Callable[[str], None]

TORCH_INDEX = "https://download.pytorch.org/whl/{variant}"
PIP_TIMEOUT_S = 60
PIP_RETRIES = 2


@dataclass(frozen=True)
class Target:
    """Where the pack goes, and where its wheels come from."""

    lock: dict[str, str] = field(default_factory=dict)   # canonical name -> exact version
    python_version: str | None = None    # "3.12"; None: this interpreter
    platforms: tuple[str, ...] = ()      # pip platform tags; (): this machine
    torch: str = "pip"                   # "pip", "cpu", "cuNNN" or an index URL
    exclude: frozenset[str] = frozenset()
    have: dict[str, str] = field(default_factory=dict)   # the target's packages
    find_links: tuple[str, ...] = ()
    no_index: bool = False


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(target: Target, own_wheel: Path, extra: Sequence[str], folder: Path,
            log: Log) -> Closure:
    """Every wheel the target needs besides what it has: ftbench's (``own_wheel``), its
    dependencies' and those of the ``extra`` requirements, downloaded into ``folder``."""
    walk = _Walk(target, folder, log)
    roots = walk.add(read_wheel(own_wheel, locked=True))
    for text in extra:
        try:
            roots.append((Requirement(text), "--with"))
        except InvalidRequirement:
            raise PackFailed(f"--with {text!r}: not a requirement pip can read") from None
    return walk.run(roots)


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


def pip_target_flags(target: Target) -> list[str]:
    flags: list[str] = []
    for tag in expand_platforms(target.platforms):
        flags += ["--platform", tag]
    if target.python_version:
        flags += ["--python-version", target.python_version]
    if flags:
        flags += ["--implementation", "cp"]
    return flags


def pip_source_flags(target: Target) -> list[str]:
    flags = ["--no-index"] if target.no_index else []
    for link in target.find_links:
        flags += ["--find-links", link]
    return flags


def target_environment(target: Target) -> dict[str, str]:
    """PEP 508 marker values of the target (this machine's, with the target's Python and
    platform put in)."""
    env = dict(default_environment())
    if target.python_version:
        env["python_version"] = target.python_version
        env["python_full_version"] = env["implementation_version"] = f"{target.python_version}.0"
        env["implementation_name"], env["platform_python_implementation"] = "cpython", "CPython"
    if target.platforms:
        tag = target.platforms[0]
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


def describe_target(target: Target) -> str:
    python = target.python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
    where = target.platforms[0] if target.platforms else "this machine's platform"
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

    def __init__(self, target: Target, folder: Path, log: Log) -> None:
        self.target, self.folder, self.log = target, folder, log
        self.env = target_environment(target)
        self.wheels: dict[str, Wheel] = {}
        self.needed_by: dict[str, list[str]] = {}
        self.left_out: dict[str, str] = {}

    def deps(self, wheel: Wheel, extras: Iterable[str]) -> list[tuple[Requirement, str]]:
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
                if name in self.target.exclude:
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
                on_target = self.target.have.get(name)
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
        version = self.target.lock.get(name)
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
        torch_pin = pins.pop("torch", None) if self.target.torch != "pip" else None
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
        variant = self.target.torch
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
        out = Path(tempfile.mkdtemp(prefix="round-", dir=self.folder))
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--timeout", str(PIP_TIMEOUT_S),
               "--retries", str(PIP_RETRIES), "-d", str(out), *pip_target_flags(self.target),
               *pip_source_flags(self.target), *extra_flags, *pins]
        self.log(f"ftbench: pip download {' '.join(pins)}\n")
        try:
            tail = _run_streaming(cmd, lambda text: self.log(f"  {text}"))
        except FtbenchError as exc:
            raise PackFailed(str(exc)) from None
        got: dict[str, Wheel] = {}
        for path in sorted(out.glob("*.whl")):
            wheel = read_wheel(path, locked=False)
            wheel.locked = self.target.lock.get(wheel.name) == wheel.version.split("+")[0]
            got[wheel.name] = wheel
        wanted = {canonical(re.split(r"[<>=!~ ;\[]", p, maxsplit=1)[0]): p for p in pins}
        missing = [p for n, p in wanted.items() if n not in got]
        if missing:
            failed = _failed_package(tail) or missing[0]
            raise PackFailed(f"could not download {failed} for {describe_target(self.target)} from "
                             f"{where} ({_pip_reason(tail)}); "
                             f"{_download_hint(self.target, failed)}")
        return got


def _failed_package(output: str) -> str | None:
    found = re.findall(r"(?:No matching distribution found for|satisfies the requirement) "
                       r"([^\s(]+)", output)
    return found[-1] if found else None


def _download_hint(target: Target, failed: str) -> str:
    if canonical(re.split(r"[<>=!~ ;\[]", failed, maxsplit=1)[0]) == "torch" and target.torch != "pip":
        return ("pack on a machine that reaches that index, give --torch the URL of a mirror, "
                "or --exclude torch when the target has a torch build already")
    return ("check --python-version and --platform, or --exclude it when the target has it "
            "already")
