"""Frames of one clip: ffmpeg encodes the recipe's frames as JPEG onto a pipe, the stream
is split into images here, and the recipe's selection picks the kept ones.

Piping `image2pipe` gives exactly the bytes `ffmpeg ... %06d.jpg` would write (same
encoder, same options), without touching the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from pipeline.cut.ffmpeg_pipes import DecodeError, clip_input, compile_args, run
from pipeline.cut.recipes import FramesRecipe, select


@dataclass
class Frames:
    jpegs: list[bytes]  # the selected frames, in order
    times: np.ndarray  # seconds from the clip start, one per selected frame
    decoded: int  # how many frames ffmpeg produced before selection
    args: list[str]  # the exact ffmpeg argument list
    all_jpegs: list[bytes]  # every decoded frame (the loose layout the originals wrote)


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


def frames_output(source, recipe: FramesRecipe, target: str, *, jpeg_quality: int | None,
                  scale: str | None):  # -> ffmpeg-python output node
    """The recipe's JPEG output of `source` (an ffmpeg-python input) onto pipe `target`."""
    video = source.video
    if scale:
        video = video.filter("scale", *scale.split(":"))
    opts: dict[str, object] = {"format": "image2pipe", "vcodec": "mjpeg"}
    if recipe.rate is None:
        opts["fps_mode"] = "passthrough"
    else:
        opts["r"] = _num(recipe.rate)
    if jpeg_quality is not None:
        opts["q:v"] = jpeg_quality
    return ffmpeg.output(video, target, **opts)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def finish_frames(stream: bytes, recipe: FramesRecipe, *, clip_seconds: int, native_fps: float,
                  args: list[str]) -> Frames:
    """Split ffmpeg's JPEG stream and apply the recipe's selection."""
    jpegs = split_jpegs(stream)
    if not jpegs:
        raise DecodeError("ffmpeg produced no frames")
    keep = select(recipe, len(jpegs), clip_seconds)
    rate = recipe.rate or native_fps or (len(jpegs) / max(clip_seconds, 1))
    return Frames([jpegs[i] for i in keep], keep.astype(np.float64) / rate, len(jpegs), args,
                  jpegs)


def cut_frames(path: str | Path, recipe: FramesRecipe, *, seek_s: float, duration_s: float | None,
               clip_seconds: int, native_fps: float, jpeg_quality: int | None = None,
               scale: str | None = None, timeout_s: float = 600.0) -> Frames:
    """Frames only, in their own ffmpeg call (the stage decodes audio and frames together)."""
    args = compile_args(frames_output(clip_input(path, seek_s, duration_s), recipe, "pipe:3",
                                      jpeg_quality=jpeg_quality, scale=scale))
    _, stream = run(args, timeout_s)
    return finish_frames(stream, recipe, clip_seconds=clip_seconds, native_fps=native_fps,
                         args=args)
