"""SIGKILL at random points of `avel cut`, five times, then a rerun: the shard file opens,
holds every clip exactly once, and is identical to the file of an unbroken run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from tests.bad_media_corpus import good_clip
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_cut import make_workdir

SHARD = Shard(0, 1)
N_CLIPS = 8


def _cut(wd, timeout=180):
    proc = subprocess.run(avel_cmd("cut", "--workdir", str(wd), "--workers", "2"), env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc


def _snapshot(path):
    """Everything a reader can see in the shard file, as plain values."""
    out = {}
    with h5py.File(path, "r") as fh:
        for clip_id, group in fh.items():
            out[clip_id] = {
                "audio": group["audio"][()].tobytes(),
                "frames": [bytes(f) for f in group["frames"][()]],
                "frame_times": group["frame_times"][()].tolist(),
                "attrs": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in group.attrs.items()},
            }
    return out


@pytest.mark.slow
def test_sigkill_five_times_then_rerun_equals_an_unbroken_run(tmp_path):
    videos = [good_clip(tmp_path / "videos" / f"v{i}.mp4", freq=200 + 100 * i) for i in range(N_CLIPS)]
    clips = [(f"clip{i}", v, 0.0, 10.0) for i, v in enumerate(videos)]
    settings = {"batch_clips": 1, "workers": 2}
    unbroken = make_workdir(tmp_path / "unbroken", clips, settings)
    started = time.monotonic()
    _cut(unbroken)
    full_s = time.monotonic() - started
    reference = _snapshot(Workdir(unbroken).clips_file(SHARD))
    assert sorted(reference) == [c[0] for c in clips]

    killed = make_workdir(tmp_path / "killed", clips, settings)
    parts = Workdir(killed).clips_file(SHARD).with_name(f"{SHARD.name}.parts")
    rng = random.Random(5)
    # five kills at growing progress (parts on disk), each after a random extra delay so it
    # lands inside ffmpeg, a part write, a ledger update or the final consolidation
    targets = sorted(rng.sample(range(N_CLIPS), 5))
    progress: list[int] = []
    for target in targets:
        proc = subprocess.Popen(avel_cmd("cut", "--workdir", str(killed), "--workers", "2"),
                                env=cli_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10 * full_s
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list(parts.glob("part-*.h5"))) >= target:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3) * full_s / N_CLIPS)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the stage, its forkserver and its workers
        proc.wait(timeout=60)
        progress.append(len(list(parts.glob("part-*.h5"))))
    print("targets", targets, "parts after each kill:", progress)
    # the kills landed while clips were still being cut
    assert sum(0 < n < N_CLIPS for n in progress) >= 3, progress
    _cut(killed)

    shard_file = Workdir(killed).clips_file(SHARD)
    assert _snapshot(shard_file) == reference
    assert not shard_file.with_name(shard_file.stem + ".parts").exists()
    assert not list(shard_file.parent.glob(".*.tmp"))
    with Ledger(Workdir(killed).ledger("cut", SHARD)) as ledger:
        assert ledger.counts()["done"] == N_CLIPS
