"""The demo end to end at a reduced size: every stage runs, and what it shows a person
(curves and timelines PNGs, preview MP4) decodes as real images and video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.media_probe import probe
from pipeline.demo.runner import DemoSize, render_summary, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    # 20 clips of 4 classes give 12 / 4 / 4 train / val / test clips
    return run_demo(workdir, DemoSize(clips=20, classes=4, epochs=3)), workdir


@pytest.mark.slow
def test_every_stage_finishes_every_clip(demo):
    summary, _ = demo
    assert summary["clips"] == summary["downloaded"] == summary["cut"] == 20
    assert summary["features"] == {"vggish": 20, "vgg19": 20}
    assert "random" in summary["weights"]
    # the test accuracy, counted second by second: predictions.json against the generated
    # dataset's own Annotations.txt (AVE format: Category&VideoID&Quality&StartTime&EndTime)
    lines = (Path(summary["workdir"]) / "source" / "Annotations.txt").read_text().splitlines()
    truth = {vid: [cat if int(s) <= t < int(e) else "background" for t in range(10)]
             for cat, vid, _, s, e in (line.split("&") for line in lines)}
    for run in summary["runs"].values():
        predicted = json.loads((Path(run["eval_dir"]) / "predictions.json").read_text())
        assert len(predicted) == 4  # the test split
        hits = sum(p == t for vid, seq in predicted.items() for p, t in zip(seq, truth[vid], strict=True))
        assert run["test_accuracy"] == pytest.approx(100 * hits / 40, abs=1e-6)


@pytest.mark.slow
def test_pngs_decode_as_images(demo):
    summary, _ = demo
    for run in summary["runs"].values():
        for path in (f"{run['run_dir']}/curves.png", f"{run['eval_dir']}/timelines.png"):
            with Image.open(path) as image:
                image.load()
                assert image.size[0] > 200 and image.size[1] > 100


@pytest.mark.slow
def test_preview_video_decodes_with_bars_under_the_frames(demo):
    import ffmpeg
    summary, workdir = demo
    info = probe(summary["preview"])
    assert info.has_video and info.video_codec == "h264"
    assert abs(info.duration_s - 10.0) < 0.5
    assert info.height == 120 + 36  # the clip's 120 rows, then two 18-pixel bars
    out, _ = (ffmpeg.input(summary["preview"], ss=5).output("pipe:", vframes=1, format="rawvideo",
                                                             pix_fmt="rgb24").run(quiet=True))
    frame = np.frombuffer(out, np.uint8).reshape(info.height, info.width, 3)
    assert frame[:120].mean() > 60  # the grey synthetic frame, not black
    predictions = json.loads((workdir / "train" / "ave-fully__cpsp" / "eval" / "test"
                              / "predictions.json").read_text())
    assert all(len(p) == 10 for p in predictions.values())


@pytest.mark.slow
def test_summary_table_names_the_outputs(demo):
    summary, _ = demo
    text = render_summary(summary)
    assert "cpsp" in text and "chance" in text and "preview.mp4" in text
