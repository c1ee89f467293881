"""Check, join and install an ftbench pack (made by ``ftbench data pack``) with no package index.

This module is copied into every pack as ``install.py``: the target machine has no ftbench yet,
so it uses the standard library only and imports nothing from ftbench. ftbench itself imports
it to read packs (``ftbench data fetch --from DIR``), so the pack format has one reader.

A pack is a folder ``ROOT`` holding ``manifest.json``, this file, ``INSTALL.txt`` and the packed
files (``wheels/*.whl`` for pip, ``bundles/*.zip`` for ftbench's offline data). With a transfer
limit the packed files are split into numbered parts (``NAME.001``, ``NAME.002``, ...; joined
with ``cat NAME.0* > NAME``) and laid out in numbered folders ``ROOT/01``, ``ROOT/02``, ...,
each at most the limit in total, the control files in ``01``. The manifest names every file
with its size and sha256, and every part with its own, so a damaged or missing transfer is
named before anything is installed.

    python3 ROOT/install.py            # or ROOT/01/install.py: check, join, pip install, bundles
    python3 ROOT/install.py --check    # only check that every file arrived intact
    python3 ROOT/install.py -- --user  # anything after -- goes to pip install
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 1 << 20


class PackError(Exception):
    """A pack is incomplete, damaged or unusable here; str() is the whole one-line message."""


# --- checksums, splitting, joining ----------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def part_name(name: str, index: int) -> str:
    """``x.whl`` -> ``x.whl.001``: pip's find-links skips these names, and ``cat x.whl.0*``
    joins them in order."""
    return f"{name}.{index:03d}"


def split_file(path: Path, size: int) -> list[Path]:
    """Cut ``path`` into parts of at most ``size`` bytes beside it and delete it.

    Returns the parts in order; a file no larger than ``size`` is left alone (one "part")."""
    if size <= 0:
        raise ValueError("part size must be positive")
    total = path.stat().st_size
    if total <= size:
        return [path]
    parts: list[Path] = []
    with open(path, "rb") as src:
        index = 1
        while True:
            part = path.with_name(part_name(path.name, index))
            written = 0
            with open(part, "wb") as dst:
                while written < size:
                    chunk = src.read(min(CHUNK, size - written))
                    if not chunk:
                        break
                    dst.write(chunk)
                    written += len(chunk)
            if written == 0:
                part.unlink()
                break
            parts.append(part)
            index += 1
    path.unlink()
    return parts


def join_parts(parts: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``target`` (written beside it, then renamed) and check the
    whole file's sha256; a mismatch leaves no file behind."""
    tmp = target.with_name(f".{target.name}.joining")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    for chunk in iter(lambda: src.read(CHUNK), b""):
                        h.update(chunk)
                        dst.write(chunk)
        if h.hexdigest() != sha256:
            raise PackError(f"{target.name}: the joined parts do not match the manifest's "
                            f"checksum; copy its parts again")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


# --- reading a pack -------------------------------------------------------------------------

def find_manifest(folder: Path) -> Path | None:
    """The manifest of the pack at ``folder`` (a flat pack, or the folder of numbered parts,
    or its first numbered folder), or None."""
    for candidate in (folder / MANIFEST, folder / "01" / MANIFEST):
        if candidate.is_file():
            return candidate
    return None


class Pack:
    """A pack on disk: its root, its manifest, and checked access to its files."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest

    @classmethod
    def open(cls, folder: Path) -> Pack:
        path = find_manifest(folder)
        if path is None:
            raise PackError(f"{folder} is not an ftbench pack (no {MANIFEST} in it or in "
                            f"{folder / '01'}); make one with `ftbench data pack DIR`")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PackError(f"cannot read {path}: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise PackError(f"{path} is not a pack manifest of format {FORMAT} (made by another "
                            "ftbench version?); make the pack again with this ftbench")
        root = path.parent.parent if manifest.get("volumes") else path.parent
        for entry in manifest.get("files", []):
            for part in entry.get("parts", []):
                _check_relative(part.get("path", ""))
        return cls(root, manifest)

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("files", []))

    def entries(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.files if e.get("kind") == kind]

    def check(self, entries: Sequence[dict[str, Any]] | None = None,
              log: Callable[[str], None] | None = None) -> None:
        """Every part present with its size and sha256; the first problem raises, naming the
        file, what is wrong and what to do."""
        todo = self.files if entries is None else list(entries)
        missing = [p["path"] for e in todo for p in e["parts"]
                   if not (self.root / p["path"]).is_file()]
        if missing:
            volumes = sorted({PurePosixPath(p).parts[0] for p in missing}) \
                if self.manifest.get("volumes") else []
            where = (f" (folder{'s' if len(volumes) > 1 else ''} {', '.join(volumes)}); copy "
                     f"every numbered folder of the pack into {self.root}") if volumes else ""
            raise PackError(f"{len(missing)} file(s) of the pack are missing, e.g. "
                            f"{missing[0]}{where}")
        for entry in todo:
            for part in entry["parts"]:
                path = self.root / part["path"]
                size = path.stat().st_size
                if size != part["size"]:
                    raise PackError(f"{part['path']} has {size:,} bytes, the manifest says "
                                    f"{part['size']:,}: the copy is incomplete; copy it again")
                digest = sha256_file(path)
                if digest != part["sha256"]:
                    raise PackError(f"{part['path']} is damaged (sha256 {digest[:12]}…, the "
                                    f"manifest says {part['sha256'][:12]}…); copy it again")
            if log is not None:
                log(f"checked {entry['name']}")

    def assemble(self, entry: dict[str, Any], scratch: Path) -> Path:
        """The whole file of ``entry``: in place when it is one part, else joined into
        ``scratch`` (and checked against the whole file's sha256)."""
        parts = [self.root / p["path"] for p in entry["parts"]]
        if len(parts) == 1:
            return parts[0]
        target = scratch / PurePosixPath(entry["name"]).name
        return join_parts(parts, target, entry["sha256"])


def _check_relative(path: str) -> None:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise PackError(f"the manifest names a file outside the pack ({path!r}); refusing it")


# --- installing -----------------------------------------------------------------------------

def _target_mismatch(manifest: dict[str, Any]) -> str | None:
    wanted = (manifest.get("target") or {}).get("python_version")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if wanted and wanted != here:
        return (f"this pack was made for Python {wanted}, and {sys.executable} is Python {here}; "
                f"run install.py with the Python {wanted} that ftbench should go into")
    return None


def install(folder: Path, pip_args: Sequence[str] = (), check_only: bool = False,
            say: Callable[[str], None] = print) -> None:
    """Check every file, join split ones, ``pip install --no-index`` the wheels, then have
    the new ftbench take its data bundles out of the pack into its cache."""
    pack = Pack.open(folder)
    problem = _target_mismatch(pack.manifest)
    if problem and not check_only:
        raise PackError(problem)
    say(f"checking {len(pack.files)} file(s) in {pack.root} ...")
    pack.check()
    say("every file arrived intact (sizes and sha256 match the manifest)")
    if check_only:
        return
    wheels = pack.entries("wheel")
    requirements = list(pack.manifest.get("requirements", []))
    scratch = Path(tempfile.mkdtemp(prefix="ftbench-pack-"))
    try:
        if wheels and requirements:
            links = sorted({str(pack.assemble(e, scratch).parent) for e in wheels})
            req_file = scratch / "requirements.txt"
            req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
            cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-input",
                   "--disable-pip-version-check", "-r", str(req_file)]
            for link in links:
                cmd += ["--find-links", link]
            cmd += list(pip_args)
            say(f"installing {len(requirements)} package(s) with pip, no index")
            rc = subprocess.call(cmd)
            if rc != 0:
                raise PackError(f"pip install failed (exit {rc}); its message is above "
                                f"(command: {' '.join(cmd)})")
        if pack.entries("bundle"):
            say("taking the data bundles out of the pack (ftbench data fetch --from)")
            # Run away from the current folder: a checkout's ftbench/ there would shadow the
            # installed one. A relative FTBENCH_CACHE keeps meaning the same folder.
            env = dict(os.environ)
            if env.get("FTBENCH_CACHE"):
                env["FTBENCH_CACHE"] = str(Path(env["FTBENCH_CACHE"]).expanduser().absolute())
            rc = subprocess.call([sys.executable, "-m", "ftbench", "data", "fetch", "--from",
                                  str(pack.root)], cwd=scratch, env=env)
            if rc != 0:
                raise PackError(f"`ftbench data fetch --from {pack.root}` failed (exit {rc}); "
                                "its message is above")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"done: ftbench is installed for {sys.executable}; try "
        f"`{Path(sys.executable).parent / 'ftbench'} run --preset quickstart --headless`")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pip_args: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, pip_args = args[:cut], args[cut + 1:]
    parser = argparse.ArgumentParser(
        prog="install.py", description="Install ftbench from this pack, with no package index "
        "(run it with the Python that ftbench should go into).")
    parser.add_argument("--check", action="store_true",
                        help="only check that every file arrived intact")
    parser.add_argument("--pack", metavar="DIR", help=argparse.SUPPRESS)
    opts = parser.parse_args(args)
    here = Path(opts.pack).resolve() if opts.pack else Path(__file__).resolve().parent
    try:
        install(here, pip_args, check_only=opts.check)
    except PackError as exc:
        print(f"install.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("install.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
