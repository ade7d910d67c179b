"""YouTube in 2026: yt-dlp needs a JavaScript runtime and the EJS solver scripts. avel hands
yt-dlp the runtime by path, reads yt-dlp's warnings, stops the stage on a broken setup
(exit code 6) instead of marking clips failed, and stops a run whose attempts all fail for
one reason. The end-to-end tests run `python -m pipeline download` with a real yt-dlp
plugin extractor (tests/ytdlp_plugins) over a loopback server."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yt_dlp

from pipeline.core.errors import EXIT_ENVIRONMENT
from pipeline.demo.loopback_server import serve
from pipeline.download.breaker import FailureStreak
from pipeline.download.failures import ENVIRONMENT, PERMANENT, THROTTLED, classify
from tests.conftest import REPO_ROOT, avel_cmd
from tests.fixtures_download import ledger_entries, make_workdir, synthetic_data

PLUGINS = REPO_ROOT / "tests" / "ytdlp_plugins"
sys.path.insert(0, str(PLUGINS / "yt_dlp_plugins" / "extractor"))
import avel_yt2026  # noqa: E402  (the plugin's warning texts, to classify them here too)

sys.path.pop(0)
NOT_AVAILABLE = ("ERROR: [avel:yt2026] vid0000: Requested format is not available. Use "
                 "--list-formats for a list of available formats")


def ytdlp_error(message: str) -> yt_dlp.utils.DownloadError:
    return yt_dlp.utils.DownloadError(message)


# -- the runtime, as yt-dlp sees it through avel's options -------------------------------------

HEADER_SCRIPT = """
import logging, sys, tempfile
from pathlib import Path
import yt_dlp
from pipeline.core.config import DownloadConfig
from pipeline.download.ytdlp_options import build_options
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(message)s")
options = build_options(DownloadConfig(), Path(tempfile.mkdtemp()))
options["verbose"] = True
yt_dlp.YoutubeDL(options).close()
"""


def test_ytdlp_header_lists_the_runtime_and_ejs_with_nothing_on_path(tmp_path):
    """yt-dlp's own verbose header, from the options avel builds, in a process whose PATH
    holds no runtime: the `deno` package's binary is found and handed over by path."""
    env = {"PATH": str(tmp_path), "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", HEADER_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    header = done.stdout
    runtimes = re.search(r"^\[debug\] JS runtimes: (.*)$", header, re.M)
    assert runtimes, header
    # the installed package's version, not what avel's probe read
    assert runtimes.group(1) == f"deno-{importlib.metadata.version('deno')}"
    # handed over by path (yt-dlp would also look in this venv's bin itself, a pip
    # --target or user install it would not find): the path the `deno` package names
    from deno import find_deno_bin

    params = re.search(r"^\[debug\] params: (.*)$", header, re.M)
    assert params and f"'js_runtimes': {{'deno': {{'path': '{find_deno_bin()}'}}}}" in params.group(1)
    libraries = re.search(r"^\[debug\] Optional libraries: (.*)$", header, re.M)
    assert libraries and f"yt_dlp_ejs-{importlib.metadata.version('yt-dlp-ejs')}" in \
        libraries.group(1).split(", ")


# -- classification ---------------------------------------------------------------------------

@pytest.mark.parametrize("warning,reason", [
    (avel_yt2026.NO_RUNTIME, "js-runtime-missing"),
    (avel_yt2026.N_CHALLENGE, "js-challenge-failed"),
    ("Signature solving failed: Some formats may be missing. Ensure you have a supported "
     "JavaScript runtime and challenge solver script distribution installed.",
     "js-challenge-failed"),
    ("Only images are available for download. Use --list-formats to see them", "images-only"),
    ("abc: ios client https formats require a GVS PO Token which was not provided. They will "
     "be skipped as they may yield HTTP Error 403.", "po-token"),
])
def test_a_setup_warning_makes_not_available_an_environment_failure(warning, reason):
    failure = classify(ytdlp_error(NOT_AVAILABLE), [warning])
    assert (failure.kind, failure.reason) == (ENVIRONMENT, reason)
    assert "Requested format is not available" in failure.detail and warning[:40] in failure.detail


def test_not_available_alone_is_still_the_clips_format():
    failure = classify(ytdlp_error(NOT_AVAILABLE), ["Falling back on generic information extractor"])
    assert (failure.kind, failure.reason) == (PERMANENT, "no-format")
    assert "Falling back" in failure.detail  # the warnings are kept in the detail either way


def test_drm_images_only_and_clip_verdicts_are_not_the_environment():
    drm = "This video is DRM protected and only images are available for download."
    assert classify(ytdlp_error(NOT_AVAILABLE), [drm]).reason == "no-format"
    # a removed video stays removed, whatever the setup warned
    removed = classify(ytdlp_error("ERROR: [youtube] x: Video unavailable. This video has been "
                                   "removed by the uploader"), [avel_yt2026.NO_RUNTIME])
    assert (removed.kind, removed.reason) == (PERMANENT, "removed")


def test_a_bot_check_warning_before_not_available_is_throttling():
    failure = classify(ytdlp_error(NOT_AVAILABLE), ["Sign in to confirm you're not a bot"])
    assert (failure.kind, failure.reason) == (THROTTLED, "bot-check")


def test_the_plugins_warnings_are_ytdlps_own_words():
    """The plugin's texts are yt-dlp's (so the rules are tested on what yt-dlp says)."""
    source = (Path(yt_dlp.__file__).parent / "extractor" / "youtube" / "_video.py").read_text()
    flat = re.sub(r"'\s*\n\s*f?'", "", source)  # join the adjacent string literals
    for text in (avel_yt2026.NO_RUNTIME, avel_yt2026.N_CHALLENGE):
        stem = text.split(" See  ")[0].split(" For more details")[0]
        assert stem.split(". Ensure")[0] in flat, stem


def test_failure_streak_counts_one_reason_without_a_success_between():
    streak = FailureStreak(limit=3)
    assert not streak.failed("a", "timeout") and not streak.failed("b", "timeout")
    streak.succeeded()
    assert not streak.failed("c", "timeout") and not streak.failed("d", "timeout")
    assert not streak.failed("e", "http-404")  # another reason starts a new streak
    assert not streak.failed("f", "http-404") and streak.failed("f", "http-404")
    assert streak.clip_ids == ["e", "f"] and streak.attempts == 3
    assert not any(FailureStreak(limit=0).failed(c, "x") for c in "abcdefgh")


# -- the stage, as users run it ---------------------------------------------------------------

def run_download(wd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(PLUGINS)])}
    return subprocess.run(avel_cmd("download", "--workdir", str(wd), "--no-progress"),
                          env=env, capture_output=True, text=True, timeout=300)


def grow_manifest(wd: Path, n: int) -> list[str]:
    """`n` clips of the same served videos (clip ids `<video>_<k>`)."""
    manifest = pd.read_parquet(wd / "manifest.parquet")
    rows = [manifest.iloc[i % len(manifest)].to_dict() for i in range(n)]
    for k, row in enumerate(rows):
        row["clip_id"] = f"{row['clip_id']}_{k:02d}"
        row["row"] = k
    pd.DataFrame(rows, columns=manifest.columns).to_parquet(wd / "manifest.parquet")
    return [r["clip_id"] for r in rows]


def test_a_machine_without_a_js_runtime_stops_the_stage_and_fails_no_clip(tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("yt2026-env")
    with serve(data / "videos") as server:
        wd = make_workdir(root / "w", data, f"{server.url}/yt2026/env", workers=2)
        ids = grow_manifest(wd, 6)
        done = run_download(wd)
    assert done.returncode == EXIT_ENVIRONMENT == 6, done.stderr[-3000:]
    message = [line for line in done.stderr.splitlines() if line.startswith("stopped:")]
    assert len(message) == 1 and "js-runtime-missing" in message[0] and "pending" in message[0]
    entries = ledger_entries(wd)
    assert sorted(entries) == sorted(ids)
    assert all(e.status == "pending" and not e.permanent and e.attempts == 0
               for e in entries.values()), entries
    tried = [e for e in entries.values() if e.reason]
    assert tried and all(e.reason == "js-runtime-missing" for e in tried)
    # the ledger keeps what yt-dlp said, its warnings included
    assert all("Requested format is not available" in e.detail and "No supported JavaScript"
               in e.detail for e in tried)
    assert len(tried) <= 2 + 2  # one per worker, plus what was queued when it stopped
    summary = json.loads((wd / "state" / "download" / "00000-of-00001.summary.json").read_text())
    assert summary["stopped"] == "environment" and summary["failed"] == 0


def test_twenty_identical_failures_in_a_row_stop_the_run_and_leave_the_clips_pending(
        tmp_path_factory):
    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("yt2026-streak")
    with serve(data / "videos") as server:
        wd = make_workdir(root / "w", data, f"{server.url}/yt2026/gone", workers=1)
        ids = grow_manifest(wd, 26)
        done = run_download(wd)
    assert done.returncode == EXIT_ENVIRONMENT, done.stderr[-3000:]
    message = [line for line in done.stderr.splitlines() if line.startswith("stopped:")]
    assert len(message) == 1 and "20 download attempts in a row" in message[0], done.stderr[-2000:]
    assert "'unavailable'" in message[0] and "failure_streak_limit" in message[0]
    entries = ledger_entries(wd)
    assert sorted(entries) == sorted(ids)
    statuses = {e.status for e in entries.values()}
    assert statuses == {"pending"} and not any(e.permanent for e in entries.values())
    tried = [c for c in ids if entries[c].reason == "unavailable"]
    # one worker: the first 20 in manifest order, then it stopped; the one clip it had
    # already taken (a worker's queue is two deep) failed the same way and is pending too
    assert tried[:20] == ids[:20] and len(tried) <= 21
    assert all(e.attempts == 0 for e in entries.values())


def test_runtime_versions_below_ytdlps_minimum_are_refused(tmp_path):
    from deno import find_deno_bin

    from pipeline.download.js_runtime import find_js_runtime, probe_runtime

    found = find_js_runtime()
    assert found == probe_runtime("deno", find_deno_bin())
    assert found is not None and found.version == importlib.metadata.version("deno")
    old = tmp_path / "deno"  # what an old deno prints; yt-dlp needs >= 2.3
    old.write_text("#!/bin/sh\necho 'deno 2.2.12 (stable, release, x86_64-unknown-linux-gnu)'\n")
    old.chmod(0o755)
    assert probe_runtime("deno", str(old)) is None
    node = shutil.which("node")
    if node:  # the machine's own node: accepted exactly when it is >= 22
        major = int(subprocess.run([node, "--version"], capture_output=True, text=True)
                    .stdout.strip().lstrip("v").split(".")[0])
        assert (probe_runtime("node", node) is not None) == (major >= 22)


def test_ytdlp_cache_is_one_folder_of_the_work_directory_shared_by_workers(tmp_path_factory):
    """Player JS and solved challenges are stored once for every worker and shard (yt-dlp's
    own Cache, through the options avel builds), not re-fetched by each worker."""
    from pipeline.core.config import load_config
    from pipeline.core.workdir import Workdir
    from pipeline.download.stage import checked_download_config
    from pipeline.download.ytdlp_options import build_options

    data = synthetic_data(tmp_path_factory)
    root = tmp_path_factory.mktemp("ytcache")
    wd = make_workdir(root / "w", data, "http://127.0.0.1:9")
    dl = checked_download_config(Workdir(wd), load_config(wd))
    assert dl.cache_dir == str(wd / "cache" / "yt-dlp")
    with yt_dlp.YoutubeDL(build_options(dl, root / "staging-a")) as worker_a:
        worker_a.cache.store("youtube-nsig", "player-x", {"n": "solved"})
    assert (wd / "cache" / "yt-dlp" / "youtube-nsig").is_dir()
    with yt_dlp.YoutubeDL(build_options(dl, root / "staging-b")) as worker_b:
        assert worker_b.cache.load("youtube-nsig", "player-x") == {"n": "solved"}


def test_missing_local_files_never_trip_the_breaker(tmp_path_factory):
    """A block of missing local videos is the user's data, not the environment: all 25 fail
    as missing-file and the stage ends normally."""
    from pipeline.core.config import load_config
    from pipeline.core.sharding import Shard
    from pipeline.download.stage import run_download as run_stage

    data = synthetic_data(tmp_path_factory)
    wd = make_workdir(tmp_path_factory.mktemp("local-missing") / "w", data, None, source="local")
    ids = grow_manifest(wd, 25)
    manifest = pd.read_parquet(wd / "manifest.parquet")
    manifest["source"] = [f"absent/{clip_id}.mp4" for clip_id in manifest["clip_id"]]
    manifest.to_parquet(wd / "manifest.parquet")
    summary = run_stage(wd, load_config(wd), Shard(0, 1), progress=False)
    assert summary["stopped"] is None and summary["failed_by_reason"] == {"missing-file": 25}
    assert {e.status for e in ledger_entries(wd).values()} == {"failed"} and len(ids) == 25
