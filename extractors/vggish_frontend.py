"""VGGish audio frontend: waveform → 96×64 log-mel examples, exactly as the AudioSet release.

Two implementations of the same formulas: a float64 numpy path that follows the release's
`mel_features` step by step (the reference the public `waveform_to_examples` returns), and a
batched torch path (`LogMel`) that runs on any device for the extractor. Both share the
constants below, and the tests pin them against an independent reimplementation.

Segmenting recipes (which seconds an example covers):
- `whole-clip`: frame the whole waveform once, examples every 0.96 s, incomplete tail
  dropped. Example k starts at 0.96·k s, so it drifts from the 1-s grid (example 9 starts at
  8.64 s). The AudioSet release, video_features, and thus LLP and VGGSound(-AVEL)/CPSP
  features made with those tools, use this.
- `ave`: cut the waveform (at its native rate) into 1-s slices and frame each on its own →
  exactly one example per second (98 frames, the last 2 dropped). The AVE feature scripts
  do this; a second without a complete slice gives no example (its feature stays zero).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Recipe = Literal["whole-clip", "ave"]
RECIPES: tuple[str, ...] = ("whole-clip", "ave")

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
FFT = 512  # next power of two above the window
MEL_BANDS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames
EXAMPLE_HOP_FRAMES = 96
#: samples one example needs: 95 hops + one window (15,600 at 16 kHz)
EXAMPLE_SAMPLES = (EXAMPLE_FRAMES - 1) * HOP + WINDOW
#: samples between the starts of consecutive whole-clip examples (0.96 s)
EXAMPLE_HOP_SAMPLES = EXAMPLE_HOP_FRAMES * HOP


class AudioError(ValueError):
    """Audio the frontend cannot turn into examples; `reason` is a short ledger key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# --- shared constants --------------------------------------------------------------------

def periodic_hann(length: int = WINDOW) -> np.ndarray:
    """0.5 − 0.5·cos(2πn/N): the 'periodic' Hann the release uses (not numpy's symmetric one)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi / length * np.arange(length))


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, 1127·ln(1 + f/700)."""
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """[257, 64] triangular HTK mel weights on linspace(0, 8000, 257), DC row zero, no
    area normalisation — the release's `spectrogram_to_mel_matrix` with VGGish's settings."""
    bins = FFT // 2 + 1
    bin_mel = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, bins))
    edges = np.linspace(hz_to_mel(MEL_LOW_HZ), hz_to_mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    weights = np.empty((bins, MEL_BANDS))
    for band in range(MEL_BANDS):
        lower, center, upper = edges[band:band + 3]
        rising = (bin_mel - lower) / (center - lower)
        falling = (upper - bin_mel) / (upper - center)
        weights[:, band] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


# --- input checks shared by both paths ---------------------------------------------------

def to_mono_float(data: np.ndarray) -> np.ndarray:
    """Float samples as the release's functions expect them: 1-D, or [samples, channels]
    averaged to mono. Integer input is rejected (the release divides int16 by 32768 before
    calling; we will not guess a scale for 8- or 32-bit data)."""
    data = np.asarray(data)
    if data.dtype.kind not in "f":
        raise AudioError("bad_audio_dtype",
                         f"expected float samples in [-1, 1], got {data.dtype}; divide int16 "
                         "by 32768 (or use `int_to_float`) first")
    if data.ndim == 2:
        data = data.mean(axis=1)
    elif data.ndim != 1:
        raise AudioError("bad_audio_shape", f"expected [samples] or [samples, channels], got {data.shape}")
    if data.size and not np.isfinite(data).all():
        bad = int(np.flatnonzero(~np.isfinite(data))[0])
        raise AudioError("audio_not_finite", f"sample {bad} is {data[bad]}")
    return data.astype(np.float64, copy=False)


def int_to_float(data: np.ndarray) -> np.ndarray:
    """Integer PCM → float in [-1, 1] by the type's full scale (int16 / 32768, like the release's
    wav reader; uint8 PCM is offset-binary, centred on 128)."""
    data = np.asarray(data)
    if data.dtype.kind == "f":
        return data
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    if data.dtype.kind != "i":
        raise AudioError("bad_audio_dtype", f"cannot scale {data.dtype} samples")
    return data.astype(np.float64) / float(-np.iinfo(data.dtype).min)


def check_rate(sample_rate: int) -> int:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError("bad_sample_rate", f"sample rate {sample_rate!r} (need a positive integer)")
    return int(sample_rate)


def resample(data: np.ndarray, sample_rate: int) -> np.ndarray:
    """To 16 kHz with resampy's default `kaiser_best` filter, as the release does."""
    check_rate(sample_rate)
    if sample_rate == SAMPLE_RATE:
        return data
    import resampy

    return resampy.resample(data, sample_rate, SAMPLE_RATE, filter="kaiser_best")


# --- float64 reference path --------------------------------------------------------------

def _frame(data: np.ndarray, length: int, hop: int) -> np.ndarray:
    count = 1 + (data.shape[0] - length) // hop if data.shape[0] >= length else 0
    if count == 0:
        return np.zeros((0, length) + data.shape[1:], dtype=data.dtype)
    index = np.arange(length)[None, :] + hop * np.arange(count)[:, None]
    return data[index]


def log_mel_reference(samples: np.ndarray) -> np.ndarray:
    """16 kHz mono float64 → [frames, 64] log-mel, following the release's formulas."""
    frames = _frame(samples, WINDOW, HOP) * periodic_hann()
    magnitude = np.abs(np.fft.rfft(frames, FFT))
    return np.log(magnitude @ mel_matrix() + LOG_OFFSET)


def _examples_from_16k(samples: np.ndarray) -> np.ndarray:
    return _frame(log_mel_reference(samples), EXAMPLE_FRAMES, EXAMPLE_HOP_FRAMES).reshape(
        -1, EXAMPLE_FRAMES, MEL_BANDS)


def waveform_to_examples(data: np.ndarray, sample_rate: int,
                         recipe: Recipe = "whole-clip") -> np.ndarray:
    """Float samples in [-1, 1] (1-D or [samples, channels]) → float64 [N, 96, 64] examples.

    `whole-clip` gives what the release's function of this name gives (N = 0 when shorter
    than one example, 0.975 s). `ave` gives one example per complete 1-s slice of the input
    at its own rate, each slice resampled and framed alone, as the AVE scripts did; an
    incomplete last second gives none.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown VGGish recipe {recipe!r}; choose one of {RECIPES}")
    sample_rate = check_rate(sample_rate)
    mono = to_mono_float(data)
    if recipe == "whole-clip":
        return _examples_from_16k(resample(mono, sample_rate))
    examples = [_examples_from_16k(resample(mono[s * sample_rate:(s + 1) * sample_rate], sample_rate))
                for s in range(mono.shape[0] // sample_rate)]
    return np.concatenate(examples) if examples else np.zeros((0, EXAMPLE_FRAMES, MEL_BANDS))


# --- per-example waveform chunks (what the extractor hands to the device) ----------------

def example_chunks(data: np.ndarray, sample_rate: int, recipe: Recipe,
                   seconds: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The 15,600 16-kHz samples each of `seconds` examples is computed from, plus a mask of
    which examples exist.

    Framing a chunk alone gives exactly the frames the whole-waveform framing gives for that
    example, so the device can compute log-mel per chunk in one batched call. Returns
    (float64 [seconds, 15600], bool [seconds]). `whole-clip` keeps the first `seconds`
    examples; `ave` has a missing (False) slot for every second without a complete slice.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown VGGish recipe {recipe!r}; choose one of {RECIPES}")
    sample_rate = check_rate(sample_rate)
    mono = to_mono_float(data)
    chunks = np.zeros((seconds, EXAMPLE_SAMPLES))
    present = np.zeros(seconds, dtype=bool)
    if recipe == "whole-clip":
        wave = resample(mono, sample_rate)
        count = min(seconds, max(0, 1 + (wave.shape[0] - EXAMPLE_SAMPLES) // EXAMPLE_HOP_SAMPLES)
                    if wave.shape[0] >= EXAMPLE_SAMPLES else 0)
        for k in range(count):
            start = k * EXAMPLE_HOP_SAMPLES
            chunks[k] = wave[start:start + EXAMPLE_SAMPLES]
            present[k] = True
        return chunks, present
    for second in range(min(seconds, mono.shape[0] // sample_rate)):
        piece = resample(mono[second * sample_rate:(second + 1) * sample_rate], sample_rate)
        if piece.shape[0] >= EXAMPLE_SAMPLES:
            chunks[second] = piece[:EXAMPLE_SAMPLES]
            present[second] = True
    return chunks, present


# --- batched torch path ------------------------------------------------------------------

class LogMel(torch.nn.Module):
    """Batched log-mel: [B, samples] at 16 kHz → [B, frames, 64], on the module's device.

    Same formulas as `log_mel_reference`; run it in float64 to match the reference to ~1e-12,
    or float32 for speed (the extractor always runs it in at least float32, whatever the
    network's precision, since log of small mel energies is sensitive).
    """

    window: torch.Tensor
    mel: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.from_numpy(periodic_hann()), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_matrix()), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = wave.unfold(-1, WINDOW, HOP) * self.window.to(wave.dtype)
        magnitude = torch.fft.rfft(frames, n=FFT).abs()
        return torch.log(magnitude @ self.mel.to(wave.dtype) + LOG_OFFSET)


def examples_torch(wave: torch.Tensor, log_mel: LogMel | None = None) -> torch.Tensor:
    """[B, samples] 16 kHz → [B, N, 96, 64] whole-clip examples with the torch path."""
    mel = (log_mel or LogMel().to(wave.device))(wave)
    count = mel.shape[-2] // EXAMPLE_FRAMES if mel.shape[-2] >= EXAMPLE_FRAMES else 0
    return mel[..., :count * EXAMPLE_FRAMES, :].reshape(*mel.shape[:-2], count, EXAMPLE_FRAMES, MEL_BANDS)


def example_start_seconds(recipe: Recipe, count: int) -> list[float]:
    """Where each example starts in the clip, in seconds (recorded so users see the drift)."""
    step = 1.0 if recipe == "ave" else EXAMPLE_HOP_SAMPLES / SAMPLE_RATE
    return [round(k * step, 6) for k in range(count)]

