"""The wheel carries what an installed `avel` reads at run time: the dataset YAMLs in
`manifests/` as package data, found without `AVEL_MANIFESTS`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources, so the worktree gets no build/ or egg-info."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("pipeline", "extractors", "models", "manifests"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(out), str(src)], check=True)
    (found,) = out.glob("avel-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_holds_every_dataset_yaml(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = {n for n in names if n.startswith("manifests/")}
        assert shipped == {f"manifests/{p.name}" for p in (ROOT / "manifests").glob("*.yaml")}
        for member in shipped:
            assert zf.read(member) == (ROOT / member).read_bytes()
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.slow
def test_an_installed_wheel_finds_the_manifests_without_avel_manifests(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(site), str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("AVEL_MANIFESTS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    code = ("import pipeline.core.config as c; print(c.__file__); "
            "print(c.manifest_file('vggsound-avel')); print(c.dataset_preset('vggsound-avel')['title'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out[0].startswith(str(site)) and out[1].startswith(str(site))  # not this checkout
    manifest = (ROOT / "manifests/vggsound-avel.yaml").read_text()
    assert out[2] == __import__("yaml").safe_load(manifest)["title"]


def test_avel_manifests_overrides_the_package_data(tmp_path, monkeypatch):
    from pipeline.core.config import dataset_preset, manifest_file
    (tmp_path / "ave.yaml").write_text("title: local copy\n")
    monkeypatch.setenv("AVEL_MANIFESTS", str(tmp_path))
    assert manifest_file("ave") == tmp_path / "ave.yaml"
    assert dataset_preset("ave") == {"title": "local copy"}
