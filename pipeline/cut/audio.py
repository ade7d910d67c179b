"""Audio of one clip: ffmpeg decodes the span to signed 16-bit PCM on a pipe,
then the recipe's own quirks (LLP's moviepy resampling) and the exact-length rule apply.

The exact length is `round(duration * rate)` samples (160000 for 10 s at 16 kHz): shorter
decodes are zero-padded at the end, longer ones trimmed, and both counts are returned so
the clip records which happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.cut.ffmpeg_pipes import clip_input, compile_args, run
from pipeline.cut.recipes import MOVIEPY_CLIP, MOVIEPY_READ_RATE, AudioRecipe


@dataclass
class Audio:
    samples: np.ndarray  # int16 [n] (mono) or [n, channels]
    sample_rate: int
    padded: int  # zero samples appended
    trimmed: int  # samples cut off the end
    decoded: int  # samples the recipe produced before padding / trimming
    args: list[str]


def audio_output(source, recipe: AudioRecipe, target: str, *, native_rate: int,
                 native_channels: int):  # -> ffmpeg-python output node
    """The recipe's s16le output of `source` (an ffmpeg-python input) onto pipe `target`."""
    rate = MOVIEPY_READ_RATE if recipe.moviepy_pick else (recipe.sample_rate or native_rate)
    return source.audio.output(target, format="s16le", acodec="pcm_s16le",
                               ac=_channels(recipe, native_channels), ar=rate)


def _channels(recipe: AudioRecipe, native_channels: int) -> int:
    return 1 if recipe.mono else max(native_channels, 1)


def moviepy_pick(source: np.ndarray, source_rate: int, rate: int, n_out: int) -> np.ndarray:
    """moviepy's resampling: output sample k is source sample round(source_rate * k / rate)
    (zero past the end), computed with moviepy's float steps; the float signal x/32768 is
    clipped to +-0.99 and multiplied by 32768 with truncation, which on int16 input is
    clipping to +-32440."""
    times = (1.0 / rate) * np.arange(n_out)  # moviepy's exact float steps decide the .5 ties
    index = np.round(source_rate * times).astype(int)
    out = np.zeros((n_out,) + source.shape[1:], dtype=np.int16)
    inside = index < len(source)
    out[inside] = source[index[inside]]
    limit = int(MOVIEPY_CLIP * 32768)
    return np.clip(out, -limit, limit).astype(np.int16)


def finish_audio(pcm: bytes, recipe: AudioRecipe, *, clip_duration_s: float, native_rate: int,
                 native_channels: int, args: list[str]) -> Audio:
    """Apply the recipe's resampling quirk and the exact-length rule to ffmpeg's PCM."""
    rate = recipe.sample_rate or native_rate
    channels = _channels(recipe, native_channels)
    data = np.frombuffer(pcm, dtype="<i2")
    data = data[: len(data) // channels * channels].reshape(-1, channels)
    if recipe.moviepy_pick:
        data = moviepy_pick(data, MOVIEPY_READ_RATE, rate, int(rate * len(data) / MOVIEPY_READ_RATE))
    decoded = len(data)
    want = int(round(clip_duration_s * rate))
    padded, trimmed = max(want - decoded, 0), max(decoded - want, 0)
    if trimmed:
        data = data[:want]
    if padded:
        data = np.concatenate([data, np.zeros((padded, channels), dtype=np.int16)])
    samples = data[:, 0].copy() if recipe.mono else np.ascontiguousarray(data)
    return Audio(samples.astype(np.int16), rate, padded, trimmed, decoded, args)


def cut_audio(path: str | Path, recipe: AudioRecipe, *, seek_s: float, duration_s: float | None,
              clip_duration_s: float, native_rate: int, native_channels: int,
              timeout_s: float = 600.0) -> Audio:
    """Audio only, in its own ffmpeg call (the stage decodes audio and frames together)."""
    args = compile_args(audio_output(clip_input(path, seek_s, duration_s), recipe, "pipe:1",
                                     native_rate=native_rate, native_channels=native_channels))
    pcm, _ = run(args, timeout_s)
    return finish_audio(pcm, recipe, clip_duration_s=clip_duration_s, native_rate=native_rate,
                        native_channels=native_channels, args=args)
