"""`avel extract` killed with SIGKILL mid-shard, then rerun: every clip stored exactly once,
with the same values as an unbroken run; plus the CLI's `avel index` and error paths."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.core.config import load_config
from pipeline.core.errors import InputError
from pipeline.core.sharding import Shard
from pipeline.extract.stage import run_extract
from pipeline.store.features import parts_dir
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_visual import TINY_VGG, write_workdir

CLIPS = {f"clip{i:02d}": 4 for i in range(10)}
SETTINGS = {"options": {"vgg19": TINY_VGG}, "weights": {"vgg19": "random"}, "seed": 5,
            "flush_clips": 1, "batch_size": 4}


def _extract(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(avel_cmd("extract", "--workdir", str(workdir), "--extractor", "vgg19",
                                   "--no-progress", *extra),
                          env=cli_env(), capture_output=True, text=True, timeout=600)


def _rows(workdir: Path) -> tuple[list[str], np.ndarray]:
    with h5py.File(workdir / "features" / "vgg19" / "index.h5", "r") as fh:
        return [c.decode() for c in fh["clip_id"][()]], fh["features"][()]


@pytest.mark.slow
def test_sigkill_mid_extract_then_rerun_stores_each_clip_once_with_unbroken_values(tmp_path: Path):
    broken = write_workdir(tmp_path / "broken", CLIPS, extract=SETTINGS)
    shard_file = broken.features_file("vgg19", Shard(0, 1))
    proc = subprocess.Popen(avel_cmd("extract", "--workdir", str(broken.root), "--extractor", "vgg19",
                                     "--no-progress"), env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(parts_dir(shard_file).glob("part-*.h5"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not shard_file.exists()  # killed before consolidation: only parts on disk
    written = len(list(parts_dir(shard_file).glob("part-*.h5")))
    assert 2 <= written < len(CLIPS)

    rerun = _extract(broken.root)
    assert rerun.returncode == 0, rerun.stderr
    unbroken = write_workdir(tmp_path / "unbroken", CLIPS, extract=SETTINGS)
    assert _extract(unbroken.root).returncode == 0

    ids, values = _rows(broken.root)
    ref_ids, ref_values = _rows(unbroken.root)
    assert ids == ref_ids == list(CLIPS)  # each clip exactly once, manifest order
    with h5py.File(shard_file, "r") as fh:
        assert len(fh["clip_id"]) == len(CLIPS)
    scale = np.abs(ref_values).max()
    np.testing.assert_allclose(values, ref_values, rtol=0, atol=1e-5 * scale)


def test_index_command_rebuilds_a_deleted_index(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {"a": 4, "b": 4}, extract=SETTINGS)
    run_extract(wd.root, "vgg19", Shard(0, 1), load_config(wd.root), progress=False)
    index = wd.features_dir("vgg19") / "index.h5"
    before = _rows(wd.root)
    index.unlink()
    done = subprocess.run(avel_cmd("index", "--workdir", str(wd.root)), env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(index)
    after = _rows(wd.root)
    assert after[0] == before[0] == ["a", "b"]
    np.testing.assert_array_equal(after[1], before[1])


def test_missing_pretrained_weights_is_an_input_error_naming_the_fetch_command(tmp_path: Path,
                                                                               monkeypatch):
    wd = write_workdir(tmp_path / "w", {"a": 4}, extract={"options": {"vgg19": TINY_VGG}})
    monkeypatch.setenv("AVEL_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(InputError) as err:
        run_extract(wd.root, "vgg19", Shard(0, 1), load_config(wd.root), progress=False)
    assert "vgg19_keras_imagenet.pt" in str(err.value)
    assert "avel weights convert-vgg19-keras" in str(err.value)
    assert not wd.features_dir("vgg19").exists()  # nothing written
