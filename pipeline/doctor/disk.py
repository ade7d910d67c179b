"""Free disk in the work directory against the dataset's estimated size, per stage.

Per clip: the downloaded file (section mode: the clip's seconds at a bitrate measured on a
real clip; full mode: a whole video of `FULL_VIDEO_S` seconds), the cut audio (PCM of the
recipe's rate and channels) and frames (JPEGs at a bytes-per-pixel measured with ffmpeg at
the recipe's quality), and each extractor's stored features (its output shape in the store
dtype). Rough by nature: a warning, never a blocker.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from extractors.base import Extractor
from pipeline.core.workdir import Workdir
from pipeline.cut.recipes import audio_recipe, frames_recipe
from pipeline.doctor.report import Check
from pipeline.doctor.scope import Scope

# Measured on the LLP reference clip BjCEufrlXm4.mp4 (10.03 s, 320x240 H.264 + AAC: 756,080
# bytes) and its frames: ffmpeg's default JPEG quality 4,961 bytes per 76,800-pixel frame
# (82 frames, 406,811 bytes), -q:v 2 8,758 bytes (50 frames, 437,917 bytes).
RAW_BYTES_PER_S = 75_400
JPEG_BYTES_PER_PIXEL = {"default": 0.065, "q2": 0.114}
SOURCE_PIXELS = 640 * 360  # the default download format's height cap (<= 360p)
FULL_VIDEO_S = 300  # full mode keeps whole videos: assume five minutes each
NATIVE_AUDIO_RATE = 48_000  # recipes that keep the file's own rate: YouTube's Opus/AAC rate
NATIVE_CHANNELS = 2
CLIP_STAGES = ("download", "cut", "extract")


def disk_check(scope: Scope, built: dict[str, Extractor]) -> Check:
    clips = clip_count(scope)
    if clips is None:
        return Check("disk", "ok", f"{_free(scope.workdir)} free; no manifest yet, so no size "
                     "estimate (avel manifest writes it)")
    per_clip = per_clip_bytes(scope, built)
    stages = [s for s in CLIP_STAGES if scope.runs(s)]
    need = clips * sum(per_clip[s] for s in stages)
    free = _free_bytes(scope.workdir)
    parts = ", ".join(f"{s} {_size(clips * per_clip[s])}" for s in stages)
    detail = f"{_size(free)} free; {clips} clips need about {_size(need)} ({parts}) if none is done yet"
    if free < need:
        return Check("disk", "warn", f"{detail}: free space is short of the estimate")
    return Check("disk", "ok", detail)


def per_clip_bytes(scope: Scope, built: dict[str, Extractor]) -> dict[str, int]:
    config = scope.config
    seconds = config.dataset.clip_seconds
    if config.dataset.source == "local" and config.download.local_files != "copy":
        raw = 0  # a link to the user's own file
    elif config.download.mode == "full" or config.dataset.source == "local":
        raw = RAW_BYTES_PER_S * FULL_VIDEO_S
    else:
        raw = RAW_BYTES_PER_S * (seconds + 2 * config.download.pad_s)
    audio = audio_recipe(config.cut.audio_recipe)
    rate = audio.sample_rate or NATIVE_AUDIO_RATE
    wav = int(rate * seconds * 2 * (1 if audio.mono else NATIVE_CHANNELS)) + 44
    frames = frames_recipe(config.cut.frames_recipe)
    quality = config.cut.jpeg_quality if config.cut.jpeg_quality is not None else frames.jpeg_quality
    per_pixel = JPEG_BYTES_PER_PIXEL["q2" if quality is not None and quality <= 2 else "default"]
    jpegs = int(frames.per_second * seconds * _pixels(config.cut.scale) * per_pixel)
    item = 2 if config.extract.store_dtype == "float16" else 4
    features = sum(math.prod(ext.output_shape()) * item for ext in built.values())
    return {"download": int(raw), "cut": wav + jpegs, "extract": features}


def clip_count(scope: Scope) -> int | None:
    """Rows of the manifest (from its footer, no table read), else the config's limit."""
    path = Workdir(scope.workdir).manifest
    if path.is_file():
        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except (OSError, ValueError):
            return None  # `avel run` reports the unreadable manifest itself
    return scope.config.dataset.limit


def _pixels(scale: str | None) -> float:
    """Frame pixels after ffmpeg's `scale=W:H` (one side -1/-2 keeps 16:9), else the source's."""
    if not scale:
        return SOURCE_PIXELS
    match = re.fullmatch(r"\s*(-?\d+)\s*:\s*(-?\d+)\s*", scale)
    if match is None:
        return SOURCE_PIXELS
    width, height = int(match[1]), int(match[2])
    if width > 0 and height > 0:
        return width * height
    if height > 0:
        return height * height * 16 / 9
    if width > 0:
        return width * width * 9 / 16
    return SOURCE_PIXELS


def _free_bytes(workdir: Path) -> int:
    existing = workdir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def _free(workdir: Path) -> str:
    return _size(_free_bytes(workdir))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
