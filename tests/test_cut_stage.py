"""The shard worker: output contract of clips/<shard>.h5, the download stage's input
contract (file + offset), idempotent reruns and the loose layout."""

from __future__ import annotations

import hashlib
import json
import subprocess

import h5py
import numpy as np
import pytest
import soundfile as sf

from pipeline.core.config import load_config
from pipeline.core.errors import InputError
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.cut.stage import run_cut
from pipeline.store import clips as clip_store
from tests.bad_media_corpus import good_clip
from tests.fixtures_cut import make_workdir

SHARD = Shard(0, 1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return [good_clip(root / f"v{i}.mp4", freq=300 + 200 * i) for i in range(2)]


def _run(wd, **kw):
    return run_cut(wd, load_config(wd), SHARD, progress=False, **kw)


def test_shard_file_holds_audio_frames_times_and_provenance(tmp_path, videos):
    wd = make_workdir(tmp_path, [(f"c{i}", v, 0.0, 10.0) for i, v in enumerate(videos)])
    summary = _run(wd)
    assert summary.done == 2 and summary.failed == 0
    shard_file = Workdir(wd).clips_file(SHARD)
    media = clip_store.read_clip(shard_file, "c0")
    assert media.audio.shape == (160000,) and media.audio.dtype == np.int16
    assert media.sample_rate == 16000
    # ave-vgg19 on an 8 fps clip: 80 decoded, step int(80/10) = 8, 16 picks per second
    assert media.attrs["decoded_frames"] == 80 and len(media.frames) == 160
    assert np.floor(media.frame_times).astype(int).tolist() == [s for s in range(10) for _ in range(16)]
    assert all(f[:2] == b"\xff\xd8" and f[-2:] == b"\xff\xd9" for f in media.frames)
    args = json.loads(media.attrs["ffmpeg_args"])  # one call: audio on pipe:1, frames on pipe:3
    assert args[0] == "ffmpeg" and args.count("-i") == 1
    assert args[args.index("-ar") + 1] == "16000" and args[args.index("-ac") + 1] == "1"
    assert "passthrough" in args and "pipe:1" in args and "pipe:3" in args
    assert media.attrs["audio_recipe"] == "vggsound" and media.attrs["frames_recipe"] == "ave-vgg19"
    assert media.attrs["ffmpeg_version"][0].isdigit()
    # AAC priming makes the decode a little longer than 10 s: trimmed, not padded
    assert media.attrs["audio_padded"] == 0 and media.attrs["audio_trimmed"] > 0
    # the stored audio is the ffmpeg VGGSound command's output, cut to 160000 samples
    ref = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(videos[0]), "-acodec", "pcm_s16le",
                          "-ac", "1", "-ar", "16000", "-f", "s16le", "-"], capture_output=True,
                         check=True).stdout
    assert np.array_equal(media.audio, np.frombuffer(ref, "<i2")[:160000])
    with Ledger(Workdir(wd).ledger("cut", SHARD)) as ledger:
        entry = ledger.get("c0")
    assert entry.status == "done" and entry.info["frames"] == 160 and len(entry.checksum) == 64
    assert entry.attempts == 1


def test_uniform_recipe_and_jpeg_quality(tmp_path, videos):
    wd = make_workdir(tmp_path, [("c0", videos[0], 0.0, 10.0)],
                      {"frames_recipe": "uniform-4", "jpeg_quality": 3, "scale": "32:24"})
    _run(wd)
    media = clip_store.read_clip(Workdir(wd).clips_file(SHARD), "c0")
    assert len(media.frames) == 40
    assert np.allclose(media.frame_times, np.arange(40) / 4)
    args = json.loads(media.attrs["ffmpeg_args"])
    assert args[args.index("-q:v") + 1] == "3" and "[0:v]scale=32:24[s0]" in args
    import io

    from PIL import Image
    assert Image.open(io.BytesIO(media.frames[0])).size == (32, 24)


def test_download_ledger_file_and_offset_choose_the_span(tmp_path):
    # a downloaded section covering source time [10, 24] s; the clip is [12, 22] s, so the
    # click at source time 13.0 s (file time 3.0 s) lands at 1.0 s into the clip
    wd = tmp_path / "wd"
    raw = wd / "raw" / SHARD.name
    raw.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48:rate=8:duration=14", "-f", "lavfi", "-i",
                    "aevalsrc='if(between(t,3,3.02),0.8,0)':s=16000:d=14", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
                    str(raw / "clip.mkv")], check=True)
    make_workdir(wd, [("clip", "https://example.invalid/v", 12.0, 22.0),
                      ("later", "https://example.invalid/w", 0.0, 10.0)],
                 {"frames_recipe": "uniform-1"})
    with Ledger(Workdir(wd).ledger("download", SHARD)) as dl:
        dl.ensure(["clip", "later"])
        dl.done("clip", info={"file": f"raw/{SHARD.name}/clip.mkv", "offset_s": 10.0})
    summary = _run(wd)
    assert summary.done == 1 and summary.waiting == 1  # "later" is not downloaded yet
    media = clip_store.read_clip(Workdir(wd).clips_file(SHARD), "clip")
    onset = int(np.argmax(np.abs(media.audio) > 8000))
    assert abs(onset - 16000) <= 2
    assert len(media.frames) == 10 and media.attrs["span_start_s"] == 2.0
    with Ledger(Workdir(wd).ledger("cut", SHARD)) as ledger:
        assert ledger.get("later").status == "pending"


def test_rerun_cuts_nothing_and_leaves_the_file_alone(tmp_path, videos):
    wd = make_workdir(tmp_path, [(f"c{i}", v, 0.0, 10.0) for i, v in enumerate(videos)])
    _run(wd)
    shard_file = Workdir(wd).clips_file(SHARD)
    before = hashlib.sha256(shard_file.read_bytes()).hexdigest()
    again = _run(wd)
    assert again.done == 0 and again.skipped == 2
    assert hashlib.sha256(shard_file.read_bytes()).hexdigest() == before


def test_loose_layout_is_what_the_original_scripts_read(tmp_path, videos):
    wd = make_workdir(tmp_path, [("c0", videos[0], 0.0, 10.0)],
                      {"frames_recipe": "llp-8fps", "audio_recipe": "llp"})
    summary = _run(wd, loose=True)
    assert summary.done == 1
    loose = Workdir(wd).loose_dir()
    jpgs = sorted((loose / "frames" / "c0").glob("*.jpg"))
    # every decoded frame, named like `ffmpeg -r 8 %06d.jpg` names them
    assert [p.name for p in jpgs] == [f"{i:06d}.jpg" for i in range(1, len(jpgs) + 1)]
    assert len(jpgs) >= 80
    audio, rate = sf.read(loose / "audio" / "c0.wav", dtype="int16")
    assert rate == 16000 and audio.shape == (160000,)  # the source is mono
    assert not Workdir(wd).clips_file(SHARD).exists()
    with Ledger(Workdir(wd).ledger("cut-loose", SHARD)) as ledger:  # its own ledger
        assert ledger.get("c0").status == "done"
    assert not Workdir(wd).ledger("cut", SHARD).exists()
    assert not list((loose / "frames").glob(".*"))


def test_clip_store_keeps_equal_length_jpegs_apart(tmp_path):
    # a vlen column of rows that all have the same length must not collapse into 2-D
    frames = [b"\xff\xd8ab\xff\xd9", b"\xff\xd8cd\xff\xd9"]
    media = clip_store.ClipMedia(np.zeros(4, np.int16), 16000, frames, np.arange(2.0), {})
    target = tmp_path / "s.h5"
    clip_store.write_part(target, {"x": media})
    clip_store.consolidate(target)
    assert clip_store.read_clip(target, "x").frames == frames

    # a newer part of the same clip (a recut) is what consolidation keeps, and what reads give
    newer = clip_store.ClipMedia(np.ones(4, np.int16), 16000, frames[::-1], np.arange(2.0), {})
    clip_store.write_part(target, {"x": newer})
    assert clip_store.read_clip(target, "x").frames == frames[::-1]
    clip_store.consolidate(target)
    assert clip_store.read_clip(target, "x").frames == frames[::-1]


def test_changed_recipe_is_refused_before_mixing_a_shard_file(tmp_path, videos):
    from pipeline.core.errors import InputError

    wd = make_workdir(tmp_path, [("c0", videos[0], 0.0, 10.0)], {"frames_recipe": "uniform-1"})
    _run(wd)
    make_workdir(tmp_path, [("c0", videos[0], 0.0, 10.0), ("c1", videos[1], 0.0, 10.0)],
                 {"frames_recipe": "uniform-2"})
    with pytest.raises(InputError, match="frames_recipe: 'uniform-1' -> 'uniform-2'"):
        _run(wd)
    with Ledger(Workdir(wd).ledger("cut", SHARD)) as ledger:
        assert ledger.get("c1") is None  # nothing was touched


def test_missing_local_file_is_retried_on_the_next_run(tmp_path, videos):
    import shutil

    later = tmp_path / "later.mp4"
    wd = make_workdir(tmp_path / "wd", [("c0", later, 0.0, 10.0)], {"frames_recipe": "uniform-1"})
    assert _run(wd).reasons == {"missing-file": 1}
    shutil.copy(videos[0], later)
    assert _run(wd).done == 1


def test_allow_adds_to_the_defaults_and_a_minus_takes_one_away():
    from pipeline.core.config import DEFAULT_ALLOW, CutConfig

    assert CutConfig().allowed == DEFAULT_ALLOW
    assert CutConfig(allow=["variable-frame-rate"]).allowed == (*DEFAULT_ALLOW,
                                                                 "variable-frame-rate")
    assert "rotated" not in CutConfig(allow=["-rotated"]).allowed
    CutConfig(allow=["-rotated", "odd-size"]).validate()


def test_retry_failed_recuts_clips_failed_for_a_now_allowed_reason(tmp_path, videos):
    import shutil

    import pandas as pd
    import yaml

    from pipeline.core.config import load_config
    from pipeline.cut.stage import run_cut as cut

    wd = make_workdir(tmp_path, [("c0", videos[0], 0.0, 10.0)],
                      {"frames_recipe": "uniform-1", "allow": ["-non-ascii-name"]})
    renamed = videos[0].parent / "vidéo.mp4"
    shutil.copy(videos[0], renamed)
    table = pd.read_parquet(wd / "manifest.parquet")
    table["source"] = str(renamed)
    table.to_parquet(wd / "manifest.parquet", index=False)
    assert _run(wd).reasons == {"non-ascii-name": 1}
    config = yaml.safe_load((wd / "avel.yaml").read_text())
    config["cut"]["allow"] = []
    (wd / "avel.yaml").write_text(yaml.safe_dump(config))
    assert _run(wd).done == 0  # a permanent failure stays failed without being asked
    summary = cut(wd, load_config(wd), SHARD, progress=False, retry_failed="non-ascii-name")
    assert summary.done == 1


def test_a_planted_shard_file_pointing_outside_itself_is_refused_before_cutting(tmp_path, videos):
    """The recipe check is the first read of an existing shard file: one whose datasets
    read another file (an external link here) stops the cut with the file named."""
    wd = make_workdir(tmp_path, [("c0", videos[0], 0.0, 10.0)], {"frames_recipe": "uniform-1"})
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as fh:
        fh["x"] = np.arange(4)
    shard_file = Workdir(wd).clips_file(SHARD)
    shard_file.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(shard_file, "w") as fh:
        fh.attrs["frames_recipe"] = "uniform-1"
        fh["c0/audio"] = h5py.ExternalLink(str(outside), "x")
    with pytest.raises(InputError, match="external link") as err:
        _run(wd)
    assert str(shard_file) in str(err.value)
    with Ledger(Workdir(wd).ledger("cut", SHARD)) as ledger:
        assert ledger.get("c0") is None
