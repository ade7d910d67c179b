"""The stage as users run it (`python -m pipeline download` in a subprocess): killed with
SIGKILL at random points and rerun, and stopped by a host that only answers 429."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.demo.loopback_server import serve
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_download import ledger_entries, make_workdir, synthetic_data

N_CLIPS = 4


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(wd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(avel_cmd("download", "--workdir", str(wd), "--no-progress", *args),
                          env=cli_env(), capture_output=True, text=True, timeout=timeout)


def assert_complete_and_identical(wd: Path, videos: Path, ids: list[str]) -> None:
    entries = ledger_entries(wd)
    assert sorted(entries) == ids
    for clip_id in ids:
        entry = entries[clip_id]
        assert entry.status == "done", entry
        # full mode over plain HTTP: the unbroken result is the served file, byte for byte
        assert sha(wd / entry.info["file"]) == sha(videos / f"{clip_id}.mp4")
        assert entry.checksum == "sha256:" + sha(videos / f"{clip_id}.mp4")
    shard_dir = wd / "raw" / "00000-of-00001"
    assert sorted(p.name for p in shard_dir.iterdir()) == [f"{c}.mp4" for c in ids]
    leftovers = [p for p in (wd / "raw").rglob("*") if p.is_file() and p.parent != shard_dir]
    assert leftovers == [], "temp or .part files left behind"


# Where each of the five runs is killed: during start-up, while yt-dlp writes a .part
# file, right after the first or second clip is done, and at a random moment.
KILL_POINTS = ["startup", "part-file", "done>=1", "done>=2", "random"]


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_gives_the_unbroken_result(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    ids = sorted(p.stem for p in (data / "videos").glob("*.mp4"))[:N_CLIPS]
    rng = random.Random(4)
    with serve(data / "videos") as server:
        for run, point in enumerate(KILL_POINTS):
            root = tmp_path_factory.mktemp(f"kill{run}")
            # yt-dlp's own rate limit makes each 250 kB clip take ~0.5 s, so kills can land
            # mid-download, between clips and around ledger writes
            wd = make_workdir(root / "w", data, server.url, workers=2, rate_limit_bytes=500_000)
            _limit_manifest(wd, N_CLIPS)
            proc = subprocess.Popen(avel_cmd("download", "--workdir", str(wd), "--no-progress"),
                                    env=cli_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            _wait_for(point, wd, proc, rng)
            if point != "random":
                assert proc.poll() is None, f"run {run} finished before reaching {point}"
            os.killpg(proc.pid, signal.SIGKILL)  # the process and any ffmpeg it started
            proc.wait()
            assert_ledger_matches_files(wd)
            done = run_cli(wd)
            assert done.returncode == 0, done.stderr
            assert_complete_and_identical(wd, data / "videos", ids)


def assert_ledger_matches_files(wd: Path) -> None:
    """Right after a kill: every clip the ledger calls done has its complete file."""
    if not (wd / "state" / "download" / "00000-of-00001.sqlite").exists():
        return  # killed before the ledger was created
    for entry in ledger_entries(wd).values():
        if entry.status == "done":
            assert entry.checksum == "sha256:" + sha(wd / entry.info["file"]), entry


def _wait_for(point: str, wd: Path, proc: subprocess.Popen, rng: random.Random,
              timeout_s: float = 60) -> None:
    """Return when the run reaches `point`; fail the test when it exits first or the point
    never comes, so a kill always lands where the test says it does."""
    if point == "startup":
        time.sleep(rng.uniform(0.1, 0.6))
        return
    if point == "random":
        time.sleep(rng.uniform(0.5, 4.0))
        return
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if point == "part-file":
            if any(p.name.endswith(".part") for p in (wd / "raw").rglob("*")):
                return
        elif _done_count(wd) >= int(point.split(">=")[1]):
            return
        time.sleep(0.01)
    how = f"exited with {proc.returncode}" if proc.poll() is not None else f"ran {timeout_s:.0f} s"
    pytest.fail(f"the download never reached {point!r}: it {how} first")


@pytest.mark.parametrize("point", ["part-file", "done>=1"])
def test_wait_for_fails_when_the_point_never_comes(tmp_path, point):
    (tmp_path / "raw").mkdir()
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(pytest.fail.Exception, match="never reached"):
            _wait_for(point, tmp_path, idle, random.Random(0), timeout_s=0.3)
    finally:
        idle.kill()
        idle.wait()
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    with pytest.raises(pytest.fail.Exception, match="exited with 0"):
        _wait_for(point, tmp_path, exited, random.Random(0))


def _done_count(wd: Path) -> int:
    db = wd / "state" / "download" / "00000-of-00001.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM clips WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _limit_manifest(wd: Path, n: int) -> None:
    import pandas as pd

    table = pd.read_parquet(wd / "manifest.parquet")
    table.sort_values("clip_id").head(n).to_parquet(wd / "manifest.parquet", index=False)


def test_endless_429_stops_with_exit_3_and_keeps_what_was_done(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    ids = sorted(p.stem for p in (data / "videos").glob("*.mp4"))[:4]
    with serve(data / "videos") as server:
        server.retry_after = 1
        for clip_id in ids[2:]:
            server.inject(f"/{clip_id}.mp4", "429*")
        root = tmp_path_factory.mktemp("throttle")
        wd = make_workdir(root / "w", data, server.url, throttle_limit=3, backoff_base_s=0.05,
                          backoff_max_s=0.3)
        _limit_manifest(wd, 4)
        # one worker takes clips in manifest order: the two healthy ones first
        stopped = run_cli(wd, "--workers", "1", timeout=60)
        assert stopped.returncode == 3, stopped.stderr
        assert "cookies" in stopped.stderr and "rerun" in stopped.stderr
        # Retry-After 1 s is capped by backoff_max_s 0.3 (how long that takes: bench_pacing)
        pauses = [float(s) for s in re.findall(r"all workers pause ([0-9.]+) s", stopped.stderr)]
        assert len(pauses) == 3 and all(p <= 0.3 for p in pauses), stopped.stderr
        throttled_hits = sum(server.hits.get(f"/{c}.mp4", 0) for c in ids[2:])
        assert throttled_hits == 3  # exactly throttle_limit answers, then it stopped asking
        entries = ledger_entries(wd)
        assert [entries[c].status for c in ids[:2]] == ["done", "done"]
        assert all((wd / entries[c].info["file"]).is_file() for c in ids[:2])
        assert {entries[c].reason for c in ids[2:] if entries[c].status == "failed"} == {"http-429"}

        # the host calms down; the rerun fetches only what is missing
        server.faults.clear()
        healthy_hits = {c: server.hits[f"/{c}.mp4"] for c in ids[:2]}
        resumed = run_cli(wd, "--workers", "1")
        assert resumed.returncode == 0, resumed.stderr
        assert {c: server.hits[f"/{c}.mp4"] for c in ids[:2]} == healthy_hits
        assert all(e.status == "done" for e in ledger_entries(wd).values())
