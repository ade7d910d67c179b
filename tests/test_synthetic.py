"""The generated mini dataset: real media whose content matches its labels, served on loopback."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from pipeline.core.media_probe import probe
from pipeline.demo.loopback_server import serve
from pipeline.demo.synthetic import CLASSES, plan, write_dataset


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
