"""Audio of one clip: one ffmpeg call decodes the span to signed 16-bit PCM on a pipe,
then the recipe's own quirks (LLP's moviepy resampling) and the exact-length rule apply.

The exact length is `round(duration * rate)` samples (160000 for 10 s at 16 kHz): shorter
decodes are zero-padded at the end, longer ones trimmed, and both counts are returned so
the clip records which happened.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from pipeline.cut_frames import DecodeError
from pipeline.cut_recipes import MOVIEPY_CLIP, MOVIEPY_READ_RATE, AudioRecipe


@dataclass
class Audio:
    samples: np.ndarray  # int16 [n] (mono) or [n, channels]
    sample_rate: int
    padded: int  # zero samples appended
    trimmed: int  # samples cut off the end
    decoded: int  # samples the recipe produced before padding / trimming
    args: list[str]


def audio_args(path: str | Path, *, seek_s: float, duration_s: float | None, rate: int,
               channels: int) -> list[str]:
    in_opts: dict[str, object] = {}
    if seek_s > 0:
        in_opts["ss"] = f"{seek_s:.6f}"
    if duration_s is not None:
        in_opts["t"] = f"{duration_s:.6f}"
    stream = ffmpeg.input(str(path), **in_opts).audio.output(
        "pipe:", format="s16le", acodec="pcm_s16le", ac=channels, ar=rate)
    return ffmpeg.compile(stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error"),
                          cmd="ffmpeg")


def moviepy_pick(source: np.ndarray, source_rate: int, rate: int, n_out: int) -> np.ndarray:
    """moviepy's resampling: output sample k is source sample round(source_rate * k / rate)
    (zero past the end), computed with moviepy's float steps; the float signal x/32768 is clipped to +-0.99 and multiplied by
    32768 with truncation, which on int16 input is clipping to +-32440."""
    times = (1.0 / rate) * np.arange(n_out)  # moviepy's exact float steps decide the .5 ties
    index = np.round(source_rate * times).astype(int)
    out = np.zeros((n_out,) + source.shape[1:], dtype=np.int16)
    inside = index < len(source)
    out[inside] = source[index[inside]]
    limit = int(MOVIEPY_CLIP * 32768)
    return np.clip(out, -limit, limit).astype(np.int16)


def cut_audio(path: str | Path, recipe: AudioRecipe, *, seek_s: float, duration_s: float | None,
              clip_duration_s: float, native_rate: int, native_channels: int,
              timeout_s: float = 600.0) -> Audio:
    rate = recipe.sample_rate or native_rate
    channels = 1 if recipe.mono else max(native_channels, 1)
    decode_rate = MOVIEPY_READ_RATE if recipe.moviepy_pick else rate
    args = audio_args(path, seek_s=seek_s, duration_s=duration_s, rate=decode_rate,
                      channels=channels)
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DecodeError(f"ffmpeg took over {timeout_s} s") from None
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DecodeError(message[-1] if message else f"ffmpeg exit {proc.returncode}")
    data = np.frombuffer(proc.stdout, dtype="<i2")
    data = data[: len(data) // channels * channels].reshape(-1, channels)
    if recipe.moviepy_pick:
        decoded_s = len(data) / decode_rate
        data = moviepy_pick(data, decode_rate, rate, int(rate * decoded_s))
    decoded = len(data)
    want = int(round(clip_duration_s * rate))
    padded, trimmed = max(want - decoded, 0), max(decoded - want, 0)
    if trimmed:
        data = data[:want]
    if padded:
        data = np.concatenate([data, np.zeros((padded, channels), dtype=np.int16)])
    samples = data[:, 0].copy() if recipe.mono else np.ascontiguousarray(data)
    return Audio(samples.astype(np.int16), rate, padded, trimmed, decoded, args)
