"""The JavaScript runtime yt-dlp needs for YouTube, found once and handed to it by path.

Since yt-dlp 2025.11.12, YouTube's player challenges (the `n` and `sig` parameters) are
solved by the EJS scripts (the `yt-dlp-ejs` package) running in an external JS runtime.
Without one, yt-dlp only warns, YouTube offers nothing but storyboard images, and the
download fails as "Requested format is not available" -- which reads like a problem with
the clip. So avel finds a runtime itself and passes its path to yt-dlp: a venv with the
`deno` package works with nothing on PATH, and `avel doctor` can say what was found.

Preference: the binary shipped by the `deno` PyPI package (pinned with avel), then `deno`
and `node` on PATH, each only at a version yt-dlp supports (deno >= 2.3, node >= 22).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

try:  # a dependency of avel; a missing one means "look on PATH", not an error
    from deno import find_deno_bin
except ImportError:  # pragma: no cover - only without the dependency
    find_deno_bin = None

# yt-dlp's own minimums (yt_dlp/utils/_jsruntime.py: MIN_SUPPORTED_VERSION)
MIN_VERSIONS: dict[str, tuple[int, ...]] = {"deno": (2, 3, 0), "node": (22, 0, 0)}
# first line of `<exe> --version`: "deno 2.9.8 (stable, ...)" / "v22.11.0"
_VERSION_PATTERNS = {"deno": re.compile(r"^deno (\d+(?:\.\d+)*)"),
                     "node": re.compile(r"^v(\d+(?:\.\d+)*)")}
_VERSION_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class JsRuntime:
    name: str  # "deno" | "node": the key yt-dlp's js_runtimes option uses
    path: str  # absolute path of the executable
    version: str  # as the executable reports it, e.g. "2.9.8"


def find_js_runtime() -> JsRuntime | None:
    """The runtime avel hands yt-dlp, or None when no supported one is installed."""
    candidates: list[tuple[str, str | None]] = [
        ("deno", _deno_package_binary()),
        ("deno", shutil.which("deno")),
        ("node", shutil.which("node")),
    ]
    for name, path in candidates:
        if path is None:
            continue
        runtime = probe_runtime(name, path)
        if runtime is not None:
            return runtime
    return None


def probe_runtime(name: str, path: str) -> JsRuntime | None:
    """`name` at `path` if it runs and reports a version yt-dlp supports, else None."""
    version = _reported_version(name, path)
    if version is None or _version_tuple(version) < MIN_VERSIONS[name]:
        return None
    return JsRuntime(name, path, version)


def ejs_version() -> str | None:
    """Version of the installed `yt-dlp-ejs` (the challenge solver scripts), or None."""
    try:
        return importlib.metadata.version("yt-dlp-ejs")
    except importlib.metadata.PackageNotFoundError:
        return None


def ytdlp_js_options(runtime: JsRuntime | None) -> dict[str, Any]:
    """YoutubeDL params naming `runtime` by path (yt-dlp's `js_runtimes` option).

    With no runtime, nothing is set: yt-dlp then looks for deno itself and, failing that,
    warns -- a warning `failures.classify_warning` turns into an environment failure.
    """
    if runtime is None:
        return {}
    return {"js_runtimes": {runtime.name: {"path": runtime.path}}}


def _deno_package_binary() -> str | None:
    """The executable the `deno` PyPI package installed, if that package is present."""
    if find_deno_bin is None:
        return None
    try:
        return str(find_deno_bin())
    except OSError:  # FileNotFoundError: the package without its binary
        return None


def _reported_version(name: str, path: str) -> str | None:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=_VERSION_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    first_line = (done.stdout.strip().splitlines() or [""])[0]
    match = _VERSION_PATTERNS[name].match(first_line)
    return match.group(1) if match else None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
