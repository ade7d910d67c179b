"""pyproject.toml's ranges and constraints.txt's pins agree, and the installers use the pins:
a range edited without re-pinning (or the reverse) fails here, not in a user's install."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_every_requirement_is_pinned_inside_its_range():
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        if name == "avel":  # an extra that names another extra
            continue
        assert name in pins, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]} outside pyproject's {req.specifier}"


def test_library_requirements_are_ranges_not_pins():
    for req in _requirements():
        assert not any(spec.operator in ("==", "===") for spec in req.specifier), \
            f"{req} is an exact pin; pins belong in constraints.txt"


def test_tf_keras_follows_tensorflow_minor():
    reqs = {canonicalize_name(r.name): r for r in _requirements()}
    pins = _pins()
    tf_minor = pins["tensorflow-cpu"].release[:2]
    assert pins["tf-keras"].release[:2] == tf_minor
    assert not reqs["tf-keras"].specifier.contains(f"{tf_minor[0]}.{tf_minor[1] + 1}.0")


def test_make_and_docker_install_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS ?= constraints.txt" in makefile and "-c $(CONSTRAINTS)" in makefile
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "COPY pyproject.toml constraints.txt" in dockerfile
    assert "pip install -c constraints.txt" in dockerfile


def test_ytdlp_default_extra_is_pinned_as_ytdlp_asks():
    """`yt-dlp[default]` brings the YouTube challenge solver (yt-dlp-ejs) at the exact version
    that yt-dlp release wants: the pins must name every package of that extra, in range."""
    import importlib.metadata

    from packaging.markers import default_environment

    pins = _pins()
    if Version(importlib.metadata.version("yt-dlp")) != pins["yt-dlp"]:
        import pytest

        pytest.skip("the installed yt-dlp is not the pinned one; its metadata would not apply")
    env = {**default_environment(), "extra": "default"}
    wanted = [Requirement(r) for r in importlib.metadata.requires("yt-dlp") or []]
    wanted = [r for r in wanted if r.marker is not None and r.marker.evaluate(env)]
    assert any(canonicalize_name(r.name) == "yt-dlp-ejs" for r in wanted)
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins and req.specifier.contains(pins[name], prereleases=True), req
