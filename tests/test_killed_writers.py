"""A writer SIGKILLed mid-write leaves a temp file; the next run of whatever owns that file
removes it, and a live writer's temp is never touched.

The killed writer here is a real process that opened `atomic.atomic_path(target)` (the one
function every stage writes through), wrote part of the file and was then SIGKILLed: the same
leftover a stage killed at that moment leaves, at a moment the test chooses instead of one a
timer happens to hit. tests/test_run_executors.py kills whole `avel run` processes too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core import atomic
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.demo.loopback_server import serve
from pipeline.demo.synthetic import write_dataset
from pipeline.export.formats import export_format
from pipeline.run.runner import run
from pipeline.store import open_features
from pipeline.store.parts import parts_dir
from pipeline.train import stage as train_stage
from pipeline.train.runs import run_dir
from tests.conftest import REPO_ROOT
from tests.fixtures_psp import make_workdir
from tests.fixtures_run import write_workdir

_WRITER = """
import sys, time
from pathlib import Path
from pipeline.core import atomic
with atomic.atomic_path(Path(sys.argv[1])) as temp:
    temp.write_bytes(b"half of a file")
    print(temp, flush=True)
    time.sleep(600)
"""


def start_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """A process in the middle of writing `target`: its temp file exists, the target does not."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.stdout is not None
    temp = Path(proc.stdout.readline().strip())
    assert temp.is_file() and temp.parent == target.parent
    return proc, temp


def killed_writer(target: Path) -> Path:
    """The temp file a writer of `target` SIGKILLed mid-write leaves behind."""
    proc, temp = start_writer(target)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and temp.is_file()
    return temp


def temps_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(".tmp"))


def test_a_temp_name_carries_its_writer_and_the_target():
    temp = atomic.temp_path_for(Path("/tmp") / f"avel-name-{os.getpid()}.h5")
    try:
        assert temp.name.startswith(f".avel-name-{os.getpid()}.h5.{os.getpid()}@{atomic.HOST}.")
        assert temp.name.endswith(".tmp")
        assert not atomic.writer_gone(temp)  # this process is alive
    finally:
        temp.unlink()


def test_orphan_sweep_removes_a_killed_writers_temp_and_keeps_a_live_writers(tmp_path):
    dead = killed_writer(tmp_path / "a.h5")
    live_proc, live = start_writer(tmp_path / "b.h5")
    # a temp of a process on another host: whether it runs cannot be known from here
    foreign = tmp_path / f".c.h5.1@not-{atomic.HOST}.abcdefgh.tmp"
    foreign.write_bytes(b"x")
    nested = killed_writer(tmp_path / "sub" / "d.npy")
    try:
        assert atomic.remove_orphaned_temps(tmp_path) == 1
        assert not dead.exists() and live.is_file() and foreign.is_file() and nested.is_file()
        assert atomic.remove_orphaned_temps(tmp_path, recursive=True) == 1
        assert not nested.exists() and live.is_file()
    finally:
        live_proc.send_signal(signal.SIGKILL)
        live_proc.wait()
    assert atomic.remove_orphaned_temps(tmp_path, recursive=True) == 1  # now it is dead too
    assert temps_under(tmp_path) == [foreign]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    write_dataset(out, n_clips=3, n_classes=3, seed=2)
    return out


def _features(workdir: Path) -> dict[str, np.ndarray]:
    with open_features(workdir, "vggish") as reader:
        return {c: reader[c].copy() for c in reader.clip_ids}


def test_download_cut_extract_rerun_after_a_kill_mid_write_leave_no_temp(source, tmp_path):
    """Before each stage, the temp of each file it writes is left by a killed writer (its
    summary in state/, raw/, clips/ shard file and part, features/ shard file, part and
    index); each stage's run removes them and the features equal an unbroken run's."""
    shard = Shard(0, 1)
    with serve(source / "videos") as server:
        unbroken = write_workdir(tmp_path / "unbroken", source, server.url)
        assert run(unbroken, ["download", "cut", "extract"], executor="local")["exit_code"] == 0
        workdir = write_workdir(tmp_path / "killed", source, server.url)
        wd = Workdir(workdir)
        assert run(workdir, ["manifest"], executor="local")["exit_code"] == 0
        clip = next(iter(_features(unbroken)))
        planted = {
            "download": [wd.ledger("download", shard).with_suffix(".summary.json"),
                         wd.raw_dir(shard) / f"{clip}.mp4"],
            "cut": [wd.clips_file(shard), parts_dir(wd.clips_file(shard)) / "part-1.h5"],
            "extract": [wd.features_file("vggish", shard),
                        parts_dir(wd.features_file("vggish", shard)) / "part-1.h5",
                        wd.features_dir("vggish") / "index.h5"],
        }
        for stage, targets in planted.items():
            temps = [killed_writer(t) for t in targets]
            assert run(workdir, [stage], executor="local")["exit_code"] == 0
            assert [t for t in temps if t.exists()] == [], stage
            assert temps_under(workdir) == [], stage
    assert _features(workdir).keys() == _features(unbroken).keys()
    for clip_id, value in _features(unbroken).items():
        assert np.array_equal(_features(workdir)[clip_id], value), clip_id


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_rerun_after_a_kill_mid_write_leaves_no_temp_and_the_same_files(tmp_path):
    wd = make_workdir(tmp_path / "wd", n=8, splits=(4, 6))
    unbroken, out = tmp_path / "unbroken", tmp_path / "out"
    export_format(wd, "ave", unbroken, allow_missing=True)
    # killed while writing the big feature file, and a file in a subdirectory
    temps = [killed_writer(out / "audio_feature.h5"), killed_writer(out / "sub" / "x.txt")]
    export_format(wd, "ave", out, allow_missing=True)
    assert [t for t in temps if t.exists()] == []
    assert temps_under(out) == []
    files = _files(out)
    assert files.keys() - {"sub"} == _files(unbroken).keys()  # the empty sub/ dir is no file
    assert files == _files(unbroken)


def test_export_keeps_the_temp_of_a_live_writer_in_its_out_dir(tmp_path):
    wd = make_workdir(tmp_path / "wd", n=8, splits=(4, 6))
    proc, live = start_writer(tmp_path / "out" / "notes.txt")
    try:
        export_format(wd, "ave", tmp_path / "out", allow_missing=True)
        assert live.is_file()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


ONE_EPOCH = {"epochs": 1, "batch_size": 4}


def _best_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "best.pt", weights_only=False)["model"]


@pytest.mark.slow
def test_train_rerun_after_a_kill_mid_write_leaves_no_temp_and_the_same_model(tmp_path):
    unbroken = make_workdir(tmp_path / "unbroken", n=8, splits=(4, 6))
    workdir = make_workdir(tmp_path / "killed", n=8, splits=(4, 6))
    expected = train_stage.train(unbroken, overrides=ONE_EPOCH, device="cpu", progress=False)
    run = run_dir(workdir, expected["task"], expected["model"])
    temps = [killed_writer(run / "checkpoints" / "last.pt"), killed_writer(run / "metrics.json")]
    result = train_stage.train(workdir, overrides=ONE_EPOCH, device="cpu", progress=False)
    assert [t for t in temps if t.exists()] == []
    assert temps_under(workdir) == []
    assert result["best"] == expected["best"]
    umask = os.umask(0)
    os.umask(umask)
    for name in ("best.pt", "last.pt"):  # the usual mode, not mkstemp's 0600
        assert (run / "checkpoints" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    best, reference = _best_weights(run), _best_weights(Path(expected["run_dir"]))
    assert best.keys() == reference.keys()
    assert all(torch.equal(best[k], reference[k]) for k in best)
    assert json.loads((run / "metrics.json").read_text())["best"] == expected["best"]


def test_the_run_directory_sweep_removes_the_temps_the_trainers_own_writers_leave(tmp_path,
                                                                                  monkeypatch):
    """models/ cannot import pipeline.core.atomic, so its writers name their temps themselves;
    a writer killed between its write and its rename (here: the rename raises) leaves a temp
    that the train stage's sweep must recognise."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.metrics import eval_report
    from models.training import trainer

    def killed_before_rename(src, dst):
        raise KeyboardInterrupt  # the process dies here; the temp stays

    monkeypatch.setattr(os, "replace", killed_before_rename)
    fig = plt.figure()
    for write in (lambda: eval_report.save_png(fig, tmp_path / "curves.png"),
                  lambda: trainer._atomic_text("{}", tmp_path / "metrics.json"),
                  lambda: eval_report.write_per_class_table(
                      np.array([0, 1]), np.array([0, 1]), ["a", "b"], tmp_path / "per_class.csv")):
        with pytest.raises(KeyboardInterrupt):
            write()
    plt.close(fig)
    monkeypatch.undo()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 3 and not {"curves.png", "metrics.json", "per_class.csv"} & set(left), left
    assert atomic.remove_stale_temps(tmp_path) == 3
    assert list(tmp_path.iterdir()) == []
