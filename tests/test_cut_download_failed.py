"""A clip whose download failed for good reaches the cut as failed, so `avel run` and
`avel status` agree: exit 1 (failures), not 4 (pending), on the first run and every rerun."""

from __future__ import annotations

import shutil

from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.demo.loopback_server import serve
from pipeline.demo.synthetic import write_dataset
from pipeline.run.runner import run
from tests.fixtures_run import write_workdir

STAGES = ["download", "cut"]


def test_permanent_download_failure_fails_the_cut_and_run_exits_1_again_on_rerun(tmp_path):
    source = tmp_path / "source"
    write_dataset(source, n_clips=3, n_classes=2, seed=2)
    served = tmp_path / "served"
    shutil.copytree(source / "videos", served)
    gone = sorted(served.iterdir())[0]
    gone.unlink()  # the host answers 404: a permanent download failure
    with serve(served) as server:
        workdir = write_workdir(tmp_path / "wd", source, server.url, extractors=())
        first = run(workdir, STAGES, executor="local")
        second = run(workdir, STAGES, executor="local")
    assert first["exit_code"] == 1 and second["exit_code"] == 1
    assert first["counts"]["cut"]["pending"] == 0
    with Ledger(Workdir(workdir).ledger("cut", Shard(0, 1))) as ledger:
        failed = {e.clip_id: e.reason for e in ledger.entries() if e.status == "failed"}
    assert list(failed.values()) == ["download-failed:http-404"]
    assert next(iter(failed)).startswith(gone.stem)
