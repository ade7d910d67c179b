"""Stereo sources through each audio recipe: the mono recipe (VGGSound) stores ffmpeg's
`-ac 1` downmix, (L + R) / 2, not one channel; the recipes that keep channels (llp, ave) keep
both, in order.

The fixture's channels differ (330 Hz left, a louder 1250 Hz right), so any one channel is
thousands of steps away from the downmix. References are independent of the cut code: a
separate plain ffmpeg run of the original command, and numpy on ffmpeg's stereo decode.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import load_config
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.cut.stage import run_cut
from pipeline.store import clips as clip_store
from tests.bad_media_corpus import AAC, X264, _video_in
from tests.fixtures_cut import make_workdir

SHARD = Shard(0, 1)
N = 160000  # 10 s at 16 kHz


def _ffmpeg(*args: str) -> bytes:
    return subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                          check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def stereo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stereo") / "stereo.mp4"
    _ffmpeg(*_video_in(10.0),
            "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=16000:duration=10",
            "-f", "lavfi", "-i", "sine=frequency=1250:sample_rate=16000:duration=10",
            "-filter_complex", "[2:a]volume=3[r];[1:a][r]join=inputs=2:channel_layout=stereo[a]",
            "-map", "0:v", "-map", "[a]", *X264, *AAC, str(path))
    return path


def _decode_stereo(path: Path, *rate: str) -> np.ndarray:
    pcm = _ffmpeg("-i", str(path), "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "2", *rate, "-")
    return np.frombuffer(pcm, "<i2").reshape(-1, 2)


def _cut(tmp_path: Path, source: Path, recipe: str) -> clip_store.ClipMedia:
    wd = make_workdir(tmp_path / recipe, [("c0", source, 0.0, 10.0)],
                      {"audio_recipe": recipe, "frames_recipe": "uniform-1"})
    summary = run_cut(wd, load_config(wd), SHARD, progress=False)
    assert summary.done == 1
    return clip_store.read_clip(Workdir(wd).clips_file(SHARD), "c0")


def test_fixture_channels_differ(stereo):
    both = _decode_stereo(stereo)
    assert np.abs(both[:, 0].astype(int) - both[:, 1]).max() > 10000


def test_vggsound_recipe_stores_the_mono_downmix_of_a_stereo_source(tmp_path, stereo):
    media = _cut(tmp_path, stereo, "vggsound")
    assert media.audio.shape == (N,) and media.sample_rate == 16000
    # the VGGSound README command, run on its own
    ref = _ffmpeg("-i", str(stereo), "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000",
                  "-f", "s16le", "-")
    np.testing.assert_array_equal(media.audio, np.frombuffer(ref, "<i2")[:N])
    # and that is the mean of the two channels (to rounding), far from either channel alone
    both = _decode_stereo(stereo)[:N].astype(np.int64)
    mean = both.sum(axis=1) / 2
    assert np.abs(media.audio - mean).max() <= 1
    for channel in (0, 1):
        assert np.abs(media.audio - both[:, channel]).max() > 5000


def test_llp_recipe_keeps_both_channels_with_moviepy_sample_picks(tmp_path, stereo):
    """moviepy decodes at 44.1 kHz keeping channels and picks sample round(44100 k / 16000)
    for output sample k, clipped to +-0.99 full scale (AVVP-ECCV20 extract_audio.py)."""
    media = _cut(tmp_path, stereo, "llp")
    assert media.audio.shape == (N, 2) and media.sample_rate == 16000
    at_44k = _decode_stereo(stereo, "-ar", "44100")
    # moviepy's times are (1.0 / fps) * arange (AudioClip.iter_chunks), and its reader rounds
    # fps_source * t: the float product, not k * 44100 / 16000, settles the .5 ties
    index = np.round(44100 * ((1.0 / 16000) * np.arange(N))).astype(int)
    expected = np.zeros((N, 2), np.int16)
    inside = index < len(at_44k)
    expected[inside] = np.clip(at_44k[index[inside]], -32440, 32440)
    np.testing.assert_array_equal(media.audio, expected)


def test_ave_recipe_keeps_both_channels_at_the_native_rate(tmp_path, stereo):
    media = _cut(tmp_path, stereo, "ave")
    assert media.audio.shape == (N, 2) and media.sample_rate == 16000
    np.testing.assert_array_equal(media.audio, _decode_stereo(stereo)[:N])
