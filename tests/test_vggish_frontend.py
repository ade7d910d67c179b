"""VGGish frontend against an independent float64 numpy rewrite of the release's formulas.

The reference below is written from the published description (spec §1), loop by loop, and
shares no code with extractors/vggish_frontend.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import resampy
import soundfile as sf
import torch

from extractors import vggish
from extractors.vggish_frontend import LogMel, example_chunks, log_mel_reference


def _reference_log_mel(wave16k: np.ndarray) -> np.ndarray:
    n_frames = 1 + (len(wave16k) - 400) // 160
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)  # periodic Hann
    frames = np.stack([wave16k[i * 160:i * 160 + 400] for i in range(n_frames)]) * window
    spec = np.abs(np.fft.rfft(frames, n=512))  # magnitude, 257 bins

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    bin_hz = np.linspace(0, 8000, 257)
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    matrix = np.zeros((257, 64))
    for b in range(64):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        for k in range(1, 257):  # DC bin keeps weight 0
            m = mel(bin_hz[k])
            if lo < m <= mid:
                matrix[k, b] = (m - lo) / (mid - lo)
            elif mid < m < hi:
                matrix[k, b] = (hi - m) / (hi - mid)
    return np.log(spec @ matrix + 0.01)


def _reference_examples(wave16k: np.ndarray) -> np.ndarray:
    log_mel = _reference_log_mel(wave16k)
    count = len(log_mel) // 96
    return np.stack([log_mel[96 * k:96 * k + 96] for k in range(count)])


@pytest.fixture(scope="module")
def vggsound_wave(shared_data) -> tuple[np.ndarray, int]:
    data, rate = sf.read(shared_data / "vggsound" / "FwVYUHKoLtQ_000034.wav", dtype="int16")
    return data.astype(np.float64) / 32768.0, rate


@pytest.fixture(scope="module")
def stereo_44k() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(int(44100 * 3.3)) / 44100
    left = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 1234 * t * (1 + t / 10))
    return np.stack([left, right], axis=1)


def test_real_wav_matches_reference(vggsound_wave):
    wave, rate = vggsound_wave
    assert rate == 16000 and len(wave) == 160029
    ours = vggish.waveform_to_examples(wave, rate)
    ref = _reference_examples(wave)
    assert ours.dtype == np.float64 and ours.shape == (10, 96, 64) == ref.shape
    assert np.abs(ours - ref).max() <= 1e-6


def test_generated_44k_stereo_matches_reference(stereo_44k):
    ours = vggish.waveform_to_examples(stereo_44k, 44100)
    mono16k = resampy.resample(stereo_44k.mean(axis=1), 44100, 16000, filter="kaiser_best")
    ref = _reference_examples(mono16k)
    assert ours.shape == ref.shape == (3, 96, 64)
    assert np.abs(ours - ref).max() <= 1e-6


def test_torch_path_float64_equals_reference_and_float32_is_close(vggsound_wave):
    wave, _ = vggsound_wave
    ref = _reference_log_mel(wave)
    batch = torch.from_numpy(np.stack([wave, wave[::-1].copy()]))
    ours64 = LogMel()(batch).numpy()
    assert np.abs(ours64[0] - ref).max() <= 1e-6
    assert np.abs(ours64[1] - _reference_log_mel(wave[::-1].copy())).max() <= 1e-6
    ours32 = LogMel()(batch.float()).double().numpy()
    assert np.abs(ours32[0] - ref).max() <= 1e-3


def test_whole_clip_example_9_starts_at_8_64_s(vggsound_wave):
    wave, _ = vggsound_wave
    examples = vggish.waveform_to_examples(wave, 16000, recipe="whole-clip")
    start = int(8.64 * 16000)  # 9 examples × 96 frames × 160 samples = 138,240
    alone = _reference_log_mel(wave[start:start + 15600])
    assert alone.shape == (96, 64)
    assert np.abs(examples[9] - alone).max() <= 1e-6
    # and it is NOT the example framed at the 9-s mark: whole-clip drifts from the 1-s grid
    at_9s = _reference_log_mel(wave[9 * 16000:9 * 16000 + 15600])
    assert np.abs(examples[9] - at_9s).max() > 0.1


def test_ave_recipe_frames_each_second_alone(stereo_44k):
    examples = vggish.waveform_to_examples(stereo_44k, 44100, recipe="ave")
    assert examples.shape == (3, 96, 64)  # 3.3 s → three complete seconds, tail second dropped
    mono = stereo_44k.mean(axis=1)
    for second in range(3):
        piece = resampy.resample(mono[second * 44100:(second + 1) * 44100], 44100, 16000)
        assert len(piece) == 16000
        ref = _reference_log_mel(piece)
        assert ref.shape == (98, 64)  # the last two frames are dropped by the 96-frame example
        assert np.abs(examples[second] - ref[:96]).max() <= 1e-6


def test_example_counts_at_boundaries():
    # one example needs 95 hops + one window = 15,600 samples; each further one 15,360 more
    for samples, expected in [(15599, 0), (15600, 1), (30959, 1), (30960, 2), (160000, 10)]:
        assert vggish.waveform_to_examples(np.zeros(samples), 16000).shape[0] == expected


def test_chunks_give_same_examples_as_whole_framing(vggsound_wave):
    wave, _ = vggsound_wave
    chunks, present = example_chunks(wave, 16000, "whole-clip")
    assert present.all() and chunks.shape == (10, 15600)
    per_chunk = np.stack([log_mel_reference(c) for c in chunks])
    assert np.abs(per_chunk - _reference_examples(wave)).max() <= 1e-6


def test_ave_chunks_mark_missing_seconds():
    chunks, present = example_chunks(np.zeros(16000 * 7 + 15000), 16000, "ave")
    assert present.tolist() == [True] * 7 + [False] * 3


@pytest.mark.parametrize("data, rate, expect", [
    (np.zeros(0), 16000, "shape0"),
    (np.zeros(1000), 16000, "shape0"),
    (np.array([0.0, np.nan] * 10000), 16000, "audio_not_finite"),
    (np.array([0.0, np.inf] * 10000), 16000, "audio_not_finite"),
    (np.zeros(20000, dtype=np.uint8), 16000, "bad_audio_dtype"),
    (np.zeros(20000, dtype=np.int16), 16000, "bad_audio_dtype"),
    (np.zeros((20000, 2, 2)), 16000, "bad_audio_shape"),
    (np.zeros(20000), 0, "bad_sample_rate"),
])
def test_bad_audio_gives_named_error_or_no_examples(data, rate, expect):
    from extractors.vggish_frontend import AudioError

    if expect == "shape0":  # documented: shorter than one example → no examples
        assert vggish.waveform_to_examples(data, rate).shape == (0, 96, 64)
        return
    with pytest.raises(AudioError) as info:
        vggish.waveform_to_examples(data, rate)
    assert info.value.reason == expect


def test_96k_six_channels_is_resampled_and_averaged():
    rng = np.random.default_rng(1)
    data = rng.uniform(-0.5, 0.5, size=(96000 * 2, 6))
    ours = vggish.waveform_to_examples(data, 96000)
    ref = _reference_examples(resampy.resample(data.mean(axis=1), 96000, 16000))
    assert ours.shape == (2, 96, 64) and np.abs(ours - ref).max() <= 1e-6
