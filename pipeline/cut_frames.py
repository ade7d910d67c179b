"""Frames of one clip: one ffmpeg call encodes the recipe's frames as JPEG onto a pipe,
the stream is split into images here, and the recipe's selection picks the kept ones.

Piping `image2pipe` gives exactly the bytes `ffmpeg ... %06d.jpg` would write (same
encoder, same options), without touching the disk.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from pipeline.cut_recipes import FramesRecipe, select


@dataclass
class Frames:
    jpegs: list[bytes]  # the selected frames, in order
    times: np.ndarray  # seconds from the clip start, one per selected frame
    decoded: int  # how many frames ffmpeg produced before selection
    args: list[str]  # the exact ffmpeg argument list
    all_jpegs: list[bytes]  # every decoded frame (the loose layout the originals wrote)


class DecodeError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def split_jpegs(stream: bytes) -> list[bytes]:
    """Split concatenated baseline/progressive JPEGs by walking their marker segments.

    Entropy-coded data never holds a bare 0xFF followed by a marker other than RSTn
    (0xFF bytes are stuffed as FF 00), so the first FF D9 after the scan ends the image.
    """
    out: list[bytes] = []
    pos, n = 0, len(stream)
    while pos < n:
        if stream[pos:pos + 2] != b"\xff\xd8":
            raise DecodeError(f"JPEG stream out of sync at byte {pos}")
        i = pos + 2
        while True:
            if i + 4 > n:
                raise DecodeError("JPEG stream ends inside a header")
            if stream[i] != 0xFF:
                raise DecodeError(f"JPEG marker expected at byte {i}")
            marker = stream[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            length = int.from_bytes(stream[i + 2:i + 4], "big")
            i += 2 + length
            if marker == 0xDA:  # start of scan: entropy data follows
                while True:
                    j = stream.find(b"\xff", i)
                    if j < 0 or j + 1 >= n:
                        raise DecodeError("JPEG stream ends inside a scan")
                    nxt = stream[j + 1]
                    if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                        i = j + 2
                        continue
                    i = j
                    break
                if stream[i + 1] == 0xD9:
                    i += 2
                    break
                # another marker (progressive JPEG: more tables and scans follow)
        out.append(stream[pos:i])
        pos = i
    return out


def frames_args(path: str | Path, recipe: FramesRecipe, *, seek_s: float, duration_s: float | None,
                jpeg_quality: int | None, scale: str | None) -> list[str]:
    """ffmpeg arguments for the recipe; seek/duration only when the clip is not the whole file."""
    in_opts: dict[str, object] = {}
    if seek_s > 0:
        in_opts["ss"] = f"{seek_s:.6f}"
    if duration_s is not None:
        in_opts["t"] = f"{duration_s:.6f}"
    video = ffmpeg.input(str(path), **in_opts).video
    if scale:
        video = video.filter("scale", *scale.split(":"))
    out_opts: dict[str, object] = {"format": "image2pipe", "vcodec": "mjpeg"}
    if recipe.rate is None:
        out_opts["fps_mode"] = "passthrough"
    else:
        out_opts["r"] = _num(recipe.rate)
    if jpeg_quality is not None:
        out_opts["q:v"] = jpeg_quality
    stream = ffmpeg.output(video, "pipe:", **out_opts).global_args("-nostdin", "-hide_banner",
                                                                    "-loglevel", "error")
    return ffmpeg.compile(stream, cmd="ffmpeg")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def cut_frames(path: str | Path, recipe: FramesRecipe, *, seek_s: float, duration_s: float | None,
               clip_seconds: int, native_fps: float, jpeg_quality: int | None = None,
               scale: str | None = None, timeout_s: float = 600.0) -> Frames:
    """Decode, encode and select the clip's frames; raise DecodeError on ffmpeg failure."""
    args = frames_args(path, recipe, seek_s=seek_s, duration_s=duration_s,
                       jpeg_quality=jpeg_quality, scale=scale)
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DecodeError(f"ffmpeg took over {timeout_s} s") from None
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DecodeError(message[-1] if message else f"ffmpeg exit {proc.returncode}")
    jpegs = split_jpegs(proc.stdout)
    if not jpegs:
        raise DecodeError("ffmpeg produced no frames")
    keep = select(recipe, len(jpegs), clip_seconds)
    rate = recipe.rate or native_fps or (len(jpegs) / max(clip_seconds, 1))
    return Frames([jpegs[i] for i in keep], keep.astype(np.float64) / rate, len(jpegs), args,
                  jpegs)
