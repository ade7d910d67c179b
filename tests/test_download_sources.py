"""Where clips come from and what the cut stage is promised: section downloads that cover
the section and start at `offset_s`, local files linked not downloaded, refused sources."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import load_config
from pipeline.core.media_probe import probe
from pipeline.core.sharding import Shard
from pipeline.demo.loopback_server import serve
from pipeline.demo.synthetic import plan
from pipeline.download.jobs import job_for
from pipeline.download.stage import run_download
from tests.fixtures_download import ledger_entries, make_workdir, synthetic_data

SHARD = Shard(0, 1)
CONTRACT_KEYS = {"file", "offset_s", "mode", "duration_s", "has_audio", "has_video"}
RATE = 16000


def pcm(path: Path, start: float | None, seconds: float) -> np.ndarray:
    """Mono 16 kHz samples decoded by ffmpeg (an independent reader of both files)."""
    cmd = ["ffmpeg", "-v", "error", *(["-ss", str(start)] if start is not None else []),
           "-i", str(path), "-t", str(seconds), "-ac", "1", "-ar", str(RATE), "-f", "s16le", "-"]
    return np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout,
                         np.int16).astype(np.float64)


def best_lag_s(reference: np.ndarray, piece: np.ndarray) -> float:
    """Where `piece` sits inside `reference` (seconds): the lag of the highest normalised
    cross-correlation (FFT for the products, a running sum for each window's energy)."""
    n, m = len(reference) + len(piece), len(reference) - len(piece) + 1
    corr = np.fft.irfft(np.fft.rfft(reference, n) * np.conj(np.fft.rfft(piece, n)), n)[:m]
    energy = np.concatenate([[0.0], np.cumsum(reference ** 2)])
    window = np.sqrt(energy[len(piece):len(piece) + m] - energy[:m]) + 1e-9
    return int(np.argmax(corr / window)) / RATE


def _set_span(wd: Path, clip_id: str, start: float, end: float) -> None:
    table = pd.read_parquet(wd / "manifest.parquet")
    table.loc[table["clip_id"] == clip_id, ["start_s", "end_s"]] = [start, end]
    table.to_parquet(wd / "manifest.parquet", index=False)


@pytest.mark.parametrize("keyframes", [False, True], ids=["stream-copy", "keyframes-at-cuts"])
def test_section_download_covers_the_section_and_starts_at_offset(tmp_path_factory, keyframes):
    data = synthetic_data(tmp_path_factory)
    # The synthetic audio repeats every 0.5 s except where an event starts or stops, so
    # the offset is checked on a window around an event's end `e` (taken from the plan).
    clip = next(c for c in plan(10, n_classes=2, seed=3) if 3 <= c.end <= 7)
    e = float(clip.end)
    root = tmp_path_factory.mktemp("section")
    with serve(data / "videos") as server:
        wd = make_workdir(root / "w", data, server.url, mode="section", pad_s=0.5,
                          force_keyframes_at_cuts=keyframes)
        table = pd.read_parquet(wd / "manifest.parquet")
        table[table["clip_id"] == clip.video_id].to_parquet(wd / "manifest.parquet", index=False)
        _set_span(wd, clip.video_id, e - 1.5, e + 1.5)  # with the pad: source [e-2, e+2]
        run_download(wd, load_config(wd), SHARD, progress=False)
    entry = ledger_entries(wd)[clip.video_id]
    assert entry.status == "done", entry
    assert CONTRACT_KEYS <= set(entry.info)
    # the stream copy starts at the keyframe before the section, so the file may begin
    # earlier than the section; offset_s says where (source time of the file's t=0)
    offset = entry.info["offset_s"]
    assert entry.info["mode"] == "section" and 0.0 <= offset <= e - 2.0 + 1e-6
    media = probe(wd / entry.info["file"])
    # the file covers the section (one 16 fps frame of slack) and is not the whole 10 s video
    assert offset + media.duration_s >= e + 2.0 - 1 / 16, (offset, media.duration_s)
    assert media.duration_s <= 4.5 + (e - 2.0 - offset), media.duration_s
    assert media.has_audio and media.has_video
    # the file's source [e-0.5, e+0.5) lies at file time e-0.5-offset if t=0 lies at
    # offset_s: look for it inside source [e-1, e+1) and expect it 0.5 s in (within 2 ms)
    source = pcm(data / "videos" / f"{clip.video_id}.mp4", e - 1.0, 2.0)
    piece = pcm(wd / entry.info["file"], e - 0.5 - offset, 1.0)
    assert abs(best_lag_s(source, piece) - 0.5) <= 0.002


def test_local_sources_are_hard_linked_never_downloaded(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("local")
    videos = root / "videos"
    shutil.copytree(data / "videos", videos)
    gone = sorted(videos.glob("*.mp4"))[1]
    gone.unlink()
    local_data = root / "data"
    local_data.mkdir()
    for name in ("Annotations.txt", "train_order.h5", "val_order.h5", "test_order.h5"):
        shutil.copy(data / name, local_data / name)
    (local_data / "videos").symlink_to(videos)
    wd = make_workdir(root / "w", local_data, None, source="local")
    summary = run_download(wd, load_config(wd), SHARD, progress=False)
    entries = ledger_entries(wd)
    assert entries[gone.stem].status == "failed"
    assert (entries[gone.stem].reason, entries[gone.stem].permanent) == ("missing-file", True)
    done = [e for e in entries.values() if e.status == "done"]
    assert len(done) == summary["done"] == len(entries) - 1
    for entry in done:
        out = wd / entry.info["file"]
        src = videos / f"{entry.clip_id}.mp4"
        assert os.stat(out).st_ino == os.stat(src).st_ino  # a link: no bytes copied
        assert (entry.info["mode"], entry.info["offset_s"]) == ("local", 0.0)
        assert entry.info["duration_s"] == pytest.approx(10.0, abs=0.1)


@pytest.mark.parametrize("source", [
    "ytsearch:dog barking",  # would make yt-dlp search
    "file:///etc/passwd",  # a local file through the URL door
    "--exec rm -rf ~",  # an option, should anything ever pass it on
    "ftp://127.0.0.1/a.mp4",
    "/etc/hostname",
])
def test_sources_that_are_not_http_urls_or_youtube_ids_are_refused(tmp_path, source):
    wd = make_workdir(tmp_path / "w", _tiny_ave(tmp_path), "http://127.0.0.1:9")
    job = job_for({"clip_id": "c1", "source": source, "start_s": 0, "end_s": 10}, load_config(wd))
    assert job.kind == "bad"
    run = run_download_one(wd, source)
    assert (run.status, run.reason, run.permanent) == ("failed", "bad-source", True)


def test_bare_youtube_id_becomes_a_watch_url(tmp_path):
    wd = make_workdir(tmp_path / "w", _tiny_ave(tmp_path), "http://127.0.0.1:9", mode="section",
                      pad_s=1.0)
    job = job_for({"clip_id": "c1", "source": "dQw4w9WgXcQ", "start_s": 0.5, "end_s": 10.5},
                  load_config(wd))
    assert job.target == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert job.section == (0.0, 11.5) and job.offset_s == 0.0  # the pad stops at 0


def run_download_one(wd: Path, source: str):  # type: ignore[no-untyped-def]
    table = pd.read_parquet(wd / "manifest.parquet").head(1)
    table["source"] = [source]
    table.to_parquet(wd / "manifest.parquet", index=False)
    run_download(wd, load_config(wd), SHARD, progress=False)
    return next(iter(ledger_entries(wd).values()))


def _tiny_ave(root: Path) -> Path:
    """AVE list files for two clips (no videos needed when nothing is fetched)."""
    import h5py

    data = root / "data"
    data.mkdir()
    (data / "Annotations.txt").write_text("Category&VideoID&Quality&StartTime&EndTime\n"
                                          "Dog&aaaaaaaaaaa&good&0&10\nCat&bbbbbbbbbbb&good&2&5\n")
    for split, order in (("train", [0]), ("val", [1]), ("test", [])):
        with h5py.File(data / f"{split}_order.h5", "w") as fh:
            fh.create_dataset("order", data=np.array(order, dtype=np.int64))
    return data


def test_youtube_style_ids_with_a_leading_dash_keep_their_name(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("dash")
    with serve(data / "videos") as server:
        wd = make_workdir(root / "w", data, server.url)
        table = pd.read_parquet(wd / "manifest.parquet").head(1)
        table["clip_id"] = ["-0BIyqJj9ZU_000030"]  # VGGSound's <youtube id>_<start> form
        table.to_parquet(wd / "manifest.parquet", index=False)
        run_download(wd, load_config(wd), SHARD, progress=False)
    entry = ledger_entries(wd)["-0BIyqJj9ZU_000030"]
    assert entry.status == "done"
    assert entry.info["file"] == "raw/00000-of-00001/-0BIyqJj9ZU_000030.mp4"


def test_a_verified_file_left_by_a_killed_run_is_adopted_without_fetching(tmp_path_factory):
    # a kill between the rename into raw/ and the ledger write leaves exactly this
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("adopt")
    with serve(data / "videos") as server:
        wd = make_workdir(root / "w", data, server.url)
        table = pd.read_parquet(wd / "manifest.parquet").head(2)
        table.to_parquet(wd / "manifest.parquet", index=False)
        first, second = table["clip_id"]
        shard_dir = wd / "raw" / "00000-of-00001"
        shard_dir.mkdir(parents=True)
        shutil.copy(data / "videos" / f"{first}.mp4", shard_dir / f"{first}.mp4")
        summary = run_download(wd, load_config(wd), SHARD, progress=False)
        assert f"/{first}.mp4" not in server.hits
        assert server.hits[f"/{second}.mp4"] == 2
    assert summary["this_run"]["adopted"] == 1 and summary["done"] == 2
    assert ledger_entries(wd)[first].info["mode"] == "full"


def test_cli_retry_failed_without_a_reason_requeues_every_failure(tmp_path_factory):
    from click.testing import CliRunner

    from pipeline.cli import app

    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("cli-retry")
    videos = root / "videos"
    videos.mkdir()
    names = sorted(p.name for p in (data / "videos").glob("*.mp4"))[:3]
    local_data = root / "data"
    shutil.copytree(data, local_data, ignore=shutil.ignore_patterns("videos"))
    (local_data / "videos").symlink_to(videos)
    os.link(data / "videos" / names[0], videos / names[0])  # the other two are missing
    wd = make_workdir(root / "w", local_data, None, source="local")
    pd.read_parquet(wd / "manifest.parquet").sort_values("clip_id").head(3).to_parquet(
        wd / "manifest.parquet", index=False)
    runner = CliRunner()
    first = runner.invoke(app, ["download", "--workdir", str(wd), "--no-progress"])
    assert first.exit_code == 1, first.output  # README "Exit codes": 1 some clips failed
    assert "1 done, 2 failed (missing-file 2)" in first.output
    for name in names[1:]:
        os.link(data / "videos" / name, videos / name)
    plain = runner.invoke(app, ["download", "--workdir", str(wd), "--no-progress"])
    assert "1 done, 2 failed" in plain.output  # permanent failures wait to be asked for
    assert plain.exit_code == 1, plain.output
    again = runner.invoke(app, ["download", "--workdir", str(wd), "--no-progress", "--retry-failed"])
    assert again.exit_code == 0, again.output
    assert "3 done, 0 failed" in again.output
