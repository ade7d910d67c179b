"""The generated mini dataset: real media whose content matches its labels, served on loopback."""

from __future__ import annotations

import json
import math
import subprocess
import urllib.request

import numpy as np
import pytest

from pipeline.core.media_probe import probe
from pipeline.demo.loopback_server import serve
from pipeline.demo.runner import DemoSize, check_size, demo_batch_size
from pipeline.demo.synthetic import CLASSES, plan, split_counts, write_dataset
from tests.conftest import avel_cmd, cli_env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    write_dataset(out, n_clips=3, n_classes=3, seed=1)
    return out


def test_plan_is_deterministic_and_balanced():
    a, b = plan(12, 4, seed=3), plan(12, 4, seed=3)
    assert a == b
    assert [c.class_index for c in a] == [0, 1, 2, 3] * 3
    assert all(0 <= c.start < c.end <= 10 and c.end - c.start >= 2 for c in a)


def test_clips_are_real_h264_aac_mp4_of_ten_seconds(dataset):
    for mp4 in sorted((dataset / "videos").glob("*.mp4")):
        info = probe(mp4)
        assert info.video_codec == "h264" and info.audio_codec == "aac"
        assert abs(info.duration_s - 10.0) < 0.1


def test_audio_tone_sits_in_the_labelled_seconds(dataset):
    """Decode the audio with ffmpeg and find the class tone's energy only in event seconds."""
    import ffmpeg
    labels = json.loads((dataset / "labels.json").read_text())
    for video_id, info in labels["clips"].items():
        out, _ = (ffmpeg.input(str(dataset / "videos" / f"{video_id}.mp4"))
                  .output("pipe:", format="f32le", ac=1, ar=16000).run(quiet=True))
        audio = np.frombuffer(out, np.float32)
        tone = CLASSES[info["class_index"]][1]
        for second, label in enumerate(info["seconds"]):
            chunk = audio[second * 16000 + 2000:(second + 1) * 16000 - 2000]
            t = np.arange(len(chunk)) / 16000
            power = abs(np.dot(chunk, np.exp(-2j * np.pi * tone * t))) / len(chunk)
            assert (power > 0.1) == (label >= 0), (video_id, second, power)


def test_annotations_are_in_ave_format(dataset):
    lines = (dataset / "Annotations.txt").read_text().splitlines()
    assert len(lines) == 3
    cat, vid, quality, start, end = lines[0].split("&")
    assert (cat, quality) == (CLASSES[0][0], "good") and int(start) < int(end)


def test_loopback_server_serves_files_and_faults(dataset):
    with serve(dataset / "videos") as server:
        assert server.url.startswith("http://127.0.0.1:")
        name = sorted((dataset / "videos").glob("*.mp4"))[0].name
        server.inject(f"/{name}", "404")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{server.url}/{name}", timeout=5)
        assert exc.value.code == 404
        body = urllib.request.urlopen(f"{server.url}/{name}", timeout=5).read()
        assert body == (dataset / "videos" / name).read_bytes()
        assert server.hits[f"/{name}"] == 2


@pytest.mark.parametrize("clips, classes", [(16, 4), (4, 1), (24, 6), (17, 4), (40, 4), (20, 4)])
def test_every_allowed_demo_size_gives_every_class_a_train_val_and_test_clip(clips, classes):
    """`avel demo --clips 16` (4 per class, the help's minimum) had no test clip: the
    60/20/20 split of 4 gave 3/1/0. Every size `check_size` accepts has each class in each
    split."""
    check_size(DemoSize(clips=clips, classes=classes))
    for split in ("train", "val", "test"):
        got = {c.class_index for c in plan(clips, classes) if c.split == split}
        assert got == set(range(classes)), (split, got)


def test_split_counts_are_60_20_20_where_that_leaves_no_split_empty():
    """Reference: train = ceil(0.6 k), val = ceil(0.8 k) - train, test = the rest (the split
    the demo had), kept wherever it gives val and test a clip each."""
    assert split_counts(10) == (6, 2, 2) and split_counts(5) == (3, 1, 1)
    assert split_counts(4) == (2, 1, 1) and split_counts(3) == (1, 1, 1)
    assert split_counts(2) == (2, 0, 0) and split_counts(1) == (1, 0, 0)
    for k in range(3, 60):
        train, val, test = split_counts(k)
        assert train + val + test == k and min(train, val, test) >= 1
        if k - math.ceil(0.8 * k) >= 1 and math.ceil(0.8 * k) - math.ceil(0.6 * k) >= 1:
            assert train == math.ceil(0.6 * k), k


def test_demo_below_its_minimum_is_refused_before_writing(tmp_path):
    """15 clips of 4 classes: exit 2 naming --clips, no work directory made."""
    out = subprocess.run(avel_cmd("demo", "-w", str(tmp_path / "d"), "--clips", "15"),
                         env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "--clips 15: the demo needs at least 4 clips per class (16 for 4 classes)" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "d").exists()


@pytest.mark.parametrize("clips, classes, train_clips", [
    (10, 2, 6),   # 5 a class: 3/1/1 -> 6 to train (the image test's size; batch 8 dropped all)
    (4, 1, 2),    # 4: 2/1/1
    (16, 4, 8),   # 4 a class: 2 each
    (40, 4, 24),  # 10 a class: 6/2/2
])
def test_the_demo_batch_never_exceeds_its_training_split(clips, classes, train_clips):
    """Training uses drop_last: a batch larger than the training split trains nothing (the
    trainer refuses it), which is what `avel demo --clips 10 --classes 2` did."""
    assert sum(c.split == "train" for c in plan(clips, classes)) == train_clips
    batch = demo_batch_size(DemoSize(clips=clips, classes=classes))
    assert batch == min(8, train_clips) and train_clips // batch >= 1
