"""Local videos as a source: any extension, a path list naming a file per video, how
they reach raw/ (hard link, symlink or copy), and `avel init --local-videos`."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.commands.init import init_workdir
from pipeline.core.config import load_config
from pipeline.core.sharding import Shard
from pipeline.datasets.manifest import build_manifest
from pipeline.download.stage import run_download
from tests.bad_media_corpus import good_clip
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_download import FAST, ledger_entries


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local-videos")
    clip = good_clip(out / "src.mp4", seconds=3.0)
    shutil.copy(clip, out / "aaa.mkv")  # an mp4 named .mkv: the probe reads content
    shutil.copy(clip, out / "bbb.mp4")
    (out / "elsewhere").mkdir()
    shutil.copy(clip, out / "elsewhere" / "any name.mov")
    return out


def _workdir(root: Path, videos: Path, **dataset_extra) -> Path:
    root.mkdir(parents=True)
    (root / "list.csv").write_text("aaa,0,x,train\nbbb,0,x,train\nccc,0,x,train\n")
    dataset = {"name": "vggsound", "source": "local", "videos_dir": str(videos),
               "files": {"csv": str(root / "list.csv")}, **dataset_extra}
    (root / "avel.yaml").write_text(yaml.safe_dump(
        {"dataset": dataset, "download": {"mode": "full", **FAST}}))
    return root


def test_video_ext_list_and_path_list_name_any_extension(tmp_path, videos):
    (tmp_path / "paths.csv").write_text("ccc,elsewhere/any name.mov\n")
    wd = _workdir(tmp_path / "wd", videos, video_ext=[".mp4", ".mkv"],
                  files={"csv": "list.csv", "paths": str(tmp_path / "paths.csv")})
    table = build_manifest(wd, load_config(wd))
    sources = dict(zip(table["video_id"], table["source"]))
    assert sources == {"aaa": str(videos / "aaa.mkv"), "bbb": str(videos / "bbb.mp4"),
                       "ccc": str(videos / "elsewhere" / "any name.mov")}
    run_download(wd, load_config(wd), Shard(0, 1), progress=False)
    entries = ledger_entries(wd)
    assert {e.status for e in entries.values()} == {"done"}
    raw = wd / entries["aaa_000000"].info["file"]
    assert raw.suffix == ".mkv" and os.path.samefile(raw, videos / "aaa.mkv")  # a hard link


@pytest.mark.parametrize("how", ["symlink", "copy"])
def test_local_files_symlink_or_copy_instead_of_hard_link(tmp_path, videos, how):
    wd = _workdir(tmp_path / "wd", videos, video_ext=[".mp4", ".mkv"])
    config = yaml.safe_load((wd / "avel.yaml").read_text())
    config["download"]["local_files"] = how
    (wd / "avel.yaml").write_text(yaml.safe_dump(config))
    build_manifest(wd, load_config(wd))
    run_download(wd, load_config(wd), Shard(0, 1), progress=False)
    raw = wd / ledger_entries(wd)["bbb_000000"].info["file"]
    assert raw.is_symlink() == (how == "symlink")
    assert os.path.samefile(raw, videos / "bbb.mp4") == (how == "symlink")
    assert raw.read_bytes() == (videos / "bbb.mp4").read_bytes()


def test_init_writes_a_local_videos_config(tmp_path, videos):
    path = init_workdir(tmp_path / "wd", "vggsound", local_videos=str(videos))
    config = yaml.safe_load(path.read_text())
    assert config["dataset"]["source"] == "local"
    assert config["dataset"]["videos_dir"] == str(videos)
    assert config["download"]["local_files"] == "hardlink"
    assert config["cut"]["allow"] == ["rotated", "unusual-pixel-format", "non-ascii-name"]
    load_config(tmp_path / "wd")  # valid as written


def _avel(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(avel_cmd(*args), cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=300)


def test_relative_workdir_and_local_videos_from_the_current_directory(tmp_path, videos):
    """`-w W` and `--local-videos DIR` as a user types them, relative to where they stand:
    DIR is written absolute (the config's relative paths are read against W), and no path
    gets W prefixed twice (was: every clip `missing-file` looking in W/W/..., exit 0)."""
    shutil.copytree(videos, tmp_path / "vids")
    init = _avel(tmp_path, "init", "--dataset", "vggsound", "-w", "W", "--local-videos", "vids")
    assert init.returncode == 0, init.stderr
    config = yaml.safe_load((tmp_path / "W" / "avel.yaml").read_text())
    assert config["dataset"]["videos_dir"] == str((tmp_path / "vids").resolve())
    (tmp_path / "W" / "list.csv").write_text("aaa,0,x,train\nbbb,0,x,train\n")
    config["dataset"]["files"] = {"csv": "list.csv"}  # relative: against W
    config["download"].update(FAST)
    (tmp_path / "W" / "avel.yaml").write_text(yaml.safe_dump(config))
    for stage in ("manifest", "download"):
        done = _avel(tmp_path, stage, "-w", "W")
        assert done.returncode == 0, done.stderr
    entries = ledger_entries(tmp_path / "W")
    assert {c: e.status for c, e in entries.items()} == {"aaa_000000": "done",
                                                         "bbb_000000": "done"}


def test_relative_workdir_with_videos_inside_it(tmp_path, videos):
    """`videos_dir: videos` in the YAML is W/videos, whether W was given absolute or relative;
    the manifest stores the source relative to W so a moved work directory still reads it."""
    root = tmp_path / "W"
    _workdir(root, videos)
    shutil.copytree(videos, root / "videos")
    config = yaml.safe_load((root / "avel.yaml").read_text())
    config["dataset"].update({"videos_dir": "videos", "video_ext": [".mp4", ".mkv"],
                              "files": {"csv": "list.csv"}})
    (root / "list.csv").write_text("aaa,0,x,train\nbbb,0,x,train\n")
    (root / "avel.yaml").write_text(yaml.safe_dump(config))
    for stage in ("manifest", "download"):
        done = _avel(tmp_path, stage, "-w", "W")
        assert done.returncode == 0, done.stderr
    table = pd.read_parquet(root / "manifest.parquet")
    assert sorted(table["source"]) == ["videos/aaa.mkv", "videos/bbb.mp4"]
    entries = ledger_entries(root)
    assert {e.status for e in entries.values()} == {"done"} and len(entries) == 2
    assert os.path.samefile(root / entries["bbb_000000"].info["file"], root / "videos" / "bbb.mp4")


def _file_size_limit(limit: int):  # type: ignore[no-untyped-def]
    """preexec_fn: files this process writes stop at `limit` bytes. Python ignores SIGXFSZ,
    so a write past it fails with EFBIG, as a write to a full disk fails with ENOSPC."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_disk_full_during_copy_stops_with_exit_5_and_keeps_the_clip_pending(tmp_path):
    """`local_files: copy` of a 30 s clip (~240 kB) while files may only grow to 100 kB:
    one line naming the file and the cause, exit 5 (workdir cannot be written), no
    traceback; the clip copied before it stays done, the one that hit the limit stays pending
    (not failed, not `internal-error`), and a rerun with room finishes it."""
    src = tmp_path / "src"
    good_clip(src / "aaa.mp4", seconds=1.0)  # ~11 kB: fits
    good_clip(src / "bbb.mp4", seconds=30.0)
    assert (src / "bbb.mp4").stat().st_size > 150_000
    wd = _workdir(tmp_path / "wd", src)
    (wd / "list.csv").write_text("aaa,0,x,train\nbbb,0,x,train\n")
    config = yaml.safe_load((wd / "avel.yaml").read_text())
    config["download"].update({"local_files": "copy", "workers": 1})
    (wd / "avel.yaml").write_text(yaml.safe_dump(config))
    assert _avel(tmp_path, "manifest", "-w", str(wd)).returncode == 0

    full = subprocess.run(avel_cmd("download", "-w", str(wd)), env=cli_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=_file_size_limit(100_000))
    assert full.returncode == 5, full.stderr
    assert "Traceback" not in full.stderr
    errors = [ln for ln in full.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, full.stderr
    assert "cannot write (file too large); finished work is kept" in errors[0]
    assert f"error: {wd.resolve()}/" in errors[0] and str(src) not in errors[0]  # the written file
    entries = ledger_entries(wd)
    assert entries["aaa_000000"].status == "done"
    assert entries["bbb_000000"].status == "pending" and entries["bbb_000000"].reason is None
    assert not list((wd / "raw" / "00000-of-00001").glob("bbb*"))

    rerun = _avel(tmp_path, "download", "-w", str(wd))
    assert rerun.returncode == 0, rerun.stderr
    assert {e.status for e in ledger_entries(wd).values()} == {"done"}
