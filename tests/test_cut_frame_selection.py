"""ave-vgg19 picks its frames by presentation time inside ffmpeg's graph: the frames the
AVE rule picks from the frames really in the clip, with their real times, and the same
JPEG bytes as encoding every frame and picking afterwards.

References: ffprobe's frame times of the source (an independent reader), the zoo's bar-coded
frame numbers, and the AVE rule itself (recipes.ave_selection, pinned in test_cut_recipes).
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.cut.checks import Span
from pipeline.cut.clip import CutSettings, CutTask, cut_clip
from pipeline.cut.recipes import ave_selection
from tests.format_zoo import ZOO, frame_number, frame_times, write

SETTINGS = CutSettings(audio_recipe="vggsound", frames_recipe="ave-vgg19", jpeg_quality=2,
                       scale=None, allow=("variable-frame-rate",), max_pixels=4096 * 2160,
                       max_pad_s=0.5, span_slack_s=0.1, timeout_s=120.0, ffmpeg_version="test")
SPAN = Span(0.5, 5.5)  # crosses the VFR file's change from 25 to 10 fps at 3 s


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "format-zoo"


def _entry(name: str):
    return next(e for e in ZOO if e.name == name)


def test_vfr_frame_times_are_the_source_pts_of_the_frames_the_ave_rule_picks(zoo_dir):
    path = write(_entry("mp4-vfr"), zoo_dir)
    result = cut_clip(CutTask("vfr", str(path), path.name, SPAN), SETTINGS)
    assert result.reason is None, result.detail
    pts = frame_times(path)  # ffprobe, every frame of the source
    inside = np.flatnonzero((pts >= SPAN.start_s - 1e-6) & (pts < SPAN.end_s - 1e-6))
    expected = inside[ave_selection(len(inside), seconds=5)]  # source frame numbers
    got = [frame_number(j) for j in result.media.frames]
    assert got == list(expected)
    np.testing.assert_allclose(result.media.frame_times, pts[expected] - SPAN.start_s, atol=1e-6)
    # the old index / average-fps times were off by seconds after the rate change
    assert result.media.frame_times[-1] > 4.5


@pytest.mark.parametrize("name", ["mp4-h264-aac", "mp4-vfr", "webm-vp9-opus"])
def test_selecting_in_the_graph_gives_the_bytes_of_encoding_every_frame(zoo_dir, name):
    path = write(_entry(name), zoo_dir)
    task = CutTask(name, str(path), path.name, SPAN)
    in_graph = cut_clip(task, SETTINGS)
    after = cut_clip(task, replace(SETTINGS, select_in_graph=False))
    assert in_graph.reason is None and after.reason is None
    assert in_graph.media.frames == after.media.frames
    np.testing.assert_array_equal(in_graph.media.frame_times, after.media.frame_times)
    assert len(in_graph.media.frames) == 5 * 16
    assert in_graph.media.attrs["decoded_frames"] == after.media.attrs["decoded_frames"]


def test_a_gop_longer_than_the_listing_margin_still_gives_every_frame_in_the_clip(tmp_path):
    """The probe lists packets from 10 s before the clip to 30 s past the keyframe it lands
    on; with one keyframe 50 s before the clip that stops short, and the cut must notice and
    read the clip's packets itself rather than record a truncated clip."""
    path = tmp_path / "one-gop.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=10:duration=60", "-f", "lavfi", "-i",
                    "sine=sample_rate=16000:duration=60", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "1000", "-keyint_min", "1000", "-sc_threshold", "0",
                    "-c:a", "aac", str(path)], check=True)
    span = Span(50.0, 52.0)
    settings = replace(SETTINGS, allow=(), max_pad_s=0.5)
    result = cut_clip(CutTask("gop", str(path), path.name, span), settings)
    assert result.reason is None, result.detail
    pts = frame_times(path)
    inside = np.flatnonzero((pts >= span.start_s - 1e-6) & (pts < span.end_s - 1e-6))
    assert len(inside) == 20  # 10 fps
    expected = inside[ave_selection(len(inside), seconds=2)]
    np.testing.assert_allclose(result.media.frame_times, pts[expected] - span.start_s, atol=1e-6)
