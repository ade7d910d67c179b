"""`avel doctor` on this machine: real files, real permissions, the real command line.

What is pinned comes from outside the doctor: a cookies file written here with known expiry
times, a work directory made read-only with a bind mount, the calendar for yt-dlp's age,
VGGish's 128 floats per second for the feature size.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pipeline.core.config import Config, DatasetConfig
from pipeline.doctor.scope import Scope
from pipeline.doctor.tools import YTDLP_MAX_AGE_DAYS, ffmpeg_checks, ytdlp_check
from tests.conftest import SHARED_DATA, avel_cmd, cli_env

SHARED_AVE = SHARED_DATA / "ave"
# every check `avel doctor` runs with a config naming one extractor (vggish); "ffmpeg
# opus-in-webm" only appears for an FFmpeg <= 5.1, so it is not required here
EVERY_CHECK = {"workdir", "ffmpeg", "ffprobe", "yt-dlp", "js runtime", "yt-dlp-ejs", "cookies", "proxy",
               "torch", "cuda", "device jpeg decode", "weights cache", "weights vggish", "disk"}


def write_config(w: Path, **download: object) -> None:
    config = {"dataset": {"name": "ave", "source": "url", "url_template": "http://127.0.0.1:9/{video_id}.mp4",
                          "files": {"annotations": str(SHARED_AVE / "Annotations.txt"),
                                    "orders_dir": str(SHARED_AVE)}, "limit": 1000},
              "download": download,
              "extract": {"extractors": ["vggish"], "device": "cpu", "weights": {"vggish": "random"}}}
    w.mkdir(parents=True, exist_ok=True)
    (w / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def doctor(w: Path, *args: str) -> tuple[int, dict[str, dict]]:
    proc = subprocess.run(avel_cmd("doctor", "-w", str(w), "--json", *args), env=cli_env(),
                          capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    assert report["exit_code"] == proc.returncode
    return proc.returncode, {c["name"]: c for c in report["checks"]}


def netscape_line(domain: str, name: str, expires: int) -> str:
    return "\t".join([domain, "TRUE", "/", "TRUE", str(expires), name, "value"])


@pytest.mark.slow
def test_doctor_json_lists_every_check_and_counts_expired_cookies(tmp_path):
    now = int(time.time())
    cookies = tmp_path / "w" / "cookies.txt"
    cookies.parent.mkdir()
    cookies.write_text("# Netscape HTTP Cookie File\n" + "\n".join([
        netscape_line(".youtube.com", "GONE1", now - 86400),  # expired yesterday
        netscape_line(".youtube.com", "GONE2", now - 3600),  # expired an hour ago
        netscape_line(".youtube.com", "LIVE", now + 30 * 86400),
    ]) + "\n")
    write_config(tmp_path / "w", cookies_file="cookies.txt")  # relative to the work directory
    code, checks = doctor(tmp_path / "w", "--stages", "download,extract")
    assert EVERY_CHECK <= set(checks)
    assert all(c["status"] in ("ok", "warn", "blocker") and c["detail"] for c in checks.values())
    assert checks["cookies"]["status"] == "warn"
    assert "3 cookies, 2 expired" in checks["cookies"]["detail"]
    assert checks["weights vggish"]["status"] == "ok"  # random weights need no file
    # 1000 clips x VGGish's 10 s x 128 float32 = 5,120,000 bytes
    assert "extract 5.1 MB" in checks["disk"]["detail"]
    assert code == 0 or any(c["status"] == "blocker" for c in checks.values())


@pytest.mark.slow
def test_run_stops_on_a_blocker_with_the_doctor_message_and_writes_nothing(tmp_path):
    w = tmp_path / "w"
    (w / "bad.txt").parent.mkdir()
    (w / "bad.txt").write_text("not a cookie file\n")
    write_config(w, cookies_file="bad.txt")
    proc = subprocess.run(avel_cmd("run", "-w", str(w), "--stages", "download"), env=cli_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "avel doctor found blockers: cookies:" in proc.stderr and "bad.txt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in w.iterdir()) == ["avel.yaml", "bad.txt"]  # no manifest, no state


def _bind_read_only(w: Path) -> bool:
    ok = subprocess.run(["mount", "--bind", str(w), str(w)], capture_output=True).returncode == 0
    if ok and subprocess.run(["mount", "-o", "remount,ro,bind", str(w)], capture_output=True).returncode:
        subprocess.run(["umount", str(w)], capture_output=True)
        return False
    return ok


@pytest.mark.slow
def test_an_unwritable_workdir_is_a_blocker_with_exit_code_5(tmp_path):
    w = tmp_path / "w"
    write_config(w)
    if not _bind_read_only(w):
        pytest.skip("needs root to bind-mount the work directory read-only")
    try:
        code, checks = doctor(w, "--stages", "extract")
        text = subprocess.run(avel_cmd("doctor", "-w", str(w), "--stages", "extract"), env=cli_env(),
                              capture_output=True, text=True, timeout=600)
    finally:
        subprocess.run(["umount", str(w)], capture_output=True)
    assert code == 5
    assert checks["workdir"]["status"] == "blocker"
    assert "Read-only file system" in checks["workdir"]["detail"]
    assert text.returncode == 5 and "BLOCKER  workdir" in text.stdout


def test_ytdlp_older_than_sixty_days_is_a_warning():
    from yt_dlp.version import __version__

    scope = Scope(Path("."), Config(dataset=DatasetConfig(name="ave")))
    released = dt.date(*map(int, __version__.split(".")[:3]))
    on_the_day = ytdlp_check(scope, today=released + dt.timedelta(days=YTDLP_MAX_AGE_DAYS))
    a_day_later = ytdlp_check(scope, today=released + dt.timedelta(days=YTDLP_MAX_AGE_DAYS + 1))
    assert (on_the_day.status, a_day_later.status) == ("ok", "warn")
    assert f"is {YTDLP_MAX_AGE_DAYS + 1} days old" in a_day_later.detail
    assert "pip install -U 'yt-dlp[default]'" in a_day_later.detail


def test_ffmpeg_without_ffprobe_blocks_download_and_cut_but_not_extract(tmp_path, monkeypatch):
    # the PATH the Makefile's imageio-ffmpeg fallback leaves: a real ffmpeg and no ffprobe
    only_ffmpeg = tmp_path / "bin"
    only_ffmpeg.mkdir()
    (only_ffmpeg / "ffmpeg").symlink_to(shutil.which("ffmpeg"))
    monkeypatch.setenv("PATH", str(only_ffmpeg))
    config = Config(dataset=DatasetConfig(name="ave"))
    by_scope = {stages: {c.name: c for c in ffmpeg_checks(Scope(tmp_path, config, stages=list(stages)))}
                for stages in (("download",), ("cut",), ("extract",))}
    assert {s: checks["ffmpeg"].status for s, checks in by_scope.items()} == {
        ("download",): "ok", ("cut",): "ok", ("extract",): "ok"}
    assert {s: checks["ffprobe"].status for s, checks in by_scope.items()} == {
        ("download",): "blocker", ("cut",): "blocker", ("extract",): "warn"}
    assert "falls back" not in by_scope[("cut",)]["ffprobe"].detail
