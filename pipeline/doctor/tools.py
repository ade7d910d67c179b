"""The programs the stages run: ffmpeg and ffprobe, yt-dlp, and the JS runtime yt-dlp needs."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys

from yt_dlp import version as ytdlp_version

from pipeline.doctor.report import Check, Status
from pipeline.doctor.scope import Scope
from pipeline.download.js_runtime import ejs_version, find_js_runtime
from pipeline.download.section_audio_shift import LAST_SHIFTING_LAVF

#: yt-dlp older than this many days likely misses YouTube's latest changes
YTDLP_MAX_AGE_DAYS = 60
_LAVF = re.compile(r"^libavformat\s+(\d+)\.\s*(\d+)\.\s*(\d+)", re.MULTILINE)


def ffmpeg_checks(scope: Scope) -> list[Check]:
    ffmpeg = _first_line("ffmpeg")
    if ffmpeg is None:
        return [Check("ffmpeg", _worst(scope, "download", "cut"),
                      "not found on PATH: download merges and cut both run it (apt-get install ffmpeg)")]
    checks = [Check("ffmpeg", "ok", f"{ffmpeg[0]} ({shutil.which('ffmpeg')})")]
    lavf = _lavf_version(ffmpeg[1])
    if lavf is not None and lavf <= LAST_SHIFTING_LAVF:
        checks.append(Check("ffmpeg opus-in-webm", "ok",
                            f"libavformat {'.'.join(map(str, lavf))} (FFmpeg <= 5.1) copies Opus into "
                            "WebM/MKV 7 ms early; avel measures it per section and the cut reads the "
                            "audio that much earlier (audio_shift_s); FFmpeg >= 6 avoids it"))
    ffprobe = _first_line("ffprobe")
    checks.append(Check("ffprobe", "ok", f"{ffprobe[0]} ({shutil.which('ffprobe')})") if ffprobe else
                  Check("ffprobe", _worst(scope, "download", "cut"),
                        "not found on PATH: download and cut probe every file with it and have no "
                        "other way (it ships with ffmpeg: apt-get install ffmpeg)"))
    return checks


def ytdlp_check(scope: Scope, today: dt.date | None = None) -> Check:
    version = ytdlp_version.__version__
    released = _release_date(version)
    if released is None:
        return Check("yt-dlp", "warn", f"{version}: not a date version, cannot tell its age")
    age = ((today or dt.date.today()) - released).days
    if age <= YTDLP_MAX_AGE_DAYS:
        return Check("yt-dlp", "ok", f"{version} ({age} days old)")
    return Check("yt-dlp", "warn", f"{version} is {age} days old (> {YTDLP_MAX_AGE_DAYS}): YouTube changes "
                 f"often; update: {update_hint('yt-dlp[default]')}")


def js_runtime_check(scope: Scope) -> list[Check]:
    """deno/node and the EJS scripts: without them yt-dlp gets no YouTube formats at all."""
    needs = scope.runs("download") and scope.config.dataset.source == "youtube"
    status: Status = "blocker" if needs else "warn"
    runtime = find_js_runtime()
    ejs = ejs_version()
    return [
        Check("js runtime", "ok", f"{runtime.name} {runtime.version} ({runtime.path})") if runtime else
        Check("js runtime", status, "no deno (>= 2.3) or node (>= 22): YouTube downloads fail as "
              f"'format not available'; {update_hint('deno')}"),
        Check("yt-dlp-ejs", "ok", ejs) if ejs else
        Check("yt-dlp-ejs", status,
              f"not installed (YouTube's challenge solver); {update_hint('yt-dlp[default]')}"),
    ]


def update_hint(package: str) -> str:
    """The install command for `package` that this user can run here: pip into this
    environment when it is writable, else the way to get a newer environment."""
    if os.access(sys.prefix, os.W_OK):
        return f"{sys.executable} -m pip install -U '{package}'"
    return (f"{sys.prefix} is read-only to uid {os.getuid()}: rebuild the image (make image) or "
            f"ask its owner to run pip install -U '{package}' there")


def _release_date(version: str) -> dt.date | None:
    match = re.match(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", version)
    if match is None:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _first_line(program: str) -> tuple[str, str] | None:
    """(the `-version` first line, the whole output), or None when it does not run."""
    path = shutil.which(program)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "-hide_banner", "-version"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    first = done.stdout.strip().splitlines()[0]
    return first.split(" Copyright")[0], done.stdout


def _lavf_version(output: str) -> tuple[int, int, int] | None:
    match = _LAVF.search(output)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def _worst(scope: Scope, *stages: str) -> Status:
    return "blocker" if any(scope.runs(s) for s in stages) else "warn"
