"""One writer per stage and shard, and no process of a stage outlives it: a second run on a
locked shard exits 2 at once while the first finishes; SIGKILL of the main process alone or of
the whole process group leaves nothing of the stage alive 5 s later."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest

from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from tests.bad_media_corpus import good_clip
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_cut import make_workdir
from tests.fixtures_visual import TINY_VGG
from tests.fixtures_visual import write_workdir as write_clips_workdir

SHARD = Shard(0, 1)


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc (ppid chains)."""
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parent_of[int(stat.parent.name)] = int(fields[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent_of.items() if pp in frontier} - out
        out |= frontier
    return out


def _alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            left.add(pid)
    return left


@pytest.fixture(scope="module")
def cut_workdir_factory(tmp_path_factory):
    videos_dir = tmp_path_factory.mktemp("videos")
    videos = [good_clip(videos_dir / f"v{i}.mp4", seconds=3.0, freq=300 + 100 * i)
              for i in range(6)]

    def make(root: Path, n: int = 6) -> Path:
        clips = [(f"clip{i}", videos[i % len(videos)], 0.0, 3.0) for i in range(n)]
        return make_workdir(root, clips, {"workers": 2, "batch_clips": 1})
    return make


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _lock_held(lock: Path) -> bool:
    return lock.is_file() and lock.read_text().strip().isdigit()


@pytest.mark.slow
def test_second_cut_on_a_shard_exits_2_at_once_and_the_first_finishes(tmp_path, cut_workdir_factory):
    wd = cut_workdir_factory(tmp_path / "w", n=60)  # long enough to outlast the second
    first = subprocess.Popen(avel_cmd("cut", "--workdir", str(wd), "--workers", "1"), env=cli_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = wd / "state" / "cut" / f"{SHARD.name}.lock"
    assert _wait_for(lambda: _lock_held(lock), 60), "the first run never took its lock"
    started = time.monotonic()
    second = subprocess.run(avel_cmd("cut", "--workdir", str(wd)), env=cli_env(),
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2, second.stderr
    assert "another `avel cut`" in second.stderr and "Traceback" not in second.stderr
    assert time.monotonic() - started < 20  # the interpreter start; no waiting on the lock
    assert first.poll() is None  # refused while the first was still at work
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    with h5py.File(Workdir(wd).clips_file(SHARD), "r") as fh:
        assert sorted(fh) == sorted(f"clip{i}" for i in range(60))


@pytest.mark.slow
@pytest.mark.parametrize("whom", ["main process alone", "process group"])
def test_sigkill_of_cut_leaves_no_process_behind(tmp_path, cut_workdir_factory, whom):
    wd = cut_workdir_factory(tmp_path / "w")
    proc = subprocess.Popen(avel_cmd("cut", "--workdir", str(wd), "--workers", "2"),
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    # wait until the pool is up: forkserver, resource tracker and two workers (maybe ffmpeg)
    seen: set[int] = set()

    def pool_up() -> bool:
        seen.update(_descendants(proc.pid))
        return len(_alive(seen)) >= 4
    assert _wait_for(pool_up, 120), f"the worker pool never started ({seen})"
    if whom == "process group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    seen.update(_descendants(proc.pid))
    assert _wait_for(lambda: not _alive(seen), 5.0), f"left alive: {_alive(seen)}"


@pytest.mark.slow
def test_sigkill_of_extract_main_process_takes_its_loader_workers(tmp_path):
    clips = {f"clip{i:02d}": 4 for i in range(40)}
    wd = write_clips_workdir(tmp_path / "w", clips, extract={
        "options": {"vgg19": TINY_VGG}, "weights": {"vgg19": "random"}, "num_workers": 2,
        "flush_clips": 1, "batch_size": 1})
    proc = subprocess.Popen(avel_cmd("extract", "--workdir", str(wd.root), "-e", "vgg19",
                                     "--no-progress"), env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    seen: set[int] = set()

    def loaders_up() -> bool:
        seen.update(_descendants(proc.pid))
        return len(_alive(seen)) >= 2
    assert _wait_for(loaders_up, 120), "the DataLoader workers never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _wait_for(lambda: not _alive(seen), 5.0), f"left alive: {_alive(seen)}"
