"""`avel run` over 3 shards: the local executor and a real local Ray instance give the same
features and ledgers; the array-job variables pick one shard."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.demo.loopback_server import serve
from pipeline.demo.synthetic import write_dataset
from pipeline.run.runner import run, shards_to_run
from pipeline.store import open_features
from tests.fixtures_run import write_workdir

STAGES = ["download", "cut", "extract"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    write_dataset(out, n_clips=6, n_classes=3, seed=1)  # clips in all 3 shards
    return out


def snapshot(workdir):
    wd = Workdir(workdir)
    with open_features(workdir, "vggish") as reader:
        features = {c: reader[c].copy() for c in reader.clip_ids}
    ledgers = {}
    for stage in ("download", "cut", "extract-vggish"):
        for i in range(3):
            with Ledger(wd.ledger(stage, Shard(i, 3))) as ledger:
                ledgers.update({(stage, e.clip_id): (e.status, e.reason) for e in ledger.entries()})
    return features, ledgers


@pytest.fixture(scope="module")
def local_run(source, tmp_path_factory):
    with serve(source / "videos") as server:
        workdir = write_workdir(tmp_path_factory.mktemp("local"), source, server.url, num_shards=3)
        report = run(workdir, STAGES, executor="local")
    return workdir, report


def test_local_executor_runs_every_shard_to_done(local_run):
    workdir, report = local_run
    assert report["exit_code"] == 0
    assert report["shards"] == ["00000-of-00003", "00001-of-00003", "00002-of-00003"]
    features, ledgers = snapshot(workdir)
    assert len(features) == 6
    assert all(f.shape == (10, 128) for f in features.values())
    assert {s for s, _ in ledgers.values()} == {"done"}


def test_rerun_does_nothing_new(local_run):
    workdir, _ = local_run
    before = snapshot(workdir)
    report = run(workdir, STAGES, executor="local")  # no server: any download would fail
    after = snapshot(workdir)
    assert report["exit_code"] == 0
    assert before[1] == after[1]
    assert all(np.array_equal(before[0][c], after[0][c]) for c in before[0])


@pytest.mark.ray
@pytest.mark.slow
def test_ray_executor_gives_identical_features_and_ledgers(local_run, source, tmp_path):
    import ray
    workdir_local, _ = local_run
    try:
        with serve(source / "videos") as server:
            workdir = write_workdir(tmp_path / "ray", source, server.url, num_shards=3,
                                    executor="ray")
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            report = run(workdir, STAGES)
    finally:
        ray.shutdown()
    assert report["executor"] == "ray" and report["exit_code"] == 0
    local_features, local_ledgers = snapshot(workdir_local)
    ray_features, ray_ledgers = snapshot(workdir)
    assert ray_ledgers == local_ledgers
    assert set(ray_features) == set(local_features)
    for clip_id, value in local_features.items():
        assert np.array_equal(ray_features[clip_id], value), clip_id


def test_array_job_variables_select_one_shard(local_run):
    from pipeline.core.config import load_config
    config = load_config(local_run[0])
    assert shards_to_run(config, None, None, {"SLURM_ARRAY_TASK_ID": "2",
                                               "SLURM_ARRAY_TASK_COUNT": "3"}) == [Shard(2, 3)]
    assert shards_to_run(config, None, None, {"JOB_COMPLETION_INDEX": "1"}) == [Shard(1, 3)]
    assert shards_to_run(config, None, None, {}) == [Shard(i, 3) for i in range(3)]


def _count_done(workdir, stage):
    wd = Workdir(workdir)
    total = 0
    for i in range(3):
        path = wd.ledger(stage, Shard(i, 3))
        if path.is_file():
            with Ledger(path) as ledger:
                total += ledger.counts()["done"]
    return total


@pytest.mark.slow
def test_sigkill_in_each_stage_then_rerun_gives_the_unbroken_result(local_run, source, tmp_path):
    """Kill the whole process group (as a node loss would) once the download, then the cut,
    then the extract ledger shows progress; a last rerun must end exactly as the unbroken run."""
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import avel_cmd, cli_env

    reference_features, reference_ledgers = snapshot(local_run[0])
    with serve(source / "videos") as server:
        workdir = write_workdir(tmp_path / "killed", source, server.url, num_shards=3)
        for stage in ("download", "cut", "extract-vggish"):
            proc = subprocess.Popen(avel_cmd("run", "-w", str(workdir)), env=cli_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            deadline = time.monotonic() + 240
            while _count_done(workdir, stage) == 0 and proc.poll() is None:
                assert time.monotonic() < deadline, f"no progress in {stage}"
                time.sleep(0.05)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        final = subprocess.run(avel_cmd("run", "-w", str(workdir)), env=cli_env(),
                               capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    features, ledgers = snapshot(workdir)
    assert ledgers.keys() == reference_ledgers.keys()
    assert {s for s, _ in ledgers.values()} == {"done"}
    assert set(features) == set(reference_features)
    for clip_id, value in reference_features.items():
        assert np.array_equal(features[clip_id], value), clip_id
    wd = Workdir(workdir)
    leftovers = [p for p in wd.root.rglob("*") if p.name.endswith((".tmp", ".part"))
                 or p.name.endswith(".parts")]
    assert leftovers == []
    for i in range(3):  # each clip exactly once in its shard file
        import h5py
        path = wd.features_file("vggish", Shard(i, 3))
        with h5py.File(path) as fh:
            ids = [c.decode() for c in fh["clip_id"][()]]
        assert len(ids) == len(set(ids))
