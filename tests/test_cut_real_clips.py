"""The cut recipes on real files from tests/data/real: the LLP clip's official 8 fps frames and
moviepy audio, and the VGGSound wav."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from pipeline.cut.audio import cut_audio
from pipeline.cut.frames import cut_frames
from pipeline.cut.recipes import audio_recipe, frames_recipe

LLP_FPS = 29.92


@pytest.fixture(scope="module")
def llp_clip(shared_data):
    return shared_data / "llp" / "BjCEufrlXm4.mp4"


@pytest.fixture(scope="module")
def llp_frames(llp_clip):
    return cut_frames(llp_clip, frames_recipe("llp-8fps"), seek_s=0.0, duration_s=None,
                      clip_seconds=10, native_fps=LLP_FPS)


def _rgb(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_llp_8fps_decodes_82_and_keeps_80(llp_frames):
    assert llp_frames.decoded == 82  # the official frame folder holds 82 jpgs
    assert len(llp_frames.jpegs) == 80
    assert llp_frames.times[0] == 0.0 and llp_frames.times[-1] == 81 / 8


def test_llp_selected_frames_match_the_official_jpegs(shared_data, llp_frames):
    refs = sorted((shared_data / "llp" / "reference_frames_BjCEufrlXm4").glob("*.jpg"))
    assert len(refs) == 82
    # AVVP-ECCV20's own selection over the sorted jpgs, written out here
    picks = [int(round(k * 81 / 79)) for k in range(80)]
    values = [psnr(_rgb(refs[i].read_bytes()), _rgb(jpeg)) for i, jpeg in zip(picks, llp_frames.jpegs)]
    assert min(values) >= 35.0, f"min PSNR {min(values):.2f} dB"
    # a frame from elsewhere in the clip does not pass, so the check can tell frames apart
    assert psnr(_rgb(refs[40].read_bytes()), _rgb(llp_frames.jpegs[0])) < 35.0


def test_llp_pipe_bytes_equal_the_original_command(tmp_path, llp_clip, llp_frames):
    # the official script: ffmpeg -i video -y -r 8 frame/<id>/%06d.jpg
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(llp_clip), "-y", "-r", "8",
                    str(tmp_path / "%06d.jpg")], check=True)
    written = sorted(tmp_path.glob("*.jpg"))
    assert len(written) == 82
    picks = np.round(np.linspace(0, 81, 80)).astype(int)
    assert [written[i].read_bytes() for i in picks] == llp_frames.jpegs
    assert llp_frames.all_jpegs == [p.read_bytes() for p in written]


def test_ave_vgg19_gives_16_frames_inside_each_second(llp_clip):
    frames = cut_frames(llp_clip, frames_recipe("ave-vgg19"), seek_s=0.0, duration_s=None,
                        clip_seconds=10, native_fps=LLP_FPS)
    assert frames.decoded == 300 and len(frames.jpegs) == 160
    seconds = np.floor(frames.times).astype(int)
    assert seconds.tolist() == [s for s in range(10) for _ in range(16)]


def test_llp_audio_default_recipe_is_160000_mono_16k(llp_clip):
    audio = cut_audio(llp_clip, audio_recipe("vggsound"), seek_s=0.0, duration_s=None,
                      clip_duration_s=10.0, native_rate=44100, native_channels=2)
    assert audio.samples.shape == (160000,) and audio.samples.dtype == np.int16
    assert audio.sample_rate == 16000
    # the 10.03 s file gives more than 10 s: the tail is trimmed, nothing padded
    assert audio.padded == 0 and audio.trimmed == audio.decoded - 160000 > 0
    assert np.abs(audio.samples).max() > 1000  # real sound, not silence


def test_vggsound_wav_round_trips_bit_exactly(shared_data):
    wav = shared_data / "vggsound" / "FwVYUHKoLtQ_000034.wav"
    original, rate = sf.read(wav, dtype="int16")
    assert rate == 16000 and original.ndim == 1
    audio = cut_audio(wav, audio_recipe("vggsound"), seek_s=0.0, duration_s=None,
                      clip_duration_s=10.0, native_rate=16000, native_channels=1)
    assert np.array_equal(audio.samples, original[:160000])
    assert audio.trimmed == len(original) - 160000 and audio.padded == 0


def test_llp_recipe_matches_moviepy_write_audiofile(tmp_path, llp_clip):
    # the reference is moviepy itself, run the way AVVP-ECCV20's extract_audio.py runs it
    from moviepy import VideoFileClip

    video = VideoFileClip(str(llp_clip))
    try:
        video.audio.write_audiofile(str(tmp_path / "ref.wav"), fps=16000, logger=None)
    finally:
        video.close()
    reference, rate = sf.read(tmp_path / "ref.wav", dtype="int16")
    audio = cut_audio(llp_clip, audio_recipe("llp"), seek_s=0.0, duration_s=None,
                      clip_duration_s=10.0, native_rate=44100, native_channels=2)
    assert rate == 16000 and audio.samples.shape == (160000, 2)
    diff = np.abs(reference[:160000].astype(int) - audio.samples.astype(int))
    # moviepy re-decodes around its buffer seeks; a handful of samples differ by one LSB
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    # while a plain low-passed resample (ffmpeg -ar 16000) is visibly different
    plain = cut_audio(llp_clip, audio_recipe("vggsound"), seek_s=0.0, duration_s=None,
                      clip_duration_s=10.0, native_rate=44100, native_channels=2)
    assert (np.abs(reference[:160000, 0].astype(int) - plain.samples.astype(int)) > 1).mean() > 0.1


def test_ave_audio_recipe_keeps_native_rate_and_channels(llp_clip):
    audio = cut_audio(llp_clip, audio_recipe("ave"), seek_s=0.0, duration_s=None,
                      clip_duration_s=10.0, native_rate=44100, native_channels=2)
    assert audio.sample_rate == 44100 and audio.samples.shape == (441000, 2)


def test_real_llp_clip_through_the_stage(tmp_path, llp_clip, llp_frames):
    from pipeline.core.config import load_config
    from pipeline.core.sharding import Shard
    from pipeline.core.workdir import Workdir
    from pipeline.cut.stage import run_cut
    from pipeline.store import clips as clip_store
    from tests.fixtures_cut import make_workdir

    wd = make_workdir(tmp_path, [("BjCEufrlXm4", llp_clip, 0.0, 10.0)],
                      {"audio_recipe": "llp", "frames_recipe": "llp-8fps"})
    summary = run_cut(wd, load_config(wd), Shard(0, 1), progress=False)
    assert summary.done == 1, summary
    media = clip_store.read_clip(Workdir(wd).clips_file(Shard(0, 1)), "BjCEufrlXm4")
    # the single audio+frames ffmpeg call gives the same JPEG bytes as the frames-only call
    assert media.attrs["decoded_frames"] == 82 and media.frames == llp_frames.jpegs
    assert media.audio.shape == (160000, 2) and media.sample_rate == 16000
    assert media.attrs["notes"] == "[]"


def _without_comment(jpeg: bytes) -> bytes:
    """Drop the COM segment (FF FE), where libavcodec writes its version, e.g. Lavc58.91.100."""
    start = jpeg.find(b"\xff\xfe")
    length = int.from_bytes(jpeg[start + 2:start + 4], "big")
    return jpeg[:start] + jpeg[start + 2 + length:]


def test_llp_frames_equal_the_official_bytes_but_for_the_encoder_tag(shared_data, llp_frames):
    refs = sorted((shared_data / "llp" / "reference_frames_BjCEufrlXm4").glob("*.jpg"))
    assert b"Lavc58" in refs[0].read_bytes()  # made by an older ffmpeg than ours
    assert [_without_comment(p.read_bytes()) for p in refs] == [
        _without_comment(j) for j in llp_frames.all_jpegs]
