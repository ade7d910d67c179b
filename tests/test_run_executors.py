"""`avel run` over 3 shards with two extractors (vggish + a small vgg19, one pass per shard):
the local executor and a real local Ray instance give the same features, ledgers and
provenance; the array-job variables pick one shard."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.demo.loopback_server import serve
from pipeline.demo.synthetic import write_dataset
from pipeline.run.runner import run, shards_to_run
from pipeline.store import open_features
from tests.fixtures_run import write_workdir

STAGES = ["download", "cut", "extract"]
#: two extractors, so `avel run` extracts them in one pass per shard (one Ray actor holds both);
#: vgg19 at 32 px on the 10 frames of the uniform-1 cut keeps it cheap
EXTRACTORS = ("vggish", "vgg19")
VGG19 = {"frames_per_segment": 1, "image_size": 32}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    write_dataset(out, n_clips=6, n_classes=3, seed=1)  # clips in all 3 shards
    return out


def two_extractor_workdir(root, source, url, executor="local"):
    workdir = write_workdir(root, source, url, num_shards=3, extractors=EXTRACTORS,
                            executor=executor)
    config = yaml.safe_load((workdir / "avel.yaml").read_text())
    config["extract"]["options"]["vgg19"] = VGG19
    (workdir / "avel.yaml").write_text(yaml.safe_dump(config))
    return workdir


def snapshot(workdir):
    """Features of vggish (the reference extractor of the local tests), every ledger."""
    features, ledgers, _ = snapshot_all(workdir)
    return features["vggish"], ledgers


def snapshot_all(workdir):
    """({extractor: {clip: features}}, {(stage, clip): (status, reason)}, {file: attrs})."""
    wd = Workdir(workdir)
    features, attrs = {}, {}
    for name in EXTRACTORS:
        with open_features(workdir, name) as reader:
            features[name] = {c: reader[c].copy() for c in reader.clip_ids}
        for i in range(3):
            with h5py.File(wd.features_file(name, Shard(i, 3))) as fh:
                attrs[(name, i)] = dict(fh.attrs)
    ledgers = {}
    for stage in ("download", "cut", *(f"extract-{n}" for n in EXTRACTORS)):
        for i in range(3):
            with Ledger(wd.ledger(stage, Shard(i, 3))) as ledger:
                ledgers.update({(stage, e.clip_id): (e.status, e.reason, e.checksum)
                                for e in ledger.entries()})
    return features, ledgers, attrs


@pytest.fixture(scope="module")
def local_run(source, tmp_path_factory):
    with serve(source / "videos") as server:
        workdir = two_extractor_workdir(tmp_path_factory.mktemp("local"), source, server.url)
        report = run(workdir, STAGES, executor="local")
    return workdir, report


def test_local_executor_runs_every_shard_to_done(local_run):
    workdir, report = local_run
    assert report["exit_code"] == 0
    assert report["shards"] == ["00000-of-00003", "00001-of-00003", "00002-of-00003"]
    features, ledgers, _ = snapshot_all(workdir)
    assert all(len(features[name]) == 6 for name in EXTRACTORS)
    assert all(f.shape == (10, 128) for f in features["vggish"].values())
    assert all(f.shape == (10, 1, 1, 512) for f in features["vgg19"].values())
    assert {s for s, _, _ in ledgers.values()} == {"done"}


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
def test_ray_executor_one_pass_gives_the_local_runs_features_ledgers_and_provenance(
        local_run, source, tmp_path):
    """The Ray executor's extract actor builds both extractors and runs them in one pass per
    shard, as the local executor does: the same features (bit for bit), ledger rows (status,
    reason, row checksum) and provenance attrs, and every extractor's store holds every clip."""
    import ray
    workdir_local, _ = local_run
    try:
        with serve(source / "videos") as server:
            workdir = two_extractor_workdir(tmp_path / "ray", source, server.url, executor="ray")
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            report = run(workdir, STAGES)
    finally:
        ray.shutdown()
    assert report["executor"] == "ray" and report["exit_code"] == 0
    for name, other in (("vggish", "vgg19"), ("vgg19", "vggish")):
        summaries = report["stages"][f"extract-{name}"]
        assert len(summaries) == 3 and sum(s["done"] for s in summaries) == 6
        assert all(s["one_pass_with"] == [other] for s in summaries if s["done"])
    local_features, local_ledgers, local_attrs = snapshot_all(workdir_local)
    ray_features, ray_ledgers, ray_attrs = snapshot_all(workdir)
    assert ray_ledgers == local_ledgers
    for name in EXTRACTORS:
        assert set(ray_features[name]) == set(local_features[name]) == set(local_features["vggish"])
        assert len(ray_features[name]) == 6
        for clip_id, value in local_features[name].items():
            assert np.array_equal(ray_features[name][clip_id], value), (name, clip_id)
    assert ray_attrs.keys() == local_attrs.keys()
    for key, attrs in local_attrs.items():
        # the config hash covers `executor: ray`, the one setting the two runs differ in
        theirs = dict(ray_attrs[key])
        assert theirs.pop("config_hash") != attrs["config_hash"]
        assert {k: str(v) for k, v in theirs.items()} == {
            k: str(v) for k, v in attrs.items() if k != "config_hash"}, key


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


def _failed_clips(workdir) -> dict[str, list[tuple[str, str | None, str | None]]]:
    """{ledger: [(clip, reason, detail)]} of every failed clip in the work directory."""
    out = {}
    for path in sorted(Path(workdir, "state").glob("*/*.sqlite")):
        with Ledger(path, read_only=True) as ledger:
            failed = [(e.clip_id, e.reason, (e.detail or "")[:200]) for e in ledger.entries()
                      if e.status == "failed"]
        if failed:
            out[f"{path.parent.name}/{path.name}"] = failed
    return out


def _wait_until_gone(pgid, timeout=60.0):
    """Wait until no process of group `pgid` runs (zombies hold no files or locks)."""
    import time
    from pathlib import Path
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited while we looked
            if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
                alive.append(stat.parent.name)
        if not alive:
            return
        assert time.monotonic() < deadline, f"processes {alive} of group {pgid} outlive SIGKILL"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_in_each_stage_then_rerun_gives_the_unbroken_result(local_run, source, tmp_path):
    """Kill the whole process group (as a node loss would) once the download, then the cut,
    then the extract ledger shows progress; a last rerun must end exactly as the unbroken run,
    with no temp file left anywhere (a kill that hit a write leaves one; each stage's rerun
    removes those of the files it writes, tests/test_killed_writers.py pins each)."""
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import avel_cmd, cli_env

    reference_features, reference_ledgers, _ = snapshot_all(local_run[0])
    with serve(source / "videos") as server:
        workdir = two_extractor_workdir(tmp_path / "killed", source, server.url)
        killed: list[str] = []
        ended_early: dict[str, tuple[int, str]] = {}
        for stage in ("download", "cut", "extract-vggish"):
            log = tmp_path / f"{stage}.stderr"
            with open(log, "w") as stderr:
                proc = subprocess.Popen(avel_cmd("run", "-w", str(workdir)), env=cli_env(),
                                        stdout=subprocess.DEVNULL, stderr=stderr,
                                        start_new_session=True)
            deadline = time.monotonic() + 240
            while _count_done(workdir, stage) == 0 and proc.poll() is None:
                assert time.monotonic() < deadline, f"no progress in {stage}"
                time.sleep(0.05)
            if proc.poll() is not None:  # the run ended before the kill (rare: a fast stage)
                ended_early[stage] = (proc.returncode, log.read_text()[-2000:])
                # seen once in ~15 runs (exit 1), never reproduced in 8 more: say why, so the
                # next time it happens the cause is in the test report
                warnings.warn(f"avel run ended before the {stage} kill with exit "
                              f"{proc.returncode}; failed clips: {_failed_clips(workdir)}; "
                              f"stderr tail: {log.read_text()[-600:]}", stacklevel=1)
                continue
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL, stage  # killed in the stage, not done
            killed.append(stage)
            # as after a node loss, the next run starts when none of the group runs any more
            # (a pool worker dying late still holds the shard lock it inherited)
            _wait_until_gone(proc.pid)
        final = subprocess.run(avel_cmd("run", "-w", str(workdir)), env=cli_env(),
                               capture_output=True, text=True, timeout=600)
    assert killed, ended_early  # at least one kill landed in a live run
    assert final.returncode == 0, (final.stderr[-2000:], ended_early)
    features, ledgers, _ = snapshot_all(workdir)
    assert ledgers.keys() == reference_ledgers.keys()
    assert {s for s, _, _ in ledgers.values()} == {"done"}
    for name in EXTRACTORS:
        assert set(features[name]) == set(reference_features[name])
        for clip_id, value in reference_features[name].items():
            assert np.array_equal(features[name][clip_id], value), (name, clip_id)
    wd = Workdir(workdir)
    leftovers = [p for p in wd.root.rglob("*") if p.name.endswith((".tmp", ".part"))
                 or p.name.endswith(".parts")]
    assert leftovers == []
    for name in EXTRACTORS:
        for i in range(3):  # each clip exactly once in its shard file
            with h5py.File(wd.features_file(name, Shard(i, 3))) as fh:
                ids = [c.decode() for c in fh["clip_id"][()]]
            assert len(ids) == len(set(ids))
