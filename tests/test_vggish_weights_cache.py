"""Weights cache: AVEL_HOME, the missing-file message, sha256-checked download over loopback."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from extractors import weights_cache
from pipeline.demo.loopback_server import serve


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AVEL_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_follows_avel_home(home):
    assert weights_cache.cache_dir() == home


def test_cache_dir_defaults_to_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("AVEL_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert weights_cache.cache_dir() == tmp_path / ".cache" / "avel"


def test_missing_file_names_file_and_command(home):
    with pytest.raises(FileNotFoundError) as info:
        weights_cache.cached_file("vggish_model.ckpt")
    assert "vggish_model.ckpt" in str(info.value)
    assert "avel weights fetch vggish" in str(info.value)


def test_sha256_of_matches_hashlib(tmp_path):
    data = b"x" * 3_000_000
    (tmp_path / "f").write_bytes(data)
    assert weights_cache.sha256_of(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_fetch_checks_sha256_and_is_idempotent(home, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    payload = b"weights" * 1000
    (site / "w.bin").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    with serve(site) as server:
        path = weights_cache.fetch(f"{server.url}/w.bin", "w.bin", digest)
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600: a shared cache
        assert path.read_bytes() == payload
        hits = dict(server.hits)
        again = weights_cache.fetch(f"{server.url}/w.bin", "w.bin", digest[:8])
        assert again == path and server.hits == hits  # cached copy reused, no second download
    assert weights_cache.cached_file("w.bin") == path


def test_fetch_with_wrong_sha256_leaves_nothing(home, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "w.bin").write_bytes(b"abc")
    with serve(site) as server, pytest.raises(ValueError, match="sha256"):
        weights_cache.fetch(f"{server.url}/w.bin", "w.bin", "0" * 64)
    assert list(home.iterdir()) == []


def test_fetch_vggish_from_mirror_checks_every_file(home, tmp_path, shared_data):
    """Real PCA file (its published sha256 matches), a stand-in checkpoint (no checksum is
    published) and a stand-in torch port whose sha256 cannot match → a clear failure, with
    the files that did verify kept in the cache and the bad one absent."""
    from click.testing import CliRunner

    from pipeline.cli import app

    site = tmp_path / "mirror"
    site.mkdir()
    pca = shared_data / "vggish" / "vggish_pca_params.npz"
    (site / "vggish_pca_params.npz").write_bytes(pca.read_bytes())
    (site / "vggish_model.ckpt").write_bytes(b"not really a checkpoint")
    (site / "vggish-10086976.pth").write_bytes(b"not the torch port")
    with serve(site) as server:
        result = CliRunner().invoke(app, ["weights", "fetch", "vggish", "--mirror", server.url])
    assert result.exit_code == 1
    assert "sha256" in result.output and "10086976" in result.output
    assert weights_cache.cached_file("vggish_pca_params.npz").is_file()
    assert not (home / "vggish-10086976.pth").exists()
    assert not (home / "vggish.pt").exists()


def test_fetch_removes_the_part_files_a_killed_fetch_left_and_keeps_a_live_ones(home, tmp_path):
    """A fetch killed mid-download (SIGKILL: no cleanup ran) leaves `.<name>.<random>.part`
    in the cache; the next fetch of that file removes it once it is stale (untouched for
    STALE_PART_S), and leaves a fresh one (another node's live fetch) and other files' alone."""
    import os
    import time
    data = b"weights" * 1000
    site = tmp_path / "site"
    site.mkdir()
    (site / "w.bin").write_bytes(data)
    home.mkdir(parents=True, exist_ok=True)
    killed = home / ".w.bin.k1ll3d.part"
    live = home / ".w.bin.l1ve.part"
    other = home / ".x.bin.k1ll3d.part"
    for path in (killed, live, other):
        path.write_bytes(b"half")
    old = time.time() - weights_cache.STALE_PART_S - 5
    os.utime(killed, (old, old))
    os.utime(other, (old, old))
    with serve(site) as server:
        path = weights_cache.fetch(f"{server.url}/w.bin", "w.bin", hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data
    assert not killed.exists() and live.exists() and other.exists()
