"""The cut takes the download's probe from the ledger instead of probing again
(core/carried_probe): one ffmpeg process per clip and no ffprobe, with the clips a cut
that probes for itself stores; and it probes again whenever the record cannot be trusted.

References: a cut of the same files whose download ledger holds no probe (the path every
workdir took before), counted ffprobe/ffmpeg processes (wrapper scripts in front of the
real tools on PATH), and for a replaced file the zoo's bar-coded frame numbers against
ffprobe's frame times of the new file and the AVE rule.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.core.config import load_config
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.cut.recipes import ave_selection
from pipeline.cut.stage import run_cut
from pipeline.datasets.manifest import build_manifest
from pipeline.demo.loopback_server import LoopbackServer
from pipeline.download.stage import run_download
from pipeline.store.clips import iter_clips
from tests.fixtures_download import FAST
from tests.format_zoo import ZOO, frame_number, frame_times, write_zoo

SHARD = Shard(0, 1)
CLIP = (3.2, 5.2)
ALLOW = ["variable-frame-rate", "rotated", "unusual-pixel-format", "non-ascii-name"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    return write_zoo(tmp_path_factory.getbasetemp() / "format-zoo")


@pytest.fixture
def tool_calls(tmp_path, monkeypatch):
    """Wrappers for ffprobe and ffmpeg on PATH that log each start and run the real tool;
    returns a function giving {tool: number of processes} since the last call (not counting
    the `ffmpeg -version` each cut run asks once for its provenance)."""
    wrappers = tmp_path / "tool-wrappers"
    wrappers.mkdir()
    log = tmp_path / "tool-calls.log"
    for tool in ("ffprobe", "ffmpeg"):
        real = shutil.which(tool)
        script = wrappers / tool
        script.write_text(f'#!/bin/sh\n[ "$1" = -version ] || echo {tool} >> "{log}"\n'
                          f'exec "{real}" "$@"\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrappers}{os.pathsep}{os.environ['PATH']}")

    def calls() -> dict[str, int]:
        lines = log.read_text().split() if log.is_file() else []
        log.unlink(missing_ok=True)
        return {tool: lines.count(tool) for tool in ("ffprobe", "ffmpeg")}
    return calls


def _workdir(root: Path, config: dict, names: list[str]) -> Path:
    root.mkdir(parents=True)
    (root / "list.csv").write_text("".join(f"{name},3,x,train\n" for name in names))
    config["dataset"]["files"] = {"csv": str(root / "list.csv")}
    config["cut"] = {"workers": 1, "allow": ALLOW}  # frames_recipe: ave-vgg19 (vggsound's)
    (root / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build_manifest(root, load_config(root))
    set_clip(root, *CLIP)
    return root


def set_clip(root: Path, start_s: float, end_s: float) -> None:
    table = pd.read_parquet(root / "manifest.parquet")
    table["start_s"], table["end_s"] = start_s, end_s
    table.to_parquet(root / "manifest.parquet", index=False)


def local_workdir(root: Path, zoo: dict[str, Path]) -> Path:
    videos = next(iter(zoo.values())).parent
    config = {"dataset": {"name": "vggsound", "source": "local", "videos_dir": str(videos),
                          "video_ext": sorted({e.ext for e in ZOO})},
              "download": {"mode": "full", "local_files": "copy", **FAST}}
    return _workdir(root, config, [e.name for e in ZOO])


def edit_download_ledger(root: Path, edit) -> None:
    """Apply `edit(info)` to every download ledger entry's info, in place."""
    path = Workdir(root).ledger("download", SHARD)
    with sqlite3.connect(path) as db:
        for clip_id, text in db.execute("SELECT clip_id, info FROM clips").fetchall():
            info = json.loads(text)
            edit(info)
            db.execute("UPDATE clips SET info=? WHERE clip_id=?", (json.dumps(info), clip_id))


def download_info(root: Path) -> dict[str, dict]:
    with Ledger(Workdir(root).ledger("download", SHARD)) as ledger:
        return {e.clip_id: e.info for e in ledger.entries()}


def cut_rows(root: Path) -> dict[str, tuple]:
    run_cut(root, load_config(root), SHARD, progress=False)
    with Ledger(Workdir(root).ledger("cut", SHARD)) as ledger:
        failed = {e.clip_id: e.reason for e in ledger.entries() if e.reason}
    assert not failed, failed
    return {cid: (media.frames, media.frame_times.tolist(), media.audio.tobytes(),
                  media.sample_rate, media.attrs)
            for cid, media in iter_clips(Workdir(root).clips_file(SHARD))}


def recut(root: Path) -> None:
    """Forget the cut: its ledger and store go, the download stays."""
    shutil.rmtree(root / "clips")
    shutil.rmtree(root / "state" / "cut")


@pytest.mark.parametrize("pad_s", [0.0, pytest.param(1.0, marks=pytest.mark.slow)])
def test_a_cut_given_the_download_probe_starts_no_ffprobe_and_stores_the_same_clips(
        tmp_path, zoo, tool_calls, pad_s):
    """Section downloads of the whole zoo (every container, VFR, a 3.7 s container start,
    late audio) over loopback HTTP, cut with ave-vgg19 from the carried probe and again after
    the probes are taken out of the ledger: same frames, times, audio and attrs."""
    server = LoopbackServer(next(iter(zoo.values())).parent).start()
    try:
        config = {"dataset": {"name": "vggsound", "source": "url",
                              "url_template": server.url + "/{video_id}"},
                  "download": {"mode": "section", "pad_s": pad_s, **FAST}}
        root = _workdir(tmp_path / "wd", config, [f"{e.name}{e.ext}" for e in ZOO])
        run_download(root, load_config(root), SHARD, progress=False)
    finally:
        server.stop()
    infos = download_info(root)
    assert all("video_pts" in info["probe"] for info in infos.values()), infos
    tool_calls()
    carried = cut_rows(root)
    assert tool_calls() == {"ffprobe": 0, "ffmpeg": len(ZOO)}

    recut(root)
    edit_download_ledger(root, lambda info: info.pop("probe"))
    probed = cut_rows(root)
    assert tool_calls()["ffprobe"] >= len(ZOO)  # the wrapper sees the cut's own probes
    assert_same_rows(carried, probed)


def test_a_touched_or_replaced_file_is_probed_again(tmp_path, zoo, tool_calls):
    root = local_workdir(tmp_path / "wd", zoo)
    run_download(root, load_config(root), SHARD, progress=False)
    infos = download_info(root)
    raw = {cid.rsplit("_", 1)[0]: root / info["file"] for cid, info in infos.items()}
    # touched: same bytes, another mtime
    stat = raw["mp4-h264-aac"].stat()
    os.utime(raw["mp4-h264-aac"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    # replaced by a copy: same bytes and mtime, another inode
    copy = raw["webm-vp9-opus"].with_suffix(".copy")
    shutil.copy2(raw["webm-vp9-opus"], copy)
    os.replace(copy, raw["webm-vp9-opus"])
    # replaced by another video: the VFR file where a constant-rate mp4 was
    shutil.copy(zoo["mp4-vfr"], raw["mp4-late-8k-audio"])
    tool_calls()
    rows = cut_rows(root)
    assert tool_calls() == {"ffprobe": 3, "ffmpeg": len(ZOO)}  # only the three changed files

    # the replaced file gives the new file's frames, picked by the AVE rule from its times
    frames, times = rows["mp4-late-8k-audio_000003"][:2]
    pts = frame_times(zoo["mp4-vfr"])
    inside = np.flatnonzero((pts >= CLIP[0] - 1e-6) & (pts < CLIP[1] - 1e-6))
    expected = inside[ave_selection(len(inside), seconds=2)]
    assert [frame_number(j) for j in frames] == list(expected)
    np.testing.assert_allclose(times, pts[expected] - CLIP[0], atol=1e-6)
    # all of them are what a cut probing for itself gives
    recut(root)
    edit_download_ledger(root, lambda info: info.pop("probe"))
    assert_same_rows(rows, cut_rows(root))


GARBAGE = {  # record -> the record planted instead
    "not a record": lambda p: "garbage",
    "a field of the wrong type": lambda p: {**p, "media": {**p["media"], "duration_s": "16"}},
    "a field missing": lambda p: {**p, "media": {k: v for k, v in p["media"].items()
                                                 if k != "start_s"}},
    "an unknown field": lambda p: {**p, "media": {**p["media"], "colour": "blue"}},
    "times that go back": lambda p: {**p, "video_pts": {
        **p["video_pts"], "steps_us": [-40000, *p["video_pts"]["steps_us"][1:]]}},
    "a stamp of another file": lambda p: {**p, "file": {**p["file"],
                                                        "size": p["file"]["size"] + 1}},
}
assert len(GARBAGE) < len(ZOO)


def test_a_garbage_record_is_probed_again_never_a_crash(tmp_path, zoo, tool_calls):
    """One kind of garbage planted in each clip's record but the last: those clips are
    probed again and cut as before; the untouched one still uses its record."""
    root = local_workdir(tmp_path / "wd", zoo)
    run_download(root, load_config(root), SHARD, progress=False)
    good = cut_rows(root)
    recut(root)
    kinds = iter(sorted(GARBAGE))

    def plant(info: dict) -> None:
        kind = next(kinds, None)
        if kind is not None:
            info["probe"] = GARBAGE[kind](info["probe"])
    edit_download_ledger(root, plant)
    tool_calls()
    assert_same_rows(good, cut_rows(root))
    assert tool_calls() == {"ffprobe": len(GARBAGE), "ffmpeg": len(ZOO)}


def test_a_clip_moved_after_download_lists_its_own_packets(tmp_path, zoo, tool_calls):
    """The manifest's clip changed after the download: the recorded times do not cover it,
    so the cut reads the clip's packets itself (one ffprobe) and cuts the new clip."""
    root = local_workdir(tmp_path / "wd", zoo)
    run_download(root, load_config(root), SHARD, progress=False)
    set_clip(root, 1.0, 5.0)
    tool_calls()
    moved = cut_rows(root)
    assert tool_calls() == {"ffprobe": len(ZOO), "ffmpeg": len(ZOO)}
    recut(root)
    edit_download_ledger(root, lambda info: info.pop("probe"))
    assert_same_rows(moved, cut_rows(root))


def assert_same_rows(a: dict[str, tuple], b: dict[str, tuple], n: int = len(ZOO)) -> None:
    assert a.keys() == b.keys() and len(a) == n
    for clip_id, row in a.items():
        assert row[0] == b[clip_id][0], clip_id  # JPEG bytes
        assert row[1:4] == b[clip_id][1:4], clip_id  # frame times, audio, sample rate
        assert row[4].keys() == b[clip_id][4].keys(), clip_id
        for key, value in row[4].items():
            np.testing.assert_array_equal(value, b[clip_id][4][key], err_msg=f"{clip_id} {key}")


def test_clips_far_into_a_file_are_listed_by_the_download_unless_the_gop_outruns_it(
        tmp_path, tool_calls):
    """Clips at 50 s of 60-s files: the download's listing starts 10 s before the clip
    (`+START`); with 2-s GOPs it covers the clip and the cut starts no ffprobe, with one
    100-s GOP it stops short, and the cut lists that clip's packets itself."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, gop in (("short-gop", 20), ("long-gop", 1000)):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=160x120:rate=10:duration=60", "-f", "lavfi", "-i",
                        "sine=sample_rate=16000:duration=60", "-c:v", "libx264", "-preset",
                        "ultrafast", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold",
                        "0", "-c:a", "aac", str(videos / f"{name}.mp4")], check=True)
    config = {"dataset": {"name": "vggsound", "source": "local", "videos_dir": str(videos)},
              "download": {"mode": "full", "local_files": "copy", **FAST}}
    root = _workdir(tmp_path / "wd", config, ["short-gop", "long-gop"])
    set_clip(root, 50.0, 52.0)
    run_download(root, load_config(root), SHARD, progress=False)
    tool_calls()
    rows = cut_rows(root)
    assert tool_calls() == {"ffprobe": 1, "ffmpeg": 2}
    for name in ("short-gop", "long-gop"):
        pts = frame_times(videos / f"{name}.mp4")
        inside = np.flatnonzero((pts >= 50.0 - 1e-6) & (pts < 52.0 - 1e-6))
        expected = pts[inside[ave_selection(len(inside), seconds=2)]] - 50.0
        np.testing.assert_allclose(rows[f"{name}_000003"][1], expected, atol=1e-6)
    recut(root)
    edit_download_ledger(root, lambda info: info.pop("probe"))
    assert_same_rows(rows, cut_rows(root), n=2)
