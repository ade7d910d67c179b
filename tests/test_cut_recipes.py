"""Cut recipes as data: the frame selections of the original scripts, the JPEG stream
splitter, and the config checks."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.config import CutConfig
from pipeline.core.config_schema import build
from pipeline.cut.frames import DecodeError, split_jpegs
from pipeline.cut.recipes import ave_selection, frames_recipe, select


def test_llp_selection_is_avvp_round_linspace_over_82_frames():
    # AVVP-ECCV20 extract_rgb_feat.py: np.round(np.linspace(0, len(image_list) - 1, 80))
    got = select(frames_recipe("llp-8fps"), 82, 10)
    assert len(got) == 80 and got[0] == 0 and got[-1] == 81
    step = 81 / 79
    expected = [int(np.round(k * step)) for k in range(80)]
    assert got.tolist() == expected
    # 82 -> 80 drops exactly two frames
    assert len(set(range(82)) - set(got.tolist())) == 2


def test_ave_selection_is_video_frame_sample_16_per_second():
    # AVE-ECCV18 video_frame_sample: int(l * fi + (i / 16) * fi), fi = int(n / 10); n = 300 (30 fps)
    got = ave_selection(300)
    assert len(got) == 160
    assert got[:16].tolist() == [0, 1, 3, 5, 7, 9, 11, 13, 15, 16, 18, 20, 22, 24, 26, 28]
    assert got[16] == 30 and got[-1] == 9 * 30 + 28
    for second in range(10):  # every pick lies inside its own 1 s segment
        chunk = got[16 * second:16 * (second + 1)]
        assert chunk.min() >= second * 30 and chunk.max() < (second + 1) * 30
    # 301 decoded frames (a 10.03 s file) still uses fi = int(301 / 10) = 30
    assert ave_selection(301).tolist() == got.tolist()


@pytest.mark.parametrize("n", [159, 299, 305])
def test_ave_frame_step_truncates_like_video_frame_sample(n):
    # AVE-ECCV18 attention_visualization.py: frame_interval = int(vid_len / t), then
    # int(l * frame_interval + (i * 1.0 / 16) * frame_interval). Where int and round differ
    # (159 → 15 not 16; 299, a 29.97 fps clip, → 29 not 30; 305 → 30 either way) the step
    # truncates.
    step = n // 10
    want = [int(s * step + (i * 1.0 / 16) * step) for s in range(10) for i in range(16)]
    assert select(frames_recipe("ave-vgg19"), n, 10).tolist() == want
    assert max(want) < n


def test_uniform_recipe_keeps_every_frame_at_its_rate():
    recipe = frames_recipe("uniform-4")
    assert recipe.rate == 4.0 and recipe.per_second == 4
    assert select(recipe, 42, 10).tolist() == list(range(40))  # `-r 4` emits 42 for 10 s
    assert select(recipe, 37, 10).tolist() == list(range(37))  # a short file keeps what it has


@pytest.mark.parametrize("name", ["uniform-0", "uniform-x", "llp", "8fps"])
def test_unknown_frames_recipe_is_refused(name):
    with pytest.raises(ValueError, match="frames recipe"):
        frames_recipe(name)


def test_split_jpegs_recovers_each_reference_frame(shared_data):
    files = sorted((shared_data / "llp" / "reference_frames_BjCEufrlXm4").glob("*.jpg"))
    blobs = [p.read_bytes() for p in files]
    assert split_jpegs(b"".join(blobs)) == blobs


def test_split_jpegs_refuses_a_cut_off_stream(shared_data):
    blob = (shared_data / "llp" / "reference_frames_BjCEufrlXm4" / "000001.jpg").read_bytes()
    with pytest.raises(DecodeError):
        split_jpegs(blob + blob[: len(blob) // 2])


@pytest.mark.parametrize("field,value,message", [
    ("audio_recipe", "mp3", "audio recipe"), ("frames_recipe", "every-frame", "frames recipe"),
    ("jpeg_quality", 40, "jpeg_quality"), ("allow", ["no-audio"], "allow")])
def test_cut_config_names_the_bad_field(field, value, message):
    with pytest.raises(Exception, match=message):
        build(CutConfig, {field: value}, file="avel.yaml", prefix="cut")


def test_ffmpeg_runner_reports_failure_and_timeout():
    from pipeline.cut.ffmpeg_pipes import run

    with pytest.raises(DecodeError) as failed:
        run(["ffmpeg", "-loglevel", "error", "-i", "/nonexistent/in.mp4", "-f", "s16le", "pipe:1"], 30)
    assert failed.value.reason == "decode-error" and "No such file" in failed.value.detail
    with pytest.raises(DecodeError) as slow:  # an endless source, cut off by the timeout
        run(["ffmpeg", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "anullsrc", "-f", "s16le",
             "pipe:1"], 0.5)
    assert slow.value.reason == "timeout"


def test_ffmpeg_runner_fills_pipe_1_and_pipe_3_separately():
    from pipeline.cut.ffmpeg_pipes import run

    out, fd3 = run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
                    "-t", "1", "-f", "s16le", "pipe:1", "-f", "lavfi", "-i",
                    "color=size=16x16:rate=2:duration=1", "-map", "1:v", "-f", "image2pipe",
                    "-vcodec", "mjpeg", "pipe:3"], 30)
    assert len(out) == 8000 * 2 and out == bytes(len(out))  # 1 s of 8 kHz silence
    assert len(split_jpegs(fd3)) == 2
