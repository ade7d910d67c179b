"""The cut recipes as data: which ffmpeg output options and which frame selection each
original project used, so a recipe name in the config fully determines the bytes we store.

Audio recipes (sources in shared/specs/extraction.md):
  vggsound  `ffmpeg -i clip -acodec pcm_s16le -ac 1 -ar 16000 out.wav` (VGGSound README).
  llp       moviepy `audio.write_audiofile(wav, fps=16000)` (AVVP-ECCV20 extract_audio.py):
            ffmpeg decodes to 44.1 kHz s16 keeping channels, moviepy picks sample
            round(44100 * k / 16000) for output sample k (no low-pass) and clips to +-0.99.
  ave       the AVE scripts read the wav at its native rate: native rate, channels kept.
Frame recipes:
  llp-8fps  `ffmpeg -i video -y -r 8 %06d.jpg`, then the 80 frames
            round(linspace(0, n - 1, 80)) of the n decoded (AVVP-ECCV20 extract_rgb_feat.py).
  ave-vgg19 every native frame decoded; with n frames and step = int(n / 10), frame
            int(s * step + i / 16 * step) for second s in 0..9 and i in 0..15 (AVE-ECCV18,
            video_frame_sample): 16 frames per 1 s segment.
  uniform-N N frames per second (`-r N`), the first N x seconds kept (ffmpeg's `-r` adds a
            frame or two after the last second, as the 82 frames of the LLP sample show).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioRecipe:
    name: str
    sample_rate: int | None  # None: the file's own rate
    mono: bool
    moviepy_pick: bool  # LLP: decode at 44.1 kHz, then moviepy's nearest-sample pick
    source: str


@dataclass(frozen=True)
class FramesRecipe:
    name: str
    rate: float | None  # ffmpeg output `-r`; None: every decoded frame (passthrough)
    selection: str  # "first" | "llp-80" | "ave-16"
    per_second: int  # frames kept per second of clip (for checks and docs)
    source: str
    # ffmpeg -q:v when the config sets none; None: ffmpeg's default (bitrate-driven, so a
    # frame's bytes depend on the frames encoded before it)
    jpeg_quality: int | None = None


AUDIO_RECIPES = {
    "vggsound": AudioRecipe("vggsound", 16000, True, False,
                            "VGGSound: ffmpeg -acodec pcm_s16le -ac 1 -ar 16000"),
    "llp": AudioRecipe("llp", 16000, False, True,
                       "AVVP-ECCV20: moviepy write_audiofile(fps=16000), channels kept"),
    "ave": AudioRecipe("ave", None, False, False,
                       "AVE-ECCV18 scripts: wav read at its native rate, channels kept"),
}

MOVIEPY_READ_RATE = 44100  # moviepy's VideoFileClip audio_fps default
MOVIEPY_CLIP = 0.99  # moviepy quantize clips the float signal to +-0.99 before int16


def audio_recipe(name: str) -> AudioRecipe:
    try:
        return AUDIO_RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown audio recipe {name!r}; known: {', '.join(AUDIO_RECIPES)}") from None


def frames_recipe(name: str) -> FramesRecipe:
    if name == "llp-8fps":
        return FramesRecipe(name, 8.0, "llp-80", 8, "AVVP-ECCV20: ffmpeg -r 8 %06d.jpg, 80 selected")
    if name == "ave-vgg19":
        # The AVE scripts fed decoded frames to VGG-19 without any JPEG, so the stored
        # JPEGs should lose as little as possible; and only the kept frames are encoded
        # (frames.py), so the quality must not depend on the encoder's history: a fixed
        # -q:v 2 (ffmpeg's finest usual mjpeg scale) gives the same bytes for a frame
        # whichever other frames are encoded.
        return FramesRecipe(name, None, "ave-16", 16, "AVE-ECCV18: 16 native frames per second",
                            jpeg_quality=2)
    match = re.fullmatch(r"uniform-(\d+)", name)
    if match and int(match.group(1)) > 0:
        n = int(match.group(1))
        return FramesRecipe(name, float(n), "first", n,
                            f"ffmpeg -r {n}, the first {n} x seconds frames kept")
    raise ValueError(f"unknown frames recipe {name!r}; known: llp-8fps, ave-vgg19, uniform-N")


def llp_selection(n_decoded: int, n_keep: int = 80) -> np.ndarray:
    """Indices AVVP-ECCV20 keeps: np.round(np.linspace(0, n - 1, 80)) (numpy's half-to-even)."""
    return np.round(np.linspace(0, n_decoded - 1, n_keep)).astype(int)


def ave_selection(n_decoded: int, seconds: int = 10, per_second: int = 16) -> np.ndarray:
    """Indices AVE-ECCV18's video_frame_sample keeps: int(s*step + i/16*step), step=int(n/10)."""
    step = int(n_decoded / seconds)
    return np.array([int(s * step + (i * 1.0 / per_second) * step)
                     for s in range(seconds) for i in range(per_second)], dtype=int)


def select(recipe: FramesRecipe, n_decoded: int, seconds: int) -> np.ndarray:
    """Which of the `n_decoded` frames the recipe keeps, in order."""
    if recipe.selection == "llp-80":
        return llp_selection(n_decoded, recipe.per_second * seconds)
    if recipe.selection == "ave-16":
        return ave_selection(n_decoded, seconds, recipe.per_second)
    # ffmpeg's -r emits a frame or two past the end (82 at 8 fps for 10 s): keep N per second
    return np.arange(min(n_decoded, recipe.per_second * seconds))
