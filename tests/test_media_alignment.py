"""Section downloads of real-world containers come out aligned: the format zoo
(tests/format_zoo.py) is served over loopback HTTP and cut in full mode and in section
mode; the frame numbers burnt into the pictures and the noise in the audio say whether
each clip starts at its clip start.

Reference for "the source frame at the clip start": ffprobe's presentation times of the
source (an independent reader), and ffmpeg's own rule for `-ss`: the first frame whose
time is at or after the container start plus the seek.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.core.config import load_config
from pipeline.core.ledger import Ledger
from pipeline.core.media_probe import probe
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.cut.stage import run_cut
from pipeline.datasets.manifest import build_manifest
from pipeline.demo.loopback_server import LoopbackServer
from pipeline.download.stage import run_download
from pipeline.store.clips import iter_clips
from tests.fixtures_download import FAST
from tests.format_zoo import ZOO, frame_number, lag, numbered_frames, write_zoo

SHARD = Shard(0, 1)
CLIP = (3.2, 5.2)  # seconds; every zoo GOP here starts before 3.2, most at 0
ALLOW = ["variable-frame-rate", "rotated", "unusual-pixel-format", "non-ascii-name"]


def _workdir(root: Path, url: str, mode: str, pad_s: float) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "list.csv").write_text("".join(f"{e.name}{e.ext},3,x,train\n" for e in ZOO))
    config = {"dataset": {"name": "vggsound", "source": "url", "url_template": url + "/{video_id}",
                          "files": {"csv": str(root / "list.csv")}},
              "download": {"mode": mode, "pad_s": pad_s, **FAST},
              "cut": {"workers": 1, "allow": ALLOW}}
    (root / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build_manifest(root, load_config(root))
    table = pd.read_parquet(root / "manifest.parquet")
    table["start_s"], table["end_s"] = CLIP
    table.to_parquet(root / "manifest.parquet", index=False)
    return root


def _cut(root: Path) -> dict[str, object]:
    config = load_config(root)
    run_download(root, config, SHARD, progress=False)
    run_cut(root, config, SHARD, progress=False)
    return {cid.rsplit("_", 1)[0]: media
            for cid, media in iter_clips(Workdir(root).clips_file(SHARD))}


def _failures(root: Path) -> dict[str, str]:
    out = {}
    for stage in ("download", "cut"):
        with Ledger(Workdir(root).ledger(stage, SHARD)) as ledger:
            out.update({e.clip_id.rsplit("_", 1)[0]: f"{stage}:{e.reason}"
                        for e in ledger.entries() if e.reason})
    return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    return write_zoo(tmp_path_factory.getbasetemp() / "format-zoo")


@pytest.fixture(scope="module")
def server(zoo):
    srv = LoopbackServer(next(iter(zoo.values())).parent).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def full_cuts(tmp_path_factory, server) -> dict[str, object]:
    return _cut(_workdir(tmp_path_factory.mktemp("zoo-full"), server.url, "full", 0.0))


def expected_first_frame(path: Path) -> int:
    """Number of the source frame at the clip start: the first with pts >= start + CLIP[0]."""
    numbers, times = numbered_frames(path)
    return int(numbers[np.searchsorted(times, probe(path).start_s + CLIP[0] - 1e-6)])


def test_full_mode_cuts_start_at_the_clip_start(zoo, full_cuts):
    for entry in ZOO:
        media = full_cuts[f"{entry.name}{entry.ext}"]
        got = frame_number(media.frames[0])
        assert abs(got - expected_first_frame(zoo[entry.name])) <= 1, entry.name


@pytest.mark.parametrize("pad_s", [0.0, pytest.param(0.5, marks=pytest.mark.slow),
                                   pytest.param(1.0, marks=pytest.mark.slow)])
def test_section_cuts_match_the_source_and_the_full_cut(tmp_path_factory, zoo, server,
                                                        full_cuts, pad_s):
    root = _workdir(tmp_path_factory.mktemp(f"zoo-section-{pad_s}"), server.url, "section",
                    pad_s)
    cuts = _cut(root)
    assert not _failures(root)
    for entry in ZOO:
        key = f"{entry.name}{entry.ext}"
        media, full = cuts[key], full_cuts[key]
        got = frame_number(media.frames[0])
        assert abs(got - expected_first_frame(zoo[entry.name])) <= 1, (entry.name, got)
        assert [frame_number(j) for j in media.frames] == [frame_number(j) for j in full.frames]
        # Opus too: an old Matroska muxer moves a section's audio 7 ms early (112 samples
        # at 16 kHz), which the download records and the cut reads back; AAC in MP4 starting
        # between two milliseconds was 5 samples early (an edit list in 1 ms ticks)
        assert abs(lag(full.audio, media.audio, 400)) <= 1, entry.name
        if entry.name == "mp4-h264-aac-start3.7":
            assert lag(full.audio, media.audio, 400) == 0


@pytest.mark.slow
def test_server_without_range_gives_aligned_clips_or_a_documented_reason(tmp_path_factory, zoo,
                                                                          server, full_cuts):
    server.ranges = False
    try:
        root = _workdir(tmp_path_factory.mktemp("zoo-norange"), server.url, "section", 0.0)
        cuts = _cut(root)
    finally:
        server.ranges = True
    failures = _failures(root)
    for entry in ZOO:
        key = f"{entry.name}{entry.ext}"
        if key in failures:
            assert failures[key] in {"download:no-range"}, (key, failures[key])
            continue
        got = frame_number(cuts[key].frames[0])
        assert abs(got - expected_first_frame(zoo[entry.name])) <= 1, (entry.name, got)
